"""Classification metrics, the decision threshold and the confusion matrix.

The decision rule. Arg-max at the training prior leaves a minority class under-called on an imbalanced set
(pneumonia, 388 normal / 3494 pneumonia train: test AUC .947 but normal recall .50). For two classes the
threshold on P(class 1) is therefore chosen on VALIDATION for the objective the search asked for (accuracy,
balanced accuracy or macro F1; for a threshold-free objective such as AUC or the loss: balanced accuracy,
i.e. Youden's J = sensitivity + specificity - 1, the same maximiser, which weighs both classes' recalls
alike whatever the prior), and the same threshold is then applied to test: it is never chosen on test.
More classes keep the arg-max: a prior correction fits K-1 offsets, which a small validation split (78
breastmnist images; a few hundred elsewhere) would overfit, and the registry's multi-class objectives are
AUC and macro F1, the first independent of any threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

ArrayLike = np.ndarray | torch.Tensor


class MetricInputError(ValueError):
    """Labels or probabilities with the wrong shape or range."""


def _to_numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _labels_and_probs(labels: ArrayLike, probs: ArrayLike, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y, p = _to_numpy(labels).astype(np.int64).reshape(-1), _to_numpy(probs).astype(np.float64)
    if p.ndim != 2 or p.shape != (len(y), num_classes):
        raise MetricInputError(f"probs must have shape ({len(y)}, {num_classes}), got {p.shape}")
    if len(y) == 0:
        raise MetricInputError("cannot compute metrics on an empty set")
    if not np.isfinite(p).all():
        raise MetricInputError(f"probs hold {np.count_nonzero(~np.isfinite(p))} NaN/inf values (a diverged model?)")
    if y.min() < 0 or y.max() >= num_classes:
        raise MetricInputError(f"labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    return y, p


# What a threshold is chosen for, by objective (classification_metrics' keys); others use the default.
THRESHOLD_GOALS = ("balanced_acc", "acc", "macro_f1")
DEFAULT_THRESHOLD_GOAL = "balanced_acc"  # Youden's J: see the module's docstring
DECISION_THRESHOLD = "decision_threshold"  # the metric a run logs it as (chosen on val, applied to test)


def threshold_goal(select_metric: str) -> str:
    """What the threshold maximises for a trial that selects by `select_metric` (val_acc -> acc; val_auc,
    val_loss and sample metrics -> balanced accuracy)."""
    short = select_metric.removeprefix("val_")
    return short if short in THRESHOLD_GOALS else DEFAULT_THRESHOLD_GOAL


def predictions(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted classes: class 1 where P(class 1) >= `threshold` (two classes), else the arg-max."""
    if threshold is None or probs.shape[1] != 2:
        return probs.argmax(axis=1)
    return (probs[:, 1] >= threshold).astype(np.int64)


def choose_threshold(labels: ArrayLike, probs: ArrayLike, *, goal: str = DEFAULT_THRESHOLD_GOAL) -> float | None:
    """The threshold on P(class 1) that maximises `goal` on these labels (pass validation ones); None for
    more than two classes or a split with one class only (then the arg-max stands).

    Candidates are sklearn's roc_curve thresholds: every distinct score s_i, each standing for the interval
    (s_i+1, s_i] of thresholds that give the same predictions on these labels. Of the best intervals, one
    that holds 0.5 (the arg-max rule) keeps 0.5, so a set with nothing to gain keeps the arg-max; otherwise
    the best interval nearest 0.5 gives its midpoint, a margin on either side for unseen images."""
    if goal not in THRESHOLD_GOALS:
        raise MetricInputError(f"threshold goal must be one of {list(THRESHOLD_GOALS)}, got {goal!r}")
    y, p = _to_numpy(labels).astype(np.int64).reshape(-1), _to_numpy(probs).astype(np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(np.unique(y)) < 2:
        return None
    y, p = _labels_and_probs(y, p, 2)
    _, _, high = roc_curve(y, p[:, 1], drop_intermediate=False)  # descending; high[0] is +inf: none positive
    low = np.append(high[1:], -np.inf)
    values = np.array([_goal_value(y, p[:, 1] >= t, goal) for t in high])
    best = np.flatnonzero(values >= values.max() - 1e-12)
    if any(low[i] < 0.5 <= high[i] for i in best):
        return 0.5
    middle = np.where(np.isinf(high), (low + 1) / 2, np.where(np.isinf(low), high, (low + high) / 2))
    return float(middle[best[np.argmin(np.abs(middle[best] - 0.5))]])


def _goal_value(y: np.ndarray, positive: np.ndarray, goal: str) -> float:
    cm = _confusion(y, positive.astype(np.int64), 2)
    recall = np.diag(cm) / cm.sum(axis=1)
    if goal == "balanced_acc":
        return float(recall.mean())
    if goal == "acc":
        return float(np.trace(cm) / len(y))
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, np.diag(cm) / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.mean())


def confusion_matrix(labels: ArrayLike, probs: ArrayLike, num_classes: int, *,
                     threshold: float | None = None) -> np.ndarray:
    """(K, K) int64 counts of predictions (arg-max, or at `threshold` for two classes); rows are the true
    class, columns the predicted class."""
    y, p = _labels_and_probs(labels, probs, num_classes)
    return _confusion(y, predictions(p, threshold), num_classes)


def _confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metric_name(class_name: str) -> str:
    """A class name as a metric-key fragment: letters and digits (Unicode ones too, which MLflow accepts) and
    '_' stay; every other character becomes '_'."""
    return re.sub(r"\W", "_", class_name)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """Binary: ROC AUC of class 1. More classes: the macro mean of one-vs-rest AUCs over the classes present
    in `y` (an absent class has no positives, so its AUC is undefined and is left out). NaN when `y` holds
    fewer than two classes."""
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if p.shape[1] == 2:
        return float(roc_auc_score(y, p[:, 1]))
    # One call over the present classes' indicator columns, macro-averaged: the same per-class AUCs and mean
    # as a call per class, with sklearn's input checks done once instead of once per class.
    return float(roc_auc_score(y[:, None] == present[None, :], p[:, present], average="macro"))


def classification_metrics(labels: ArrayLike, probs: ArrayLike, class_names: Sequence[str], *,
                           threshold: float | None = None) -> dict[str, float]:
    """Metrics of softmax `probs` (N, K) against integer `labels` (N,), predicting by arg-max or, for two
    classes, by P(class 1) >= `threshold` (every key but "auc" depends on the rule).

    Keys: "auc", "acc", "balanced_acc" (mean recall over classes present in `labels`, as sklearn does),
    "macro_f1" (over classes present in labels or predictions, as sklearn does), "recall_<class>" for each
    class (NaN for a class absent from `labels`), and for two classes "sensitivity" (recall of class 1)
    and "specificity" (recall of class 0).
    """
    num_classes = len(class_names)
    y, p = _labels_and_probs(labels, probs, num_classes)
    cm = _confusion(y, predictions(p, threshold), num_classes)
    support, predicted, hits = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    seen = (support > 0) | (predicted > 0)
    metrics = {
        "auc": _auc(y, p),
        "acc": float(hits.sum() / len(y)),
        "balanced_acc": float(np.nanmean(recall)),
        "macro_f1": float(f1[seen].mean()),
    }
    keys = recall_keys(class_names)
    metrics.update({key: float(r) for key, r in zip(keys, recall)})
    if num_classes == 2:
        metrics["sensitivity"], metrics["specificity"] = float(recall[1]), float(recall[0])
    return metrics


def recall_keys(class_names: Sequence[str]) -> list[str]:
    keys = [f"recall_{metric_name(name)}" for name in class_names]
    # Two names that sanitize alike ("a-b", "a b") would overwrite each other; suffix them with the class index.
    return [key if keys.count(key) == 1 else f"{key}_{k}" for k, key in enumerate(keys)]

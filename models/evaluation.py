"""Classification metrics and the confusion matrix."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

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


def confusion_matrix(labels: ArrayLike, probs: ArrayLike, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts of argmax predictions; rows are the true class, columns the predicted class."""
    y, p = _labels_and_probs(labels, probs, num_classes)
    return _confusion(y, p.argmax(axis=1), num_classes)


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
    return float(np.mean([roc_auc_score(y == k, p[:, k]) for k in present]))


def classification_metrics(labels: ArrayLike, probs: ArrayLike, class_names: Sequence[str]) -> dict[str, float]:
    """Metrics of softmax `probs` (N, K) against integer `labels` (N,).

    Keys: "auc", "acc", "balanced_acc" (mean recall over classes present in `labels`, as sklearn does),
    "macro_f1" (over classes present in labels or predictions, as sklearn does), "recall_<class>" for each
    class (NaN for a class absent from `labels`), and for two classes "sensitivity" (recall of class 1)
    and "specificity" (recall of class 0).
    """
    num_classes = len(class_names)
    y, p = _labels_and_probs(labels, probs, num_classes)
    cm = _confusion(y, p.argmax(axis=1), num_classes)
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

"""The two-class decision threshold: chosen on validation for the objective, applied unchanged to test."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from torch import nn

from ganmix.datasets import ImageDataset, Split
from ganmix.models.evaluation import (
    DECISION_THRESHOLD,
    choose_threshold,
    classification_metrics,
    confusion_matrix,
    threshold_goal,
)
from ganmix.models.metrics import internal_name, logged_name, metric_info
from ganmix.search.pipeline import _evaluate_test
from ganmix.search.recipe import Recipe
from test_pipeline import MemorySink


class MeanPixel(nn.Module):
    """P(class 1) rises with an image's mean pixel: a fixed classifier whose scores the test knows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(m), 8 * m], dim=1)


def _split(values: list[int], labels: list[int]) -> Split:
    images = torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()
    return Split(images, torch.tensor(labels, dtype=torch.int64))


def _scores(split: Split) -> np.ndarray:
    with torch.no_grad():
        return MeanPixel()(split.images.float() / 127.5 - 1).softmax(1).numpy()


def test_balanced_accuracy_threshold_is_youden_and_beats_argmax_on_an_imbalanced_set():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(300, int)]  # the minority is class 0, as pneumonia's "normal"
    p1 = np.r_[rng.beta(4, 3, 30), rng.beta(7, 2, 300)]
    probs = np.stack([1 - p1, p1], axis=1)
    t = choose_threshold(y, probs, goal="balanced_acc")
    fpr, tpr, thr = skm.roc_curve(y, p1)
    youden = thr[np.argmax(tpr - fpr)]
    at_t, at_max = classification_metrics(y, probs, ["n", "p"], threshold=t), classification_metrics(y, probs, ["n", "p"])
    assert at_t["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(y, (p1 >= youden).astype(int)))
    assert at_t["specificity"] > at_max["specificity"] and at_t["balanced_acc"] > at_max["balanced_acc"]
    assert at_t["auc"] == at_max["auc"]  # the rule moves every metric but the AUC
    assert at_t["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(y, (p1 >= t).astype(int)))
    # Each goal gets its own maximiser, checked against sklearn over every threshold.
    for goal, score in (("acc", skm.accuracy_score), ("macro_f1", lambda a, b: skm.f1_score(a, b, average="macro"))):
        best = max(score(y, (p1 >= s).astype(int)) for s in np.unique(p1))
        assert score(y, (p1 >= choose_threshold(y, probs, goal=goal)).astype(int)) == pytest.approx(best)


def test_a_balanced_separable_set_keeps_the_argmax_and_more_classes_have_no_threshold():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    assert choose_threshold(y, probs) == 0.5
    assert choose_threshold([0, 1, 2], np.eye(3)) is None
    assert choose_threshold([1, 1], probs[:2]) is None  # one class only: nothing to choose from
    assert threshold_goal("val_balanced_acc") == "balanced_acc" and threshold_goal("val_acc") == "acc"
    assert threshold_goal("val_auc") == threshold_goal("val_loss") == "balanced_acc"


def test_the_threshold_is_chosen_on_val_never_on_test_and_applied_to_test():
    # Val wants a threshold between pixel 80 and 90; test, alone, would want one between 110 and 130.
    val = _split([50, 60, 70, 80, 90, 100, 110, 120], [0, 0, 0, 0, 1, 1, 1, 1])
    test = _split([100, 105, 110, 130, 140, 150], [0, 0, 0, 1, 1, 1])
    dataset = ImageDataset("toy", train=val, val=val, test=test, class_names=("neg", "pos"))
    val_t = choose_threshold(val.labels, _scores(val))
    test_t = choose_threshold(test.labels, _scores(test))
    assert val_t != test_t  # the two splits disagree
    sink = MemorySink()
    out = _evaluate_test(MeanPixel(), dataset, Recipe(dataset="digits"), device=torch.device("cpu"), logger=sink, step=1)
    assert out[DECISION_THRESHOLD] == pytest.approx(val_t)
    expected = classification_metrics(test.labels, _scores(test), dataset.class_names, threshold=val_t)
    assert out["test_balanced_acc"] == pytest.approx(expected["balanced_acc"]) == 0.5  # val's threshold calls all positive
    assert out["test_sensitivity"] == 1.0 and out["test_specificity"] == 0.0
    # The test confusion matrix logged is the one at val's threshold, too.
    assert sink.files["confusion_matrix_test.csv"].splitlines()[1:] == ["neg,0,3", "pos,0,3"]
    np.testing.assert_array_equal(confusion_matrix(test.labels, _scores(test), 2, threshold=val_t), [[0, 3], [0, 3]])
    # Whatever the test labels say, the threshold stays val's.
    flipped = ImageDataset("toy", train=val, val=val, test=_split([100, 105, 110, 130, 140, 150], [1, 1, 1, 0, 0, 0]),
                           class_names=("neg", "pos"))
    again = _evaluate_test(MeanPixel(), flipped, Recipe(dataset="digits"), device=torch.device("cpu"),
                           logger=MemorySink(), step=1)
    assert again[DECISION_THRESHOLD] == out[DECISION_THRESHOLD]


def test_the_objective_decides_the_threshold_goal_in_a_trial():
    # Accuracy on an imbalanced val set favours the majority; balanced accuracy moves the threshold for the minority.
    # Three negatives (60, 70, 80) among eleven positives, four of which score below them: accuracy is best
    # calling everything positive, balanced accuracy by excluding the negatives at the cost of 4 positives.
    val = _split([50, 53, 55, 58, 60, 70, 80, 90, 100, 110, 120, 130, 140],
                 [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    dataset = ImageDataset("toy", train=val, val=val, test=val, class_names=("neg", "pos"))
    by_goal = {metric: _evaluate_test(MeanPixel(), dataset, Recipe(dataset="digits", select_metric=metric),
                                      device=torch.device("cpu"), logger=MemorySink(), step=1)
               for metric in ("val_acc", "val_balanced_acc")}
    assert by_goal["val_acc"]["test_acc"] == pytest.approx(10 / 13) and by_goal["val_acc"]["test_specificity"] == 0
    assert by_goal["val_balanced_acc"]["test_balanced_acc"] == pytest.approx((1 + 6 / 10) / 2)
    assert by_goal["val_balanced_acc"]["test_acc"] < by_goal["val_acc"]["test_acc"]


def test_threshold_metric_names_are_registered():
    assert logged_name(DECISION_THRESHOLD) == "val/decision_threshold"
    assert internal_name("val/decision_threshold") == DECISION_THRESHOLD
    for split in ("val", "test"):
        for short in ("sensitivity", "specificity", "balanced_acc"):
            assert metric_info(f"{split}_{short}").mode == "max"

"""Classifier registry, tensor training helpers and classification metrics."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from ganmix.models._registry import UnknownModelError
from ganmix.models.classifiers import ClassifierConfigError, create_classifier, list_classifiers
from ganmix.models.classify import predict_proba
from ganmix.models.evaluation import (
    MetricInputError,
    classification_metrics,
    confusion_matrix,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_lists_its_classifiers_sorted_and_a_recipe_accepts_each() -> None:
    from ganmix.search.recipe import Recipe

    names = list_classifiers()
    assert names and names == sorted(names) and "small_cnn" in names  # small_cnn: the Recipe's default
    assert [Recipe(classifier=name).classifier for name in names] == names


@pytest.mark.parametrize("name", list_classifiers())
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 28, 64])
def test_classifier_returns_logits_per_class(name: str, channels: int, size: int) -> None:
    model = create_classifier(name, in_channels=channels, num_classes=3, image_size=size).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, channels, size, size))
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("size", "first_stage"), [(64, 64), (100, 50), (128, 64), (129, 33), (256, 64)])
def test_large_images_reach_the_first_stage_at_64_px_at_most(size: int, first_stage: int) -> None:
    """Up to 64 px the first stage sees every pixel; above, a strided stem (1..256 px all classify)."""
    seen: dict[str, int] = {}
    for name, stage in (("small_cnn", lambda m: m.body[1]), ("resnet18", lambda m: m.layer1)):
        model = create_classifier(name, in_channels=3, num_classes=2, image_size=size).eval()
        stage(model).register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.shape[-1]))
        with torch.no_grad():
            assert model(torch.randn(1, 3, size, size)).shape == (1, 2)
    assert seen == {"small_cnn": first_stage, "resnet18": first_stage}


def test_bad_classifier_arguments_are_reported() -> None:
    with pytest.raises(UnknownModelError, match=f"'vit'.*{re.escape(str(list_classifiers()))}"):
        create_classifier("vit", in_channels=1, num_classes=2, image_size=28)
    with pytest.raises(ClassifierConfigError, match=r"image_size must be in 8\.\.256 px, got 4"):
        create_classifier("small_cnn", in_channels=1, num_classes=2, image_size=4)
    with pytest.raises(ClassifierConfigError, match=r"image_size must be in 8\.\.256 px, got 300"):
        create_classifier("resnet18", in_channels=1, num_classes=2, image_size=300)
    with pytest.raises(ClassifierConfigError, match="num_classes must be >= 2, got 1"):
        create_classifier("resnet18", in_channels=1, num_classes=1, image_size=28)


def test_predict_proba_is_a_distribution_and_restores_train_mode() -> None:
    model = create_classifier("small_cnn", in_channels=1, num_classes=4, image_size=8).train()
    probs = predict_proba(model, torch.randn(10, 1, 8, 8), batch_size=3)
    assert probs.shape == (10, 4) and probs.device.type == "cpu"
    torch.testing.assert_close(probs.sum(1), torch.ones(10))
    assert model.training


def test_binary_metrics_match_sklearn() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
    p1 = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.3, 0.6, 0.55])
    probs = np.stack([1 - p1, p1], axis=1)
    pred = (p1 > 0.5).astype(int)
    m = classification_metrics(labels, torch.tensor(probs), ["benign", "malignant tumour"])
    assert m["auc"] == pytest.approx(skm.roc_auc_score(labels, p1))
    assert m["acc"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert m["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(labels, pred, average="macro"))
    # By hand: class 1 is at {4, 5, 6, 8} and predicted 1 at 4, 6, 8 -> recall 3/4.
    assert m["sensitivity"] == m["recall_malignant_tumour"] == pytest.approx(3 / 4)
    # Class 0 is at {0, 1, 2, 3, 7, 9} and predicted 0 at 0, 1, 2, 7 -> recall 4/6.
    assert m["specificity"] == m["recall_benign"] == pytest.approx(4 / 6)


def test_three_class_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2] * 7)
    probs = rng.dirichlet(np.ones(3), size=len(labels))
    probs[np.arange(len(labels)), labels] += 0.4  # better than chance, not perfect
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = classification_metrics(labels, probs, ["a", "b", "c"])
    assert m["auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["acc"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert m["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(labels, pred, average="macro"))
    recalls = skm.recall_score(labels, pred, average=None)
    assert [m["recall_a"], m["recall_b"], m["recall_c"]] == pytest.approx(list(recalls))
    assert "sensitivity" not in m and "specificity" not in m


def test_absent_class_is_left_out_of_auc_and_balanced_acc() -> None:
    labels = np.array([0, 0, 1, 1])  # class 2 never occurs
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    m = classification_metrics(labels, probs, ["a", "b", "c"])
    auc_a = skm.roc_auc_score(labels == 0, probs[:, 0])
    auc_b = skm.roc_auc_score(labels == 1, probs[:, 1])
    assert m["auc"] == pytest.approx((auc_a + auc_b) / 2)
    assert np.isnan(m["recall_c"])
    assert m["balanced_acc"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    pred = probs.argmax(1)  # predicts class 2 once: it counts in macro F1 (with F1 0), as in sklearn
    assert m["macro_f1"] == pytest.approx(skm.f1_score(labels, pred, average="macro", zero_division=0))
    # With labels or predictions of one class only, AUC is undefined rather than an exception.
    assert np.isnan(classification_metrics([1, 1], [[0.2, 0.8], [0.6, 0.4]], ["x", "y"])["auc"])


def test_metric_inputs_are_checked() -> None:
    with pytest.raises(MetricInputError, match=r"probs must have shape \(2, 3\), got \(2, 2\)"):
        classification_metrics([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "b", "c"])
    with pytest.raises(MetricInputError, match=r"labels must lie in 0..1, got 0..2"):
        confusion_matrix(np.array([0, 2]), np.eye(2), 2)
    with pytest.raises(MetricInputError, match="1 NaN/inf values"):
        classification_metrics([0, 1], [[np.nan, 0.5], [0.5, 0.5]], ["a", "b"])


def test_confusion_matrix_counts_rows_as_true_class() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(labels, torch.nn.functional.one_hot(pred, 3).float(), 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, pred, labels=[0, 1, 2]))


def test_metric_names_keep_unicode_letters() -> None:
    """MLflow accepts Unicode letters in metric names: a class called 'Lungenödem' stays readable."""
    from ganmix.models.evaluation import metric_name

    assert metric_name("Lungenödem") == "Lungenödem"
    assert metric_name("胸水") == "胸水"
    assert metric_name("a-b c/d") == "a_b_c_d"

"""apply_scarcity and parse_class_fraction on a small synthetic data set with traceable images."""

from __future__ import annotations

import math
import re

import pytest
import torch

from ganmix.datasets import DatasetError, ImageDataset, Split, apply_scarcity, parse_class_fraction

CLASS_NAMES = ("malignant", "benign", "normal")
TRAIN_COUNTS = (20, 11, 5)


def _split(counts: tuple[int, ...], offset: int) -> Split:
    """Image i holds its own id (offset + i) in two pixels, so kept images can be traced back."""
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    ids = torch.arange(offset, offset + len(labels))
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = (ids // 256).to(torch.uint8), (ids % 256).to(torch.uint8)
    return Split(images, labels)


def make_dataset(train_counts: tuple[int, ...] = TRAIN_COUNTS) -> ImageDataset:
    return ImageDataset(
        name="toy",
        train=_split(train_counts, 0),
        val=_split((2, 2, 2), 1000),
        test=_split((3, 3, 3), 2000),
        class_names=CLASS_NAMES,
        description="toy data",
    )


def image_ids(split: Split) -> list[int]:
    return (split.images[:, 0, 0, 0].long() * 256 + split.images[:, 0, 0, 1].long()).tolist()


def test_train_per_class_caps_each_class_and_keeps_val_test() -> None:
    ds = make_dataset()
    thin = apply_scarcity(ds, train_per_class=8, seed=1)
    assert thin.train.class_counts(3) == [8, 8, 5]
    assert thin.val is ds.val and thin.test is ds.test
    assert torch.equal(thin.val.images, ds.val.images) and torch.equal(thin.test.labels, ds.test.labels)
    assert thin.name == ds.name and thin.class_names == ds.class_names
    assert thin.fingerprint != ds.fingerprint
    # Every kept image is an original training image with its original label.
    original = dict(zip(image_ids(ds.train), ds.train.labels.tolist()))
    assert all(original[i] == label for i, label in zip(image_ids(thin.train), thin.train.labels.tolist()))
    assert len(set(image_ids(thin.train))) == len(thin.train)


@pytest.mark.parametrize("key", ["malignant", "0"])
def test_class_fraction_by_name_or_index(key: str) -> None:
    thin = apply_scarcity(make_dataset(), class_fraction={key: 0.25})
    assert thin.train.class_counts(3) == [5, 11, 5]
    assert "class_fraction={'malignant': 0.25}" in thin.description
    assert thin.description.startswith("toy data; scarcity")


def test_fraction_applies_after_the_cap_and_keeps_at_least_one() -> None:
    thin = apply_scarcity(make_dataset(), train_per_class=10, class_fraction={"malignant": 0.3, "normal": 0.01})
    assert thin.train.class_counts(3) == [round(0.3 * 10), 10, 1]
    assert "train_per_class=10" in thin.description and "train 36 -> 14" in thin.description


def test_scarcity_is_seeded_and_nested() -> None:
    ds = make_dataset()
    a, b = apply_scarcity(ds, train_per_class=6, seed=7), apply_scarcity(ds, train_per_class=6, seed=7)
    assert a.fingerprint == b.fingerprint and "(seed=7)" in a.description
    assert apply_scarcity(ds, train_per_class=6, seed=8).fingerprint != a.fingerprint
    smaller = apply_scarcity(ds, train_per_class=3, seed=7)
    assert set(image_ids(smaller.train)) <= set(image_ids(a.train))


def test_no_setting_returns_the_data_set_unchanged() -> None:
    ds = make_dataset()
    assert apply_scarcity(ds) is ds
    assert apply_scarcity(ds, class_fraction={}) is ds


@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_train_per_class_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(DatasetError, match=re.escape(f"train_per_class must be an integer >= 1, got {value!r}")):
        apply_scarcity(make_dataset(), train_per_class=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01, math.nan])
def test_fraction_outside_zero_one_is_rejected(fraction: float) -> None:
    with pytest.raises(DatasetError, match=r"class_fraction for 'benign' is .*; expected a fraction in \(0, 1\]"):
        apply_scarcity(make_dataset(), class_fraction={"benign": fraction})


def test_unknown_class_lists_the_valid_names() -> None:
    message = (
        "unknown class 'cyst' for data set 'toy'; "
        "expected one of ['malignant', 'benign', 'normal'] or an index 0..2"
    )
    with pytest.raises(DatasetError, match=re.escape(message)):
        apply_scarcity(make_dataset(), class_fraction={"cyst": 0.5})
    with pytest.raises(DatasetError, match="unknown class '3'"):
        apply_scarcity(make_dataset(), class_fraction={"3": 0.5})


def test_same_class_by_name_and_index_is_rejected() -> None:
    with pytest.raises(DatasetError, match="names class 'benign' twice"):
        apply_scarcity(make_dataset(), class_fraction={"benign": 0.5, "1": 0.2})


def test_class_absent_from_train_is_named() -> None:
    with pytest.raises(DatasetError, match=re.escape("class 'normal' (index 2) has no training images")):
        apply_scarcity(make_dataset((4, 4, 0)), train_per_class=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("malignant=0.2", ("malignant", 0.2)),
        ("0=0.2", ("0", 0.2)),
        (" normal, benign = 1 ", ("normal, benign", 1.0)),
    ],
)
def test_parse_class_fraction(text: str, expected: tuple[str, float]) -> None:
    assert parse_class_fraction(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("malignant", "must look like CLASS=FRACTION"),
        ("=0.2", "must look like CLASS=FRACTION"),
        ("malignant=lots", "'lots' is not a number; expected a fraction in (0, 1]"),
        ("malignant=0", "class_fraction for 'malignant' is 0.0; expected a fraction in (0, 1]"),
        ("malignant=2", "class_fraction for 'malignant' is 2.0; expected a fraction in (0, 1]"),
    ],
)
def test_parse_class_fraction_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        parse_class_fraction(text)

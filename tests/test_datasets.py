"""load_dataset dispatch, the digits loader, shared helpers, fingerprints and the real MedMNIST files."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ganmix.datasets import (
    MEDMNIST_FLAGS,
    DatasetError,
    Split,
    dataset_names,
    load_dataset,
    resize_images,
)
from ganmix.datasets._common import stratified_split
from conftest import require_shared

REQUIRED_FLAGS = (
    "breastmnist",
    "pneumoniamnist",
    "dermamnist",
    "bloodmnist",
    "retinamnist",
    "pathmnist",
    "octmnist",
    "organamnist",
    "organcmnist",
    "organsmnist",
)


def test_dataset_names_lists_digits_every_flag_and_the_folder_form() -> None:
    names = dataset_names()
    assert names[0] == "digits"
    assert names[-1] == "folder:<path>"
    assert set(REQUIRED_FLAGS) <= set(MEDMNIST_FLAGS)
    assert names[1:-1] == list(MEDMNIST_FLAGS)
    assert "chestmnist" not in MEDMNIST_FLAGS


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("imagenet", "unknown data set 'imagenet'; expected one of: digits, pathmnist"),
        ("chestmnist", "chestmnist is multi-label, which ganmix does not support yet"),
        ("folder:", "has no path; expected folder:/path/to/images"),
        ("folder:/definitely/not/here", "/definitely/not/here does not exist"),
    ],
)
def test_load_dataset_rejects_bad_names(name: str, expected: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(expected)):
        load_dataset(name)


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "32"])
def test_load_dataset_rejects_bad_image_size(size: object) -> None:
    with pytest.raises(DatasetError, match=r"image_size must be a positive integer .*got " + repr(size)):
        load_dataset("digits", image_size=size)  # type: ignore[arg-type]


def test_digits_shapes_values_and_classes() -> None:
    ds = load_dataset("digits")
    assert ds.name == "digits"
    assert ds.class_names == tuple("0123456789")
    assert (ds.channels, ds.image_size) == (1, 8)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    # 0..16 maps onto 0..255 exactly at the ends, and only onto the 17 scaled levels.
    allowed = set(np.rint(np.arange(17) * 255 / 16).astype(int).tolist())
    values = torch.cat([s.images.flatten() for s in ds.splits().values()]).unique().tolist()
    assert set(values) <= allowed and min(values) == 0 and max(values) == 255


def test_digits_split_is_stratified_60_20_20_and_disjoint() -> None:
    ds = load_dataset("digits")
    totals = np.bincount(load_digits().target, minlength=10)
    for split, fraction in ((ds.train, 0.6), (ds.val, 0.2), (ds.test, 0.2)):
        counts = np.array(split.class_counts(10))
        assert np.all(np.abs(counts - fraction * totals) <= 1), (counts, fraction)
    # Together the splits hold exactly the original (pixels, label) rows, each once.
    bunch = load_digits()
    scaled = np.rint(bunch.images * 255 / 16).astype(np.uint8)
    original = sorted((img.tobytes(), int(t)) for img, t in zip(scaled, bunch.target))
    ours = sorted(
        (img[0].numpy().tobytes(), int(t)) for s in ds.splits().values() for img, t in zip(s.images, s.labels)
    )
    assert ours == original


def test_digits_fingerprint_is_stable_and_ignores_seed() -> None:
    first = load_dataset("digits", seed=0)
    assert load_dataset("digits", seed=0).fingerprint == first.fingerprint
    assert load_dataset("digits", seed=123).fingerprint == first.fingerprint


def test_changing_one_pixel_changes_the_fingerprint() -> None:
    ds = load_dataset("digits")
    images = ds.test.images.clone()
    images[0, 0, 0, 0] ^= 1
    changed = dataclasses.replace(ds, test=Split(images, ds.test.labels))
    assert changed.fingerprint != ds.fingerprint
    assert dataclasses.replace(ds).fingerprint == ds.fingerprint


def test_digits_resize_keeps_labels_and_split() -> None:
    native, big = load_dataset("digits"), load_dataset("digits", image_size=16)
    assert big.train.images.shape[1:] == (1, 16, 16)
    assert torch.equal(big.train.labels, native.train.labels)
    assert "resized to 16 px" in big.description
    assert big.fingerprint != native.fingerprint


def test_resize_images_is_identity_at_native_size_and_keeps_constants() -> None:
    images = torch.full((3, 2, 10, 10), 77, dtype=torch.uint8)
    assert resize_images(images, 10) is images
    for size in (4, 25):
        out = resize_images(images, size)
        assert out.shape == (3, 2, size, size) and out.dtype == torch.uint8
        assert torch.all(out == 77)  # antialiased bilinear must not shift a flat image


def test_resize_images_rejects_non_uint8() -> None:
    with pytest.raises(DatasetError, match=r"resize expects uint8 images \(N, C, H, W\), got torch.float32"):
        resize_images(torch.zeros(1, 1, 4, 4), 2)


def test_stratified_split_partitions_each_class() -> None:
    labels = np.array([0] * 20 + [1] * 3 + [2] * 1)
    val, test, train = stratified_split(labels, (0.2, 0.2), seed=5)
    assert sorted(np.concatenate([val, test, train]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[val], minlength=3).tolist() == [4, 1, 0]
    assert np.bincount(labels[test], minlength=3).tolist() == [4, 1, 0]
    assert np.bincount(labels[train], minlength=3).tolist() == [12, 1, 1]  # a lone sample stays in train
    again = stratified_split(labels, (0.2, 0.2), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((val, test, train), again))
    assert not np.array_equal(stratified_split(labels, (0.2, 0.2), seed=6)[0], val)


def test_real_breastmnist_matches_the_npz() -> None:
    path = require_shared("breastmnist.npz")
    ds = load_dataset("breastmnist", data_dir=path.parent, download=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (546, 78, 156)
    assert ds.class_names == ("malignant", "normal, benign")
    assert ds.train.class_counts(2) == [147, 399]
    with np.load(path) as npz:
        for name, split in ds.splits().items():
            assert np.array_equal(split.images[:, 0].numpy(), npz[f"{name}_images"])
            assert np.array_equal(split.labels.numpy(), npz[f"{name}_labels"][:, 0].astype(np.int64))


def test_real_pneumoniamnist_sizes_and_resize() -> None:
    path = require_shared("pneumoniamnist.npz")
    ds = load_dataset("pneumoniamnist", data_dir=path.parent, image_size=32, download=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4708, 524, 624)
    assert ds.class_names == ("normal", "pneumonia")
    assert ds.train.images.shape[1:] == (1, 32, 32)


def test_digits_read_from_scikit_learns_file_are_load_digits_and_keep_the_fingerprint(monkeypatch) -> None:
    from ganmix.datasets import _digits

    images, targets = _digits.digits_arrays()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(targets, bunch.target)
    ours = load_dataset("digits").fingerprint
    monkeypatch.setattr(_digits, "digits_arrays", lambda: (bunch.images, bunch.target))
    assert load_dataset("digits").fingerprint == ours


@pytest.mark.parametrize("scarcity", [{}, {"train_per_class": 20}, {"class_fraction": {"3": 0.25}},
                                      {"train_per_class": 500}])
def test_the_digits_read_light_are_the_loaders_digits(scarcity: dict) -> None:
    """The pre-flight check judges the digits as numpy (datasets/light.py): the same images, labels and
    held-out count as the loader and apply_scarcity give."""
    from ganmix.datasets import apply_scarcity
    from ganmix.datasets.light import read_light

    light = read_light("digits", data_dir=None, seed=3, **scarcity)
    loaded = apply_scarcity(load_dataset("digits"), seed=3, **scarcity)
    assert light is not None and light.class_names == loaded.class_names
    for split, s in loaded.splits().items():
        images, labels = light.splits[split]
        assert np.array_equal(images, s.images.numpy()) and np.array_equal(labels, s.labels.numpy())
    assert light.heldout == (len(loaded.heldout) if loaded.heldout is not None else 0)

"""MedMNIST .npz loader on files written in tmp_path: layouts, bad files, offline download, class table."""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganmix.datasets import MEDMNIST_FLAGS, MEDMNIST_SIZES, DatasetError, load_dataset, native_image_size
from ganmix.datasets._medmnist_info import MEDMNIST_CLASSES, MEDMNIST_URL, medmnist_file

SIZES = {"train": 12, "val": 5, "test": 7}


def make_arrays(*, num_classes: int, rgb: bool = False, size: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    """MedMNIST-shaped arrays: uint8 images (N, H, W[, 3]), uint8 labels (N, 1), every class in every split."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in SIZES.items():
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % num_classes).astype(np.uint8)[:, None]
    return arrays


def write_npz(folder: Path, flag: str, arrays: dict[str, np.ndarray], *, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{flag}.npz")
    np.savez(path, **arrays)
    return path


def test_grayscale_npz_loads_with_official_splits(tmp_path: Path) -> None:
    arrays = make_arrays(num_classes=2)
    write_npz(tmp_path, "breastmnist", arrays)
    ds = load_dataset("breastmnist", data_dir=tmp_path, download=False)
    assert ds.class_names == ("malignant", "normal, benign")
    assert (ds.channels, ds.image_size) == (1, 28)
    for split, n in SIZES.items():
        got = ds.splits()[split]
        assert got.images.shape == (n, 1, 28, 28) and got.labels.dtype == torch.int64
        assert np.array_equal(got.images[:, 0].numpy(), arrays[f"{split}_images"])
        assert np.array_equal(got.labels.numpy(), arrays[f"{split}_labels"][:, 0])


def test_rgb_npz_becomes_channels_first(tmp_path: Path) -> None:
    arrays = make_arrays(num_classes=5, rgb=True)
    write_npz(tmp_path, "retinamnist", arrays)
    ds = load_dataset("retinamnist", data_dir=tmp_path, download=False)
    assert ds.channels == 3 and ds.num_classes == 5
    assert np.array_equal(ds.val.images.permute(0, 2, 3, 1).numpy(), arrays["val_images"])


def test_resize_and_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_npz(tmp_path, "dermamnist", make_arrays(num_classes=7, rgb=True))
    monkeypatch.setenv("GANMIX_DATA_DIR", str(tmp_path))
    ds = load_dataset("DermaMNIST", image_size=16)
    assert ds.name == "dermamnist" and ds.train.images.shape == (12, 3, 16, 16)
    assert "resized to 16 px" in ds.description


def test_medmnist_plus_size_reads_its_own_file_and_resizes(tmp_path: Path) -> None:
    """MedMNIST+ naming: 28 px is <flag>.npz, the others <flag>_<size>.npz; image_size resizes (224 -> 128)."""
    write_npz(tmp_path, "breastmnist", make_arrays(num_classes=2, seed=1))  # the 28 px file must not be read
    big = make_arrays(num_classes=2, size=224, seed=2)
    write_npz(tmp_path, "breastmnist", big, name="breastmnist_224.npz")
    ds = load_dataset("breastmnist", data_dir=tmp_path, size=224, download=False)
    assert ds.image_size == 224 and native_image_size("breastmnist", size=224) == 224
    assert np.array_equal(ds.test.images[:, 0].numpy(), big["test_images"])
    assert "breastmnist_224.npz" in ds.description

    resized = load_dataset("breastmnist", data_dir=tmp_path, size=224, image_size=128, download=False)
    assert resized.train.images.shape == (12, 1, 128, 128) and "resized to 128 px" in resized.description
    assert load_dataset("breastmnist", data_dir=tmp_path, size=28, download=False).image_size == 28


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("breastmnist", 100, "size must be one of [28, 64, 128, 224] (the MedMNIST+ file sizes), got 100"),
        ("digits", 64, "size 64 picks a MedMNIST+ file; data set 'digits' is not MedMNIST"),
    ],
)
def test_bad_medmnist_size_is_one_line(tmp_path: Path, name: str, size: int, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset(name, data_dir=tmp_path, size=size, download=False)


def test_file_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    path = write_npz(tmp_path, "breastmnist", make_arrays(num_classes=2), name="breastmnist_64.npz")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: holds 28 px images; expected 64 px")):
        load_dataset("breastmnist", data_dir=tmp_path, size=64, download=False)


def test_fingerprint_is_stable_and_sees_one_pixel(tmp_path: Path) -> None:
    arrays = make_arrays(num_classes=2)
    write_npz(tmp_path, "pneumoniamnist", arrays)
    first = load_dataset("pneumoniamnist", data_dir=tmp_path, download=False)
    assert load_dataset("pneumoniamnist", data_dir=tmp_path, download=False).fingerprint == first.fingerprint
    arrays["test_images"][3, 10, 10] ^= 1
    write_npz(tmp_path, "pneumoniamnist", arrays)
    assert load_dataset("pneumoniamnist", data_dir=tmp_path, download=False).fingerprint != first.fingerprint


def _broken(change: str) -> dict[str, np.ndarray]:
    arrays = make_arrays(num_classes=2)
    if change == "missing keys":
        del arrays["val_labels"], arrays["test_images"]
    elif change == "float images":
        arrays["train_images"] = arrays["train_images"].astype(np.float32)
    elif change == "4d gray":
        arrays["val_images"] = arrays["val_images"][..., None]
    elif change == "not square":
        arrays["test_images"] = arrays["test_images"][:, :, :20]
    elif change == "label out of range":
        arrays["train_labels"][0, 0] = 2
    elif change == "multi-label":
        arrays["train_labels"] = np.zeros((12, 3), dtype=np.uint8)
    elif change == "float labels":
        arrays["val_labels"] = arrays["val_labels"].astype(np.float32)
    elif change == "length mismatch":
        arrays["test_labels"] = arrays["test_labels"][:-1]
    elif change == "class absent from train":
        arrays["train_labels"][:] = 1
    return arrays


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing keys", "missing key(s) val_labels, test_images; expected keys train_images, train_labels, val_"),
        ("float images", "train_images has dtype float32; expected uint8"),
        ("4d gray", "val_images has shape (5, 28, 28, 1); expected (N, H, W) or (N, H, W, 3)"),
        ("not square", "test_images images are 28x20; expected square images"),
        ("label out of range", "train_labels holds labels 0..2; expected 0..1 (2 classes)"),
        ("multi-label", "train_labels has shape (12, 3); expected (N, 1) or (N,)"),
        ("float labels", "val_labels has dtype float32; expected integer class indices"),
        ("length mismatch", "test_images has 7 images but test_labels has 6"),
        ("class absent from train", "class 'malignant' (index 0) has no training images"),
    ],
)
def test_bad_npz_contents_name_the_file_and_the_problem(tmp_path: Path, change: str, message: str) -> None:
    path = write_npz(tmp_path, "breastmnist", _broken(change))
    with pytest.raises(DatasetError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        load_dataset("breastmnist", data_dir=tmp_path, download=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a zip archive", "not a readable .npz"),
        (None, "holds a single array; expected an .npz archive"),
    ],
)
def test_unreadable_npz_names_the_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "breastmnist.npz"
    if content is None:
        with path.open("wb") as f:
            np.save(f, np.zeros((2, 28, 28), dtype=np.uint8))
    else:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=re.escape(f"{path}: {message}")):
        load_dataset("breastmnist", data_dir=tmp_path, download=False)


def test_missing_file_without_download_says_where_to_put_it(tmp_path: Path) -> None:
    path = tmp_path / "octmnist.npz"
    with pytest.raises(DatasetError) as info:
        load_dataset("octmnist", data_dir=tmp_path, download=False)
    text = str(info.value)
    assert f"MedMNIST file {path} is missing and download=False" in text
    assert MEDMNIST_URL.format(file="octmnist.npz") in text and f"save it as {path}" in text
    assert "\n" not in text


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """An offline machine everywhere, so a test never downloads even where it could."""
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)


def test_offline_download_fails_fast_with_the_reason(tmp_path: Path, offline: None) -> None:
    data_dir = tmp_path / "fresh"
    start = time.perf_counter()
    with pytest.raises(DatasetError) as info:
        load_dataset("bloodmnist", data_dir=data_dir)
    assert time.perf_counter() - start < 20
    text = str(info.value)
    assert f"MedMNIST file {data_dir / 'bloodmnist.npz'} is missing and the download failed (" in text
    assert "\n" not in text
    if "medmnist" in sys.modules:  # the reason is the network error, not medmnist's wrapper text
        assert "network disabled by the test" in text
    assert not (data_dir / "bloodmnist.npz").exists()


def test_offline_download_of_a_medmnist_plus_size_names_its_file(tmp_path: Path, offline: None) -> None:
    """Offline, one line names `<flag>_<size>.npz`, its URL and where to put it; nothing is left behind."""
    data_dir = tmp_path / "plus"
    with pytest.raises(DatasetError) as info:
        load_dataset("breastmnist", data_dir=data_dir, size=128)
    text, path = str(info.value), data_dir / "breastmnist_128.npz"
    assert f"MedMNIST file {path} is missing and the download failed (" in text and "\n" not in text
    assert MEDMNIST_URL.format(file="breastmnist_128.npz") in text and f"save it as {path}" in text
    assert not path.exists() and not (data_dir / "breastmnist.npz").exists()


def test_download_without_the_medmnist_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "medmnist", None)  # makes `import medmnist` raise ImportError
    with pytest.raises(DatasetError, match=r"the download failed \(the medmnist package is not importable"):
        load_dataset("pathmnist", data_dir=tmp_path)


def test_embedded_class_names_match_the_installed_medmnist() -> None:
    medmnist = pytest.importorskip("medmnist", reason="medmnist not installed; the table is checked where it is")
    for flag in MEDMNIST_FLAGS:
        labels = medmnist.INFO[flag]["label"]
        assert MEDMNIST_CLASSES[flag] == tuple(labels[str(i)] for i in range(len(labels))), flag
        assert "multi-label" not in medmnist.INFO[flag]["task"], flag
        assert medmnist.INFO[flag]["url"] == MEDMNIST_URL.format(file=medmnist_file(flag, 28)), flag
        for size in MEDMNIST_SIZES[1:]:
            assert medmnist.INFO[flag][f"url_{size}"] == MEDMNIST_URL.format(file=medmnist_file(flag, size)), flag
    assert "multi-label" in medmnist.INFO["chestmnist"]["task"]

"""Image-folder loader on small trees written with Pillow in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganmix.datasets import DatasetError, load_dataset


def write_images(folder: Path, count: int, *, mode: str = "L", size: tuple[int, int] = (12, 10), seed: int = 0) -> None:
    """`count` random PNGs of one Pillow mode (width x height = size) in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    for i in range(count):
        # 2-D uint8 arrays become mode L, (H, W, 3) ones RGB.
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(folder / f"img{i:03d}.png")


def write_tree(root: Path, counts: dict[str, int], *, mode: str = "L") -> None:
    """counts maps 'class' or 'split/class' to the number of images written there."""
    for seed, (relative, count) in enumerate(counts.items()):
        write_images(root / relative, count, mode=mode, seed=seed)


def test_flat_layout_is_split_70_15_15_with_sorted_class_names(tmp_path: Path) -> None:
    write_tree(tmp_path, {"normal": 10, "benign": 20})
    ds = load_dataset(f"folder:{tmp_path}", image_size=8, seed=3)
    assert ds.class_names == ("benign", "normal")
    assert ds.train.class_counts(2) == [14, 6]
    assert ds.val.class_counts(2) == [3, 2] and ds.test.class_counts(2) == [3, 2]
    assert ds.train.images.shape[1:] == (1, 8, 8)
    assert "stratified 70/15/15 split (seed=3)" in ds.description
    same = load_dataset(f"folder:{tmp_path}", image_size=8, seed=3)
    assert same.fingerprint == ds.fingerprint
    assert load_dataset(f"folder:{tmp_path}", image_size=8, seed=4).fingerprint != ds.fingerprint


def test_split_layout_uses_the_folders_as_they_are(tmp_path: Path) -> None:
    counts = {"train/NORMAL": 6, "train/PNEUMONIA": 9, "val/NORMAL": 1, "val/PNEUMONIA": 2}
    write_tree(tmp_path, {**counts, "test/NORMAL": 3, "test/PNEUMONIA": 4})
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_names == ("NORMAL", "PNEUMONIA")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (15, 3, 7)
    assert ds.test.class_counts(2) == [3, 4]
    assert ds.image_size == 64 and ds.channels == 1  # the default size
    assert "train/val/test folders" in ds.description


@pytest.mark.parametrize("val", [{}, {"val/a": 2}])
def test_missing_or_incomplete_val_is_carved_from_train(tmp_path: Path, val: dict[str, int]) -> None:
    write_tree(tmp_path, {"train/a": 10, "train/b": 20, **val, "test/a": 2, "test/b": 2})
    ds = load_dataset(f"folder:{tmp_path}", image_size=8)
    pool = 30 + sum(val.values())
    assert len(ds.train) + len(ds.val) == pool and len(ds.test) == 4
    assert all(count >= 1 for count in ds.val.class_counts(2))
    assert ("no val folder" if not val else "val lacks class(es) ['b']") in ds.description
    assert "stratified 15% of train" in ds.description


def test_pixels_are_kept_exactly_at_native_size(tmp_path: Path) -> None:
    write_images(tmp_path / "x", 2, size=(16, 16), seed=1)
    write_images(tmp_path / "y", 2, size=(16, 16), seed=2)
    ds = load_dataset(f"folder:{tmp_path}", image_size=16)
    files = sorted((tmp_path / "x").glob("*.png")) + sorted((tmp_path / "y").glob("*.png"))
    written = {np.asarray(Image.open(f)).tobytes() for f in files}
    loaded = {img[0].numpy().tobytes() for split in ds.splits().values() for img in split.images}
    assert loaded == written


def test_one_rgb_image_makes_everything_rgb(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 3, "b": 3})
    write_images(tmp_path / "c", 3, mode="RGB", size=(20, 20))
    ds = load_dataset(f"folder:{tmp_path}", image_size=10)
    assert ds.channels == 3 and ds.train.images.shape[1:] == (3, 10, 10)
    gray = torch.cat([s.images[s.labels < 2] for s in ds.splits().values()])
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 0], gray[:, 2])


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    for name, value in (("dark", 257 * 40), ("bright", 65535)):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 6), value, dtype=np.uint16)).save(tmp_path / name / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}", image_size=6)
    assert ds.channels == 1
    images = torch.cat([s.images for s in ds.splits().values()])
    labels = torch.cat([s.labels for s in ds.splits().values()])
    assert torch.all(images[labels == ds.class_names.index("dark")] == 40)
    assert torch.all(images[labels == ds.class_names.index("bright")] == 255)


def test_hidden_and_non_image_files_are_skipped(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / ".hidden.png").write_bytes(b"junk")
    write_images(tmp_path / ".cache", 2)
    ds = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert ds.class_names == ("a", "b")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 8


@pytest.mark.parametrize("content", [b"definitely not a png", "truncated"])
def test_corrupt_image_is_named(tmp_path: Path, content: bytes | str) -> None:
    write_tree(tmp_path, {"a": 3, "b": 3})
    bad = tmp_path / "b" / "zz_bad.png"
    if content == "truncated":
        full = (tmp_path / "b" / "img000.png").read_bytes()
        bad.write_bytes(full[: len(full) // 2])
    else:
        bad.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=re.escape(f"{bad}: unreadable or corrupt image")):
        load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({}, "no images found; expected"),
        ({"a": 0, "b": 0}, "no images found; expected"),
        ({"only": 5}, "has 1 class(es); at least 2 are needed"),
        ({"a": 5, "b": 0}, "class 'b' (index 1) has no training images"),
        ({"train/a": 3, "train/b": 3}, "has split folders ['train'] but no 'test'"),
        ({"train/a": 3, "train/b": 3, "test/a": 1, "test/c": 1}, "class 'c' is not among the training classes"),
    ],
)
def test_bad_folders_are_explained(tmp_path: Path, counts: dict[str, int], message: str) -> None:
    write_tree(tmp_path, counts)
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset(f"folder:{tmp_path}", image_size=8)


def test_folder_of_large_photos_loads_at_128_px(tmp_path: Path) -> None:
    """Users' images are 128..512 px: a 300x200 RGB tree at image_size=128, the largest generator size."""
    for seed, name in enumerate(("benign", "malignant")):
        write_images(tmp_path / name, 7, mode="RGB", size=(300, 200), seed=seed)
    ds = load_dataset(f"folder:{tmp_path}", image_size=128, seed=0)
    assert ds.train.images.shape[1:] == (3, 128, 128) and ds.image_size == 128
    assert sum(len(split) for split in ds.splits().values()) == 14
    assert "resized to 128 px" in ds.description

"""Image-folder loader: ``root/<class>/*`` or ``root/{train,val,test}/<class>/*`` (Kaggle layout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganmix.datasets._common import build_dataset, resize_images, split_from_indices, stratified_split
from ganmix.datasets._types import DatasetError, ImageDataset
from ganmix.datasets.catalog import FOLDER_SIZE as DEFAULT_IMAGE_SIZE

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"})
SPLIT_DIRS = ("train", "val", "test")
# Flat layout: stratified 70/15/15; split layout without a usable val: 15% of train.
_VAL_FRACTION = 0.15
_TEST_FRACTION = 0.15
# Pillow modes that hold one intensity channel; everything else is read as RGB.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

# (image file, class index) pairs of one split
_Listing = list[tuple[Path, int]]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(
        p for p in class_dir.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _list_split(folder: Path, class_names: tuple[str, ...]) -> _Listing:
    """Images of one split folder; a class folder unknown to train is an error, not silently dropped."""
    index = {name: i for i, name in enumerate(class_names)}
    listing: _Listing = []
    for class_dir in _class_dirs(folder):
        if class_dir.name not in index:
            raise DatasetError(
                f"{class_dir}: class {class_dir.name!r} is not among the training classes {list(class_names)}"
            )
        listing += [(f, index[class_dir.name]) for f in _image_files(class_dir)]
    return listing


def _gray_pixels(img: Image.Image) -> np.ndarray:
    """(H, W) uint8 from any single-channel mode; 16-bit and 32-bit data are scaled, not clipped."""
    if img.mode in ("1", "L", "LA", "La"):
        return np.asarray(img.convert("L"))
    values = np.asarray(img).astype(np.float64)
    # 16-bit scans (often opened as mode "I") would saturate at 255 if converted directly.
    if img.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _read_image(path: Path, size: int) -> torch.Tensor:
    """One image as uint8 (C, size, size), C = 1 for grayscale modes, else 3."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncated files fail here with their name
            if img.mode in _GRAY_MODES:
                pixels = _gray_pixels(img)[None]
            else:
                pixels = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: unreadable or corrupt image ({type(exc).__name__}: {exc})") from exc
    tensor = torch.from_numpy(np.array(pixels)).unsqueeze(0)  # a writable copy: Pillow arrays are read-only
    return resize_images(tensor, size)[0]


def _read_images(listings: list[_Listing], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All listed images as one uint8 (N, C, size, size) tensor plus int64 labels, in listing order.

    Grayscale only if every image is grayscale; otherwise gray images are repeated to RGB,
    which equals converting them to RGB before resizing.
    """
    pairs = [pair for listing in listings for pair in listing]
    images = [_read_image(path, size) for path, _ in pairs]
    channels = max(img.shape[0] for img in images)
    stacked = torch.stack([img.expand(channels, -1, -1) for img in images]).contiguous()
    return stacked, torch.tensor([label for _, label in pairs], dtype=torch.int64)


@dataclass(frozen=True, kw_only=True)
class _Layout:
    """What was found under the root, before any pixel is read."""

    class_names: tuple[str, ...]
    train: _Listing
    val: _Listing
    test: _Listing
    split_dirs: bool  # root/{train,val,test}/<class>/ rather than root/<class>/
    has_val_dir: bool


def _scan(root: Path) -> _Layout:
    present = {d.name for d in _class_dirs(root)} & set(SPLIT_DIRS)
    if not present:
        class_names = tuple(d.name for d in _class_dirs(root))
        return _Layout(
            class_names=class_names,
            train=_list_split(root, class_names),
            val=[],
            test=[],
            split_dirs=False,
            has_val_dir=False,
        )
    for required in ("train", "test"):
        if required not in present:
            raise DatasetError(
                f"{root}: has split folders {sorted(present)} but no {required!r}; "
                f"expected {root}/train/<class>/ and {root}/test/<class>/ (val is optional)"
            )
    class_names = tuple(d.name for d in _class_dirs(root / "train"))
    return _Layout(
        class_names=class_names,
        train=_list_split(root / "train", class_names),
        val=_list_split(root / "val", class_names) if "val" in present else [],
        test=_list_split(root / "test", class_names),
        split_dirs=True,
        has_val_dir="val" in present,
    )


def _split_indices(layout: _Layout, labels: np.ndarray, seed: int) -> tuple[list[np.ndarray], str]:
    """Train/val/test positions into the concatenated listings, and how they were chosen."""
    if not layout.split_dirs:
        val, test, train = stratified_split(labels, (_VAL_FRACTION, _TEST_FRACTION), seed=seed)
        return [train, val, test], f"stratified 70/15/15 split (seed={seed})"
    bounds = np.cumsum([0, len(layout.train), len(layout.val), len(layout.test)])
    train, val, test = (np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:]))
    in_val = set(labels[val].tolist())
    missing = [name for i, name in enumerate(layout.class_names) if i not in in_val]
    if not missing:
        return [train, val, test], "train/val/test folders"
    # A val split without some class cannot score that class: rebuild val from train (+ what val had).
    why = f"val lacks class(es) {missing}" if layout.has_val_dir else "no val folder"
    pool = np.concatenate([train, val])
    carved_val, carved_train = stratified_split(labels[pool], (_VAL_FRACTION,), seed=seed)
    how = f"train/test folders; {why}, so val is a stratified 15% of train (+ old val) (seed={seed})"
    return [pool[carved_train], pool[carved_val], test], how


def load_image_folder(root: str | Path, *, image_size: int | None = None, seed: int = 0) -> ImageDataset:
    """Images under ``root`` resized to image_size (default 64), class names = sorted folder names.

    With split folders, a missing ``val`` (or one lacking a class) is merged into train and a
    stratified 15% val is carved from train with ``seed``; without them the whole tree is split
    70/15/15 with ``seed``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a directory")
    size = image_size or DEFAULT_IMAGE_SIZE
    layout = _scan(root)
    if not layout.train:
        raise DatasetError(
            f"{root}: no images found; expected {root}/<class>/<image> or {root}/train/<class>/<image> "
            f"with an extension in {sorted(IMAGE_EXTENSIONS)}"
        )
    images, labels = _read_images([layout.train, layout.val, layout.test], size)
    (train, val, test), how = _split_indices(layout, labels.numpy(), seed)
    return build_dataset(
        source=str(root),
        name=f"folder:{root}",
        train=split_from_indices(images, labels, train),
        val=split_from_indices(images, labels, val),
        test=split_from_indices(images, labels, test),
        class_names=layout.class_names,
        description=f"image folder {root}, {how}, resized to {size} px",
    )

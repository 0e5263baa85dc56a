"""The one in-memory data type every loader returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import torch

from ganmix.datasets.errors import DatasetError, MissingDataError  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N, C, H, W) and int64 labels (N,), both on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DatasetError(
                f"images must be uint8 with shape (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.ndim != 1:
            raise DatasetError(f"labels must be int64 with shape (N,), got {self.labels.dtype} {tuple(self.labels.shape)}")
        if len(self.images) != len(self.labels):
            raise DatasetError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index].contiguous(), self.labels[index].contiguous())


@dataclass(frozen=True)
class ImageDataset:
    """Train/val/test splits of one data set, with class names and a content fingerprint."""

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    # Free-form provenance (source file, scarcity settings); not part of the fingerprint.
    description: str = field(default="", compare=False)
    # The train images a scarcity option left out (None: none was applied): real images the classifier never
    # sees, which only the `holdout` positive control draws from. Never val or test images.
    heldout: Split | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise DatasetError(f"data set {self.name!r} has {len(self.class_names)} class(es); at least 2 are needed")
        shapes = {tuple(s.images.shape[1:]) for s in (self.train, self.val, self.test)}
        if len(shapes) != 1:
            raise DatasetError(f"data set {self.name!r}: splits differ in image shape: {sorted(shapes)}")
        for split_name, split in self.splits().items():
            if len(split) and (int(split.labels.min()) < 0 or int(split.labels.max()) >= self.num_classes):
                raise DatasetError(
                    f"data set {self.name!r}: {split_name} labels must lie in 0..{self.num_classes - 1}, "
                    f"got {int(split.labels.min())}..{int(split.labels.max())}"
                )

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over every split's arrays and the class names: equal content, equal fingerprint."""
        h = hashlib.sha256()
        for split_name, split in self.splits().items():
            h.update(split_name.encode())
            h.update(str(tuple(split.images.shape)).encode())
            h.update(split.images.contiguous().numpy().tobytes())
            h.update(split.labels.contiguous().numpy().tobytes())
        h.update("\x00".join(self.class_names).encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        counts = ", ".join(f"{n}={c}" for n, c in zip(self.class_names, self.train.class_counts(self.num_classes)))
        return (
            f"{self.name}: {self.channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes; "
            f"train {len(self.train)} ({counts}), val {len(self.val)}, test {len(self.test)}"
        )

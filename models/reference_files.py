"""Where the reference classifier's files are (models/reference.py), without torch or the trainer: a search's
driver asks whether the file is cached before it imports any training code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ganmix.models.files import user_cache_dir

if TYPE_CHECKING:
    from ganmix.datasets import ImageDataset

# A new version whenever models/reference.py's pinned recipe, architecture or preprocessing changes: the
# version is in the cache file's name and logged beside every sample metric, so numbers of two versions never mix.
REFERENCE_VERSION = 2  # 1: trained with the trainer's defaults (until eff37b0); 2: pinned, no augmentation


def reference_dir() -> Path:
    """The user-level folder of reference files, shared by every results folder."""
    return user_cache_dir("reference")


def reference_path(ds: ImageDataset, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or reference_dir()) / f"{ds.fingerprint}-v{REFERENCE_VERSION}.pt"

"""Shared fixtures: where the real MedMNIST files live, and small synthetic data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout (see DEVELOPERS.md); GANMIX_SHARED_DATA overrides it.
SHARED_DATA = Path(os.environ.get("GANMIX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def require_shared(name: str) -> Path:
    """Path of ../shared/data/<name>, or skip the test with a reason when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real MedMNIST files live in ../shared/data; see its README)")
    return path

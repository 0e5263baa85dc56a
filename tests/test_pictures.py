"""Labelled pictures: class names on grid rows; which column is generated and how close each pair is."""

from __future__ import annotations

import numpy as np
import torch

from ganmix.models.pictures import labelled_grid, labelled_pairs


def _dark_rows(image) -> list[int]:
    """Rows (tile bands) of the picture's label column that hold text (dark pixels on white)."""
    gray = np.asarray(image.convert("L"))
    return [int(y) for y in np.nonzero((gray[:, :20] < 100).any(axis=1))[0]]


def test_grid_has_a_labelled_row_per_class():
    images = torch.full((7, 1, 8, 8), 255, dtype=torch.uint8)
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    grid = labelled_grid(images, labels, ("benign", "malignant", "normal"), per_class=4)
    plain = labelled_grid(images, labels, ("a", "b", "c"), per_class=4)
    assert grid.mode == "RGB" and grid.height >= 3 * 64
    assert grid.width > plain.width  # the left column is as wide as the longest class name
    assert len(_dark_rows(grid)) > 0  # text drawn in the label column
    gray = np.asarray(grid.convert("L"))
    assert (gray == 255).sum() > 3 * 64 * 64  # the white tiles are upscaled to ~64 px


def test_pairs_name_their_columns_and_distances():
    gen = torch.zeros((3, 1, 28, 28), dtype=torch.uint8)
    real = torch.full((3, 1, 28, 28), 255, dtype=torch.uint8)
    picture = labelled_pairs(gen, real, torch.tensor([0.0, 0.25, 1.5]))
    assert picture.height > 3 * 56  # a header row above three pairs
    gray = np.asarray(picture.convert("L"))
    header = gray[:20]
    assert (header < 100).any()  # "generated", "nearest real" drawn above the columns
    assert picture.width > 2 * 56 + 60  # the distance column on the right

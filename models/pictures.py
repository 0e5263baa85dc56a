"""Labelled pictures for people: a sample grid with class names on its rows, and the closest
(generated, nearest real) pairs with which column is which and how close they are. PIL only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

TILE = 64  # tiles are upscaled (nearest neighbour) to about this many pixels so 8-28 px images are legible
PAD = 4
FONT_SIZE = 14


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _tile(image_u8_chw: torch.Tensor, size: int) -> Image.Image:
    array = image_u8_chw.cpu().numpy()
    array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    factor = max(1, size // max(array.shape[:2]))
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB").resize(
        (array.shape[1] * factor, array.shape[0] * factor), Image.Resampling.NEAREST)


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _canvas(rows: Sequence[Sequence[Image.Image]], *, left: Sequence[str], right: Sequence[str] = (),
            header: Sequence[str] = ()) -> Image.Image:
    """Tiles in rows, a label left of each row, optional labels right of rows and above columns."""
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # A column is as wide as its widest tile or header.
    n_cols = max(len(row) for row in rows)
    tile_w = max([t.width for row in rows for t in row] + [_text_width(probe, t, font) + PAD for t in header[:n_cols]])
    tile_h = max(t.height for row in rows for t in row)
    left_w = max((_text_width(probe, t, font) for t in left), default=0) + 2 * PAD
    right_w = max((_text_width(probe, t, font) for t in [*right, *header[n_cols:]]), default=0) + (2 * PAD if right else 0)
    top = FONT_SIZE + 2 * PAD if header else 0
    width = left_w + n_cols * (tile_w + PAD) + PAD + right_w
    height = top + len(rows) * (tile_h + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(header[:n_cols]):
        x = left_w + PAD + j * (tile_w + PAD)
        draw.text((x + (tile_w - _text_width(draw, text, font)) // 2, PAD), text, fill="black", font=font)
    if len(header) > n_cols and right:  # a header for the right-hand labels
        draw.text((left_w + n_cols * (tile_w + PAD) + 2 * PAD, PAD), header[n_cols], fill="black", font=font)
    for i, row in enumerate(rows):
        y = top + PAD + i * (tile_h + PAD)
        middle = y + (tile_h - FONT_SIZE) // 2
        draw.text((PAD, middle), left[i], fill="black", font=font)
        for j, tile in enumerate(row):
            canvas.paste(tile, (left_w + PAD + j * (tile_w + PAD) + (tile_w - tile.width) // 2, y))
        if right:
            draw.text((left_w + n_cols * (tile_w + PAD) + 2 * PAD, middle), right[i], fill="black", font=font)
    return canvas


def labelled_grid(images_u8: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], *,
                  per_class: int = 8, tile: int = TILE) -> Image.Image:
    """One row per class, its name on the left, its first `per_class` generated images (grey when fewer)."""
    if images_u8.dtype != torch.uint8 or images_u8.ndim != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images_u8.dtype} {tuple(images_u8.shape)}")
    blank = torch.full(images_u8.shape[1:], 200, dtype=torch.uint8)
    labels = labels.cpu()
    rows = []
    for k in range(len(class_names)):
        members = list(images_u8[labels == k][:per_class])
        rows.append([_tile(m, tile) for m in members + [blank] * (per_class - len(members))])
    counts = [int((labels == k).sum()) for k in range(len(class_names))]
    return _canvas(rows, left=[str(n) for n in class_names], right=[f"n={c}" for c in counts])


def labelled_pairs(generated_u8: torch.Tensor, real_u8: torch.Tensor, ratios: torch.Tensor, *,
                   tile: int = TILE) -> Image.Image:
    """The closest pairs, one per row: generated | nearest real train image, with their distance as a
    ratio of the typical real-to-real nearest-neighbour distance (0 = an exact copy, ~1 = unrelated)."""
    rows = [[_tile(g, tile), _tile(r, tile)] for g, r in zip(generated_u8, real_u8)]
    return _canvas(rows, left=[f"#{i + 1}" for i in range(len(rows))],
                   right=[f"distance {float(d):.2f}" for d in ratios],
                   header=["generated", "nearest real", "1 = typical real pair"])

"""Contact sheets: many figures as thumbnails on one grid image, each with a caption."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .draw import put_text, text_size

__all__ = ["contact_sheet", "thumbnail"]

CAPTION_SCALE = 0.4
CAPTION_H = 16
PAD = 8


def thumbnail(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` shrunk (never enlarged) to fit ``width`` x ``height``, aspect ratio kept."""
    h, w = image.shape[:2]
    scale = min(1.0, width / w, height / h)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def contact_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    ncols: int = 4,
    cell_width: int = 400,
    cell_height: int = 300,
) -> np.ndarray:
    """A grid of thumbnails, row by row, each in a ``cell_width`` x ``cell_height`` cell with its
    caption underneath (cut to the cell width).

    Returns:
        Array[rows * (cell_height + 16 + 8) + 8, ncols' * (cell_width + 8) + 8, 3] uint8 RGB,
        ``ncols' = min(ncols, len(images))``; white background.

    Raises:
        ValueError: no images, or ``captions`` of another length.
    """
    if not images:
        raise ValueError("contact_sheet: no images")
    captions = list(captions) if captions is not None else [""] * len(images)
    if len(captions) != len(images):
        raise ValueError(f"contact_sheet: {len(images)} images but {len(captions)} captions")
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    cw, ch = cell_width + PAD, cell_height + CAPTION_H + PAD
    sheet = np.full((nrows * ch + PAD, ncols * cw + PAD, 3), 255, np.uint8)
    for i, (img, cap) in enumerate(zip(images, captions, strict=True)):
        x, y = PAD + (i % ncols) * cw, PAD + (i // ncols) * ch
        thumb = thumbnail(img, cell_width, cell_height)
        sheet[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb
        while cap and text_size(cap, CAPTION_SCALE)[0] > cell_width:
            cap = cap[:-1]
        put_text(sheet, cap, x, y + cell_height + CAPTION_H - 4, (0, 0, 0), CAPTION_SCALE)
    return sheet

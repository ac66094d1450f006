"""Drawing primitives on RGB uint8 arrays (numpy + OpenCV): box outlines, label tags, mask
overlays, colour maps. Every function draws exactly where it says, so tests can check pixels.

Coordinates: ``(x1, y1, x2, y2)`` inclusive pixel indices of the array drawn on.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "IGNORE_RGB",
    "INVALID_RGB",
    "blend",
    "colorize",
    "draw_outline",
    "draw_tag",
    "font_scale",
    "line_width",
    "outline_mask",
    "palette_color",
    "put_text",
    "resize_nearest",
    "text_color",
    "text_size",
]

FONT = cv2.FONT_HERSHEY_SIMPLEX
#: VOC's colour of the 255 (ignore / boundary) label.
IGNORE_RGB = (224, 224, 192)
#: Depth pixels without a valid value (0 in the ground truth); no colour map used here has it.
INVALID_RGB = (128, 128, 128)
_CMAPS = {
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
}

RGB = tuple[int, int, int]
#: Colours for class indices beyond a dataset's palette.
FALLBACK_COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                   (145, 30, 180), (70, 240, 240), (240, 50, 230)]  # fmt: skip


def palette_color(palette: Sequence, label: int) -> RGB:
    """``palette[label]`` as an RGB tuple; a fallback colour when the palette is too short."""
    if 0 <= label < len(palette):
        return tuple(int(c) for c in palette[label])[:3]
    return FALLBACK_COLORS[label % len(FALLBACK_COLORS)]


def line_width(shape: Sequence[int]) -> int:
    """Box line width for an image of ``shape`` (H, W, ...): 1 px below 240 px, 2 px at 256."""
    return max(1, round(min(shape[0], shape[1]) / 160))


def font_scale(shape: Sequence[int]) -> float:
    """OpenCV font scale for labels on an image of ``shape``; about 9 px high text at 0.35."""
    return 0.35 if min(shape[0], shape[1]) < 300 else 0.45


def text_size(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height above the baseline, descent below it) of ``text`` in pixels."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    return w, h, base


def text_color(bg: Sequence[int]) -> RGB:
    """Black or white, whichever reads better on ``bg`` (RGB)."""
    r, g, b = (int(c) for c in bg[:3])
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def put_text(img: np.ndarray, text: str, x: int, y: int, color: Sequence[int], scale: float):
    """Draw ``text`` with its baseline starting at (x, y), in place."""
    cv2.putText(img, text, (int(x), int(y)), FONT, scale, tuple(int(c) for c in color), 1,
                cv2.LINE_AA)  # fmt: skip


def draw_tag(
    img: np.ndarray, text: str, x: int, y: int, bg: Sequence[int], scale: float
) -> tuple[int, int, int, int]:
    """A filled label tag whose bottom-left corner is at (x, y - 1), i.e. just above row ``y``;
    moved inside (below ``y``) when there is no room above, and kept within the image.

    Returns:
        The tag rectangle (x1, y1, x2, y2), inclusive; every pixel in it is overwritten.
    """
    h_img, w_img = img.shape[:2]
    tw, th, base = text_size(text, scale)
    w, h = min(tw + 4, w_img), min(th + base + 3, h_img)
    x1 = int(min(max(x, 0), w_img - w))
    y1 = int(y - h) if y - h >= 0 else int(min(max(y, 0), h_img - h))
    x2, y2 = x1 + w - 1, y1 + h - 1
    img[y1 : y2 + 1, x1 : x2 + 1] = bg
    put_text(img[y1 : y2 + 1, x1 : x2 + 1], text, 2, th + 1, text_color(bg), scale)
    return x1, y1, x2, y2


def outline_mask(
    shape: Sequence[int],
    box: Sequence[float],
    thickness: int = 1,
    dashed: bool = False,
    dash: int = 4,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Pixels of a box outline ``thickness`` wide, drawn inside the box, clipped to the image.

    Args:
        shape: (H, W) of the image.
        box: (x1, y1, x2, y2) inclusive pixel indices (rounded).
        dashed: keep only alternate runs of ``dash`` pixels along the outline.
        origin: (x, y) of this array's top-left pixel in a larger image, so a crop gets the same
            dash pattern as the whole image.

    Returns:
        Array[H, W] bool.
    """
    h, w = int(shape[0]), int(shape[1])
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    mask = np.zeros((h, w), bool)
    x1c, y1c, x2c, y2c = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if x1c > x2c or y1c > y2c:
        return mask
    mask[y1c : y2c + 1, x1c : x2c + 1] = True
    t = max(1, int(thickness))
    ix1, iy1, ix2, iy2 = max(x1 + t, 0), max(y1 + t, 0), min(x2 - t, w - 1), min(y2 - t, h - 1)
    if ix1 <= ix2 and iy1 <= iy2:
        mask[iy1 : iy2 + 1, ix1 : ix2 + 1] = False
    if dashed:
        yy, xx = np.mgrid[0:h, 0:w]
        mask &= ((xx + yy + origin[0] + origin[1]) // dash) % 2 == 0
    return mask


def draw_outline(
    img: np.ndarray,
    box: Sequence[float],
    color: Sequence[int],
    thickness: int = 1,
    dashed: bool = False,
    fill_alpha: float = 0.0,
) -> None:
    """Draw `outline_mask` of ``box`` in ``color`` in place, over a ``fill_alpha`` blend of the
    box interior (0: no fill); works on the box's crop only, so 100 boxes stay fast."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1c, y1c, x2c, y2c = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if x1c > x2c or y1c > y2c:
        return
    crop = img[y1c : y2c + 1, x1c : x2c + 1]
    if fill_alpha > 0:
        blend(crop, np.ones(crop.shape[:2], bool), color, fill_alpha)
    local = (x1 - x1c, y1 - y1c, x2 - x1c, y2 - y1c)
    crop[outline_mask(crop.shape, local, thickness, dashed, origin=(x1c, y1c))] = color


def blend(img: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float) -> None:
    """``img[mask] = (1 - alpha) * img + alpha * color`` in place (rounded)."""
    if not mask.any():
        return
    color = np.asarray(color, np.float32)
    img[mask] = np.round((1 - alpha) * img[mask].astype(np.float32) + alpha * color).astype(
        np.uint8
    )


def colorize(
    values: np.ndarray,
    valid: np.ndarray,
    vmin: float,
    vmax: float,
    cmap: str = "viridis",
    invalid_rgb: Sequence[int] = INVALID_RGB,
) -> np.ndarray:
    """Map ``values`` (Array[H, W] float) to RGB uint8 with an OpenCV colour map.

    Args:
        valid: Array[H, W] bool; other pixels get ``invalid_rgb``.
        vmin, vmax: the values at the two ends of the colour map (clipped beyond).
        cmap: ``'viridis'``, ``'magma'``, ``'turbo'`` or ``'inferno'``.
    """
    if cmap not in _CMAPS:
        raise ValueError(f"colour map {cmap!r} is not one of {sorted(_CMAPS)}")
    span = max(float(vmax) - float(vmin), 1e-6)
    norm = np.clip((np.nan_to_num(values.astype(np.float32)) - vmin) / span, 0.0, 1.0)
    bgr = cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), _CMAPS[cmap])
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    rgb[~valid] = invalid_rgb
    return rgb


def resize_nearest(arr: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``arr`` (Array[h, w], any dtype) resized to (H, W) by nearest neighbour, values kept."""
    h, w = arr.shape[:2]
    if (h, w) == tuple(shape[:2]):
        return arr
    rows = np.minimum((np.arange(shape[0]) + 0.5) * h / shape[0], h - 1).astype(np.int64)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * w / shape[1], w - 1).astype(np.int64)
    return arr[rows[:, None], cols[None, :]]

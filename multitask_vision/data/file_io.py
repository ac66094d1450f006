"""Readers for the files of the on-disk dataset formats, with errors that name the file.

Every function raises `BadSampleError` (``"<path>: <what is wrong>"``) for a missing, empty,
corrupt or wrongly typed file, so that a broken sample never reaches collate or the model.
Files are read through mmengine's ``fileio`` so that ``backend_args`` (e.g. a Petrel or HTTP
backend) work as in mmdet and mmseg.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import cv2
import numpy as np
from mmengine import fileio
from PIL import Image

from multitask_vision.data.bad_samples import BadSampleError

__all__ = [
    "read_bytes",
    "read_depth_png",
    "read_image",
    "read_label_png",
    "read_split_file",
]


def read_bytes(path: str, backend_args: dict | None = None, what: str = "file") -> bytes:
    """Read a whole file; ``what`` names it in errors (``'image'``, ``'annotation'`` ...)."""
    try:
        data = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise BadSampleError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise BadSampleError(f"{path}: expected a {what} file, found a directory") from None
    if not data:
        raise BadSampleError(f"{path}: {what} file is empty (0 bytes)")
    return data


def read_image(path: str, backend_args: dict | None = None) -> np.ndarray:
    """Read a colour image as mmcv does (``mmcv.imread`` convention).

    Returns:
        Array[H, W, 3] uint8, BGR channel order.
    """
    data = read_bytes(path, backend_args, what="image")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BadSampleError(
            f"{path}: cannot decode image ({len(data)} bytes): corrupt, truncated or not an image"
        )
    return img


def read_label_png(path: str, backend_args: dict | None = None) -> np.ndarray:
    """Read a class-index PNG (VOC ``SegmentationClass``: palette mode; also grayscale).

    A palette PNG must be read as indices, not colours: OpenCV would return the palette colours,
    so this uses Pillow, as mmseg does.

    Returns:
        Array[H, W] uint8 of class indices (255 = ignore, by the VOC convention).
    """
    data = read_bytes(path, backend_args, what="segmentation mask")
    try:
        with Image.open(io.BytesIO(data)) as png:
            mode = png.mode
            if mode not in ("P", "L"):
                raise BadSampleError(
                    f"{path}: segmentation mask has PIL mode {mode!r}; expected a palette ('P') "
                    "or grayscale ('L') PNG of class indices (a colour-rendered mask cannot be "
                    "read as labels)"
                )
            png.load()
            return np.asarray(png, dtype=np.uint8)
    except BadSampleError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise BadSampleError(f"{path}: cannot decode segmentation mask PNG ({e})") from None


def read_depth_png(path: str, depth_scale: float, backend_args: dict | None = None) -> np.ndarray:
    """Read a 16-bit depth PNG (the KITTI / NYU / BTS convention) and convert it to metres.

    Args:
        path: the PNG file; pixel value ``v`` means ``v / depth_scale`` metres, 0 means invalid.
        depth_scale: 1000 for millimetres (NYU, BTS), 256 for KITTI.

    Returns:
        Array[H, W] float32 metres; 0 where the sensor gave no depth.
    """
    data = read_bytes(path, backend_args, what="depth map")
    depth = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise BadSampleError(f"{path}: cannot decode depth PNG: corrupt, truncated or not a PNG")
    if depth.ndim != 2:
        raise BadSampleError(
            f"{path}: depth map has {depth.shape[2]} channels; expected a single-channel 16-bit PNG"
        )
    if depth.dtype != np.uint16:
        raise BadSampleError(
            f"{path}: depth map is {depth.dtype} ({depth.dtype.itemsize * 8}-bit); expected a "
            f"16-bit PNG of depth in 1/{depth_scale:g} m units (an 8-bit PNG is usually a "
            "visualisation, not depth)"
        )
    return depth.astype(np.float32) / np.float32(depth_scale)


def read_split_file(path: str, backend_args: dict | None = None) -> list[str]:
    """Read a split file: one entry per non-empty line, surrounding whitespace stripped.

    Raises:
        FileNotFoundError: the file does not exist (listing the split files next to it).
        ValueError: the file has no entries.
    """
    try:
        text = fileio.get_text(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: split file not found{_siblings_hint(path)}") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"{path}: split file is empty (no sample ids)")
    return lines


def _siblings_hint(path: str) -> str:
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return f" (its folder {folder} does not exist either)"
    names = sorted(f for f in os.listdir(folder) if f.endswith(".txt"))
    return f"; split files in {folder}: {_short_list(names)}" if names else ""


def _short_list(names: Sequence[str], n: int = 12) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")

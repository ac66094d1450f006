"""Augmentations applied to the image and to every ground-truth type at once.

Each geometric transform moves ``img``, ``gt_bboxes``, ``gt_seg_map`` and ``gt_depth_map``
together (keys as in `loading`), so boxes, masks and depth stay aligned with the pixels:

- the image is resized bilinearly; class masks and depth maps with *nearest* (centre-aligned,
  ``cv2.INTER_NEAREST_EXACT``): a label is never blended, and a depth value is never interpolated
  across an invalid (0) pixel or across an object boundary (no "flying pixels").
- boxes are scaled, flipped (mmdet's formulas, ``x1' = w - x2``) and cropped, then clipped to
  the image; a crop drops boxes left with no area.

Names and arguments follow mmdet (``scale=(w, h)``, ``keep_ratio``, ``crop_size=(w, h)``), so
mmdet configs read the same; our versions also move depth maps, which mmdet's do not. The
originals stay reachable as ``'mmdet.Resize'`` etc. Randomness uses numpy's global generator,
as mmcv's transforms do, which mmengine seeds per dataloader worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from multitask_vision.registry import TRANSFORMS

__all__ = [
    "PhotoMetricDistortion",
    "RandomCrop",
    "RandomFlip",
    "RandomResize",
    "Resize",
    "rescale_size",
]

_MAP_KEYS = ("gt_seg_map", "gt_depth_map")
_INTERP = {"nearest": cv2.INTER_NEAREST_EXACT, "bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, float)):
        return int(value), int(value)
    if isinstance(value, Sequence) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a (w, h) pair, got {value!r}")


def rescale_size(w: int, h: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rule: the largest size with long edge <= max(scale), short <= min(scale).

    Returns:
        (new_w, new_h), each rounded half up as ``mmcv.rescale_size`` does.
    """
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


def resize_results(results: dict, new_w: int, new_h: int, interpolation: str = "bilinear") -> None:
    """Resize the image and all ground truth of ``results`` to ``new_w x new_h`` in place.

    ``scale_factor`` (w_scale, h_scale) is multiplied, so it always maps ``ori_shape`` pixels to
    the current ones (as long as no crop intervened).
    """
    img = results["img"]
    h, w = img.shape[:2]
    if (new_w, new_h) != (w, h):
        results["img"] = cv2.resize(img, (new_w, new_h), interpolation=_INTERP[interpolation])
        for key in _MAP_KEYS:
            if key in results:
                results[key] = cv2.resize(
                    results[key], (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT
                )
    w_scale, h_scale = new_w / w, new_h / h
    if "gt_bboxes" in results:
        boxes = results["gt_bboxes"] * np.array([w_scale, h_scale, w_scale, h_scale], np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, new_w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, new_h)
        results["gt_bboxes"] = boxes
    old = results.get("scale_factor", (1.0, 1.0))
    results["scale_factor"] = (old[0] * w_scale, old[1] * h_scale)
    results["img_shape"] = (new_h, new_w)


@TRANSFORMS.register_module()
class Resize(BaseTransform):
    """Resize to a fixed scale (keeping the aspect ratio by default) or by a factor.

    Args:
        scale: target (w, h) or one int for a square. With ``keep_ratio`` the image becomes as
            large as fits: long edge <= max(scale), short edge <= min(scale) (mmcv's rule).
        scale_factor: resize by this factor (float or (w, h) pair) instead of ``scale``.
        keep_ratio: keep the aspect ratio (True) or stretch to exactly ``scale``.
        interpolation: for the image: ``'bilinear'`` (default), ``'nearest'`` or ``'area'``.

    Updates: img, gt_bboxes, gt_seg_map, gt_depth_map, img_shape, scale_factor (w, h).
    """

    def __init__(
        self,
        scale: int | Sequence[int] | None = None,
        scale_factor: float | Sequence[float] | None = None,
        keep_ratio: bool = True,
        interpolation: str = "bilinear",
    ):
        if (scale is None) == (scale_factor is None):
            raise ValueError("Resize: give exactly one of scale=(w, h) and scale_factor")
        if interpolation not in _INTERP:
            raise ValueError(f"Resize: interpolation {interpolation!r} not in {list(_INTERP)}")
        self.scale = None if scale is None else _pair(scale, "Resize scale")
        if scale_factor is not None and not isinstance(scale_factor, Sequence):
            scale_factor = (float(scale_factor), float(scale_factor))
        self.scale_factor = scale_factor
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation

    def target_size(self, w: int, h: int, scale: tuple[int, int] | None = None) -> tuple[int, int]:
        scale = scale or self.scale
        if scale is None:
            return int(w * self.scale_factor[0] + 0.5), int(h * self.scale_factor[1] + 0.5)
        return rescale_size(w, h, scale) if self.keep_ratio else scale

    def transform(self, results: dict) -> dict:
        h, w = results["img"].shape[:2]
        resize_results(results, *self.target_size(w, h), self.interpolation)
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale={self.scale}, scale_factor={self.scale_factor}, "
            f"keep_ratio={self.keep_ratio})"
        )


@TRANSFORMS.register_module()
class RandomResize(BaseTransform):
    """Resize to ``scale`` times a random ratio (mmcv's ``RandomResize`` semantics).

    Args:
        scale: base (w, h).
        ratio_range: (lo, hi): the scale is multiplied by ``uniform(lo, hi)``.
        keep_ratio: as `Resize`.
    """

    def __init__(
        self,
        scale: int | Sequence[int],
        ratio_range: Sequence[float] = (0.5, 2.0),
        keep_ratio: bool = True,
    ):
        self.scale = _pair(scale, "RandomResize scale")
        lo, hi = (float(r) for r in ratio_range)
        if not 0 < lo <= hi:
            raise ValueError(f"RandomResize: ratio_range must be 0 < lo <= hi, got {ratio_range}")
        self.ratio_range = (lo, hi)
        self.resize = Resize(scale=self.scale, keep_ratio=keep_ratio)

    def transform(self, results: dict) -> dict:
        ratio = np.random.uniform(*self.ratio_range)
        scale = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        h, w = results["img"].shape[:2]
        resize_results(results, *self.resize.target_size(w, h, scale))
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, ratio_range={self.ratio_range})"


@TRANSFORMS.register_module()
class RandomFlip(BaseTransform):
    """Flip image and ground truth with probability ``prob``.

    Args:
        prob: probability of flipping.
        direction: ``'horizontal'``, ``'vertical'``, or a list to pick from uniformly.

    Sets ``flip`` (bool) and ``flip_direction`` (str or None). A horizontal flip maps a box
    (x1, y1, x2, y2) of an image of width w to (w - x2, y1, w - x1, y2), as mmdet's does.
    """

    def __init__(self, prob: float = 0.5, direction: str | Sequence[str] = "horizontal"):
        directions = [direction] if isinstance(direction, str) else list(direction)
        for d in directions:
            if d not in ("horizontal", "vertical"):
                raise ValueError(f"RandomFlip: direction {d!r} not in ('horizontal', 'vertical')")
        if not 0 <= prob <= 1:
            raise ValueError(f"RandomFlip: prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.directions = directions

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            results.setdefault("flip", False)
            results.setdefault("flip_direction", None)
            return results
        direction = self.directions[np.random.randint(len(self.directions))]
        flip_results(results, direction)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob}, direction={self.directions})"


def flip_results(results: dict, direction: str) -> None:
    """Flip the image and all ground truth in place (``'horizontal'`` or ``'vertical'``)."""
    axis = 1 if direction == "horizontal" else 0
    h, w = results["img"].shape[:2]
    results["img"] = np.ascontiguousarray(np.flip(results["img"], axis))
    for key in _MAP_KEYS:
        if key in results:
            results[key] = np.ascontiguousarray(np.flip(results[key], axis))
    if "gt_bboxes" in results:
        b = results["gt_bboxes"].copy()
        if axis == 1:
            b[:, 0], b[:, 2] = w - results["gt_bboxes"][:, 2], w - results["gt_bboxes"][:, 0]
        else:
            b[:, 1], b[:, 3] = h - results["gt_bboxes"][:, 3], h - results["gt_bboxes"][:, 1]
        results["gt_bboxes"] = b
    results["flip"] = True
    results["flip_direction"] = direction


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random ``crop_size`` window (the whole side when the image is smaller).

    Boxes are shifted and clipped to the window; boxes left with no area are dropped with their
    labels and flags. A window that keeps none of the sample's non-ignored boxes is redrawn up
    to ``max_tries`` times, then centred on a random box, so detection samples never lose all
    their objects (mmdet instead returns None and loads another image).

    Args:
        crop_size: (w, h) in pixels.
        max_tries: random windows to try before centring on a box.
    """

    def __init__(self, crop_size: int | Sequence[int], max_tries: int = 10):
        self.crop_w, self.crop_h = _pair(crop_size, "RandomCrop crop_size")
        if self.crop_w <= 0 or self.crop_h <= 0:
            raise ValueError(f"RandomCrop: crop_size must be positive, got {crop_size}")
        self.max_tries = max_tries

    def transform(self, results: dict) -> dict:
        h, w = results["img"].shape[:2]
        cw, ch = min(self.crop_w, w), min(self.crop_h, h)
        boxes = results.get("gt_bboxes")
        wanted = None
        if boxes is not None and len(boxes):
            wanted = ~results.get("gt_ignore_flags", np.zeros(len(boxes), bool))
            if not wanted.any():
                wanted = None
        for _ in range(self.max_tries):
            x0, y0 = np.random.randint(0, w - cw + 1), np.random.randint(0, h - ch + 1)
            if wanted is None or _kept(boxes[wanted], x0, y0, cw, ch).any():
                break
        else:
            x1, y1, x2, y2 = boxes[np.random.choice(np.flatnonzero(wanted))]
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            x0 = np.random.randint(max(0, cx - cw + 1), min(w - cw, cx) + 1)
            y0 = np.random.randint(max(0, cy - ch + 1), min(h - ch, cy) + 1)
        crop_results(results, x0, y0, cw, ch)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop_size=({self.crop_w}, {self.crop_h}))"


def _kept(boxes: np.ndarray, x0: int, y0: int, cw: int, ch: int) -> np.ndarray:
    x1 = np.clip(boxes[:, 0] - x0, 0, cw)
    x2 = np.clip(boxes[:, 2] - x0, 0, cw)
    y1 = np.clip(boxes[:, 1] - y0, 0, ch)
    y2 = np.clip(boxes[:, 3] - y0, 0, ch)
    return (x2 > x1) & (y2 > y1)


def crop_results(results: dict, x0: int, y0: int, cw: int, ch: int) -> None:
    """Crop the window ``[x0, x0 + cw) x [y0, y0 + ch)`` out of the image and ground truth."""
    results["img"] = results["img"][y0 : y0 + ch, x0 : x0 + cw]
    for key in _MAP_KEYS:
        if key in results:
            results[key] = results[key][y0 : y0 + ch, x0 : x0 + cw]
    if "gt_bboxes" in results:
        keep = _kept(results["gt_bboxes"], x0, y0, cw, ch)
        b = results["gt_bboxes"][keep] - np.array([x0, y0, x0, y0], np.float32)
        b[:, 0::2] = b[:, 0::2].clip(0, cw)
        b[:, 1::2] = b[:, 1::2].clip(0, ch)
        results["gt_bboxes"] = b
        for key in ("gt_bboxes_labels", "gt_ignore_flags"):
            if key in results:
                results[key] = results[key][keep]
    results["img_shape"] = (ch, cw)


@TRANSFORMS.register_module()
class PhotoMetricDistortion(BaseTransform):
    """Random brightness, contrast, saturation and hue, each applied with probability 0.5.

    The order and ranges of mmdet/mmseg's ``PhotoMetricDistortion``, on uint8 images in and out
    (mmdet's needs float32 input and returns float32), with lookup tables so it stays cheap at
    512 px. Ground truth is untouched.

    Args:
        brightness_delta: added value drawn from [-delta, delta].
        contrast_range: multiplier range.
        saturation_range: multiplier range of the HSV saturation.
        hue_delta: hue shift in degrees, drawn from [-delta, delta].
    """

    def __init__(
        self,
        brightness_delta: int = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: int = 18,
    ):
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta

    def transform(self, results: dict) -> dict:
        img = results["img"]
        if img.dtype != np.uint8:
            raise TypeError(f"PhotoMetricDistortion expects a uint8 image, got {img.dtype}")
        beta = np.random.uniform(-self.brightness_delta, self.brightness_delta)
        beta = beta if np.random.randint(2) else 0.0
        alpha = np.random.uniform(*self.contrast_range) if np.random.randint(2) else 1.0
        contrast_first = np.random.randint(2)
        sat = np.random.uniform(*self.saturation_range) if np.random.randint(2) else 1.0
        hue = np.random.uniform(-self.hue_delta, self.hue_delta) if np.random.randint(2) else 0.0
        if contrast_first:
            img = _lut(img, alpha, beta * alpha)  # (x + beta) * alpha
        elif beta:
            img = _lut(img, 1.0, beta)
        if sat != 1.0 or hue != 0.0:
            hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)  # uint8: H in [0, 180), 2 degrees/unit
            if sat != 1.0:
                hsv[..., 1] = _lut(hsv[..., 1], sat, 0.0)
            if hue != 0.0:
                shift = int(round(hue / 2.0)) % 180
                hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        if not contrast_first and alpha != 1.0:
            img = _lut(img, alpha, 0.0)
        results["img"] = img
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(brightness_delta={self.brightness_delta}, "
            f"contrast_range={self.contrast_range}, saturation_range={self.saturation_range}, "
            f"hue_delta={self.hue_delta})"
        )


def _lut(img: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    table = np.clip(np.arange(256, dtype=np.float32) * alpha + beta, 0, 255).round()
    return cv2.LUT(np.ascontiguousarray(img), table.astype(np.uint8))

"""Default train / test pipeline configs (lists of transform dicts, for dataset ``pipeline=``)."""

from __future__ import annotations

__all__ = ["test_pipeline", "train_pipeline"]


def train_pipeline(
    scale: tuple[int, int] = (512, 512),
    ratio_range: tuple[float, float] = (0.5, 2.0),
    crop: bool = True,
    photometric: bool = True,
) -> list[dict]:
    """Load, random rescale around ``scale`` (w, h), crop to ``scale``, flip, colour jitter, pack.

    Ground truth is loaded before any geometric transform, so it follows the image exactly.
    """
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadMultiTaskAnnotations"),
        dict(type="RandomResize", scale=scale, ratio_range=ratio_range, keep_ratio=True),
    ]
    if crop:
        pipeline.append(dict(type="RandomCrop", crop_size=scale))
    pipeline.append(dict(type="RandomFlip", prob=0.5))
    if photometric:
        pipeline.append(dict(type="PhotoMetricDistortion"))
    pipeline.append(dict(type="PackMultiTaskInputs"))
    return pipeline


def test_pipeline(scale: tuple[int, int] = (512, 512)) -> list[dict]:
    """Load, keep-ratio resize to fit ``scale`` (w, h), THEN load ground truth, pack.

    Ground truth stays in original image pixels, where predictions are evaluated (the order of
    mmdet's VOC and mmseg's test configs); ``scale_factor`` maps original to input pixels.
    """
    return [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=scale, keep_ratio=True),
        dict(type="LoadMultiTaskAnnotations"),
        dict(type="PackMultiTaskInputs"),
    ]

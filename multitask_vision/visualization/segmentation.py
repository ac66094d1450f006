"""Segmentation: class colours over the image, a legend of the classes present, and the
image's mIoU.

Every class but ``background`` (when the class list has one) is blended over the image with its
``seg_palette`` colour; 255 (ignore) pixels get VOC's ignore colour and a legend entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..registry import register_visualizer
from .base import Panel, TaskRender, TaskVisualizer, to_numpy
from .draw import IGNORE_RGB, blend, palette_color, resize_nearest

__all__ = ["IGNORE_INDEX", "SegmentationVisualizer", "image_miou", "overlay_labels"]

IGNORE_INDEX = 255
ALPHA = 0.5


def _color(palette: Sequence, label: int) -> tuple[int, int, int]:
    if label == IGNORE_INDEX:
        return IGNORE_RGB
    return palette_color(palette, label)


def _name(classes: Sequence[str], label: int) -> str:
    if label == IGNORE_INDEX:
        return "ignore (255)"
    return classes[label] if 0 <= label < len(classes) else f"class {label}"


def background_index(classes: Sequence[str]) -> int | None:
    """Index of a class named ``background`` (not drawn), or None."""
    lower = [c.lower() for c in classes]
    return lower.index("background") if "background" in lower else None


def overlay_labels(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Sequence,
    background: int | None = None,
    alpha: float = ALPHA,
) -> np.ndarray:
    """A copy of ``image`` with each label's colour blended over its pixels.

    Args:
        image: Array[H, W, 3] uint8 RGB.
        labels: Array[H, W] int class indices (255 = ignore), at the size of ``image``.
        palette: RGB colour per class index.
        background: a class index left undrawn.
    """
    out = image.copy()
    for label in np.unique(labels):
        if label == background:
            continue
        blend(out, labels == label, _color(palette, int(label)), alpha)
    return out


def image_miou(gt: np.ndarray, pred: np.ndarray, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean IoU over the classes present in the ground truth or the prediction of one image,
    on pixels whose ground truth is not ``ignore_index``; NaN when there is no such pixel."""
    valid = gt != ignore_index
    g, p = gt[valid], pred[valid]
    classes = np.union1d(np.unique(g), np.unique(p))
    if len(classes) == 0:
        return float("nan")
    ious = [np.sum((g == c) & (p == c)) / np.sum((g == c) | (p == c)) for c in classes]
    return float(np.mean(ious))


def _legend(labels: np.ndarray, classes, palette, background) -> list:
    return [(_name(classes, int(c)), _color(palette, int(c))) for c in np.unique(labels)
            if c != background]  # fmt: skip


@register_visualizer("segmentation")
class SegmentationVisualizer(TaskVisualizer):
    """``gt_sem_seg`` and ``pred_sem_seg`` as colour overlays with legends; metric ``mIoU``.
    Names and colours from ``seg_classes`` / ``seg_palette`` of the dataset metainfo (``classes``
    / ``palette`` when it has no ``seg_*`` keys)."""

    task = "segmentation"
    gt_field = "gt_sem_seg"
    pred_field = "pred_sem_seg"

    def render(
        self, image: np.ndarray, sample: Any, dataset_meta: Mapping, score_thr: float = 0.3
    ) -> TaskRender:
        classes = tuple(dataset_meta.get("seg_classes", dataset_meta.get("classes", ())))
        palette = list(dataset_meta.get("seg_palette", dataset_meta.get("palette", ())))
        bg = background_index(classes)
        gt_panel, metric, gt = None, None, None
        if self.has_gt(sample):
            gt = to_numpy(sample.gt_sem_seg.data)[0].astype(np.int64)
            shown = resize_nearest(gt, image.shape)
            gt_panel = Panel(
                overlay_labels(image, shown, palette, bg),
                "ground truth",
                legend=_legend(gt, classes, palette, bg),
            )
        if self.has_pred(sample):
            pred = to_numpy(sample.pred_sem_seg.data)[0].astype(np.int64)
            shown = resize_nearest(pred, image.shape)
            pred_panel = Panel(
                overlay_labels(image, shown, palette, bg),
                "prediction",
                legend=_legend(pred, classes, palette, bg),
            )
            if gt is not None:
                metric = ("mIoU", image_miou(gt, resize_nearest(pred, gt.shape)))
        else:
            pred_panel = Panel(image.copy(), "no prediction")
        return TaskRender(self.task, gt_panel, pred_panel, metric=metric)

"""Detection: ground-truth and predicted boxes with class names, and the image's AP@0.5.

Styles: ground truth is an outline with a tag ``name``; VOC ``difficult`` objects
(``ignored_instances``) a dashed outline with a grey tag ``name (difficult)``; predictions an
outline over a translucent fill with a tag ``name score``, the best on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..registry import register_visualizer
from .base import Panel, TaskRender, TaskVisualizer, to_numpy
from .draw import draw_outline, draw_tag, font_scale, line_width, palette_color

__all__ = ["DetectionVisualizer", "draw_boxes", "image_ap50"]

DIFFICULT_RGB = (160, 160, 160)


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else f"class {label}"


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    palette: Sequence,
    scores: np.ndarray | None = None,
    style: str = "gt",
) -> np.ndarray:
    """Boxes drawn on a copy of ``image``.

    Args:
        image: Array[H, W, 3] uint8 RGB.
        boxes: Array[N, 4] (x1, y1, x2, y2) in ``image`` pixels.
        labels: Array[N] int class indices into ``classes`` / ``palette``.
        scores: Array[N]; shown in the tag (``style='pred'``).
        style: ``'gt'`` (outline), ``'difficult'`` (dashed outline, grey tag) or ``'pred'``
            (outline over a 25 % fill).
    """
    out = image.copy()
    t, scale = line_width(image.shape), font_scale(image.shape)
    order = np.argsort(scores, kind="stable") if scores is not None else range(len(boxes))
    for i in order:  # the best prediction is drawn last, on top
        label = int(labels[i])
        color = palette_color(palette, label)
        name = _class_name(classes, label)
        box = boxes[i]
        fill = 0.25 if style == "pred" else 0.0
        draw_outline(out, box, color, t, dashed=style == "difficult", fill_alpha=fill)
        if style == "difficult":
            text, bg = f"{name} (difficult)", DIFFICULT_RGB
        elif style == "pred":
            text, bg = f"{name} {float(scores[i]):.2f}", color
        else:
            text, bg = name, color
        draw_tag(out, text, int(round(float(box[0]))), int(round(float(box[1]))), bg, scale)
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es"


def _scaled(boxes: Any, sx: float, sy: float) -> np.ndarray:
    b = to_numpy(boxes).astype(np.float32).reshape(-1, 4)
    return b * np.array([sx, sy, sx, sy], np.float32)


def image_ap50(sample: Any, num_classes: int) -> float:
    """AP at IoU 0.5 of one image, as mmdet's ``VOCMetric`` computes it ('area' mode, VOC's
    ``+1`` box sizes, difficult boxes ignored), from all predictions whatever their score.

    Returns:
        The mean over classes with ground truth; NaN when the image has no ground-truth box.
    """
    from mmdet.evaluation.functional import eval_map

    gt, ign = sample.gt_instances, sample.get("ignored_instances", None)
    gt_labels = to_numpy(gt.labels).astype(np.int64)
    if len(gt_labels) == 0:
        return float("nan")
    pred = sample.pred_instances
    boxes, scores = to_numpy(pred.bboxes).reshape(-1, 4), to_numpy(pred.scores).reshape(-1)
    labels = to_numpy(pred.labels).reshape(-1)
    num_classes = max(num_classes, int(gt_labels.max()) + 1, int(labels.max(initial=-1)) + 1)
    dets = [
        np.hstack([boxes[labels == c], scores[labels == c, None]]).astype(np.float32)
        for c in range(num_classes)
    ]
    ann = dict(
        bboxes=to_numpy(gt.bboxes).reshape(-1, 4).astype(np.float32),
        labels=gt_labels,
        bboxes_ignore=to_numpy(ign.bboxes).reshape(-1, 4).astype(np.float32)
        if ign is not None
        else np.zeros((0, 4), np.float32),
        labels_ignore=to_numpy(ign.labels).astype(np.int64)
        if ign is not None
        else np.zeros(0, np.int64),
    )
    ap, _ = eval_map([dets], [ann], iou_thr=0.5, logger="silent", nproc=1,
                     use_legacy_coordinate=True, eval_mode="area")  # fmt: skip
    return float(ap)


@register_visualizer("detection")
class DetectionVisualizer(TaskVisualizer):
    """Boxes of ``gt_instances`` / ``ignored_instances`` and ``pred_instances`` (score >=
    ``score_thr``); metric ``AP50`` of the image. Names and colours from ``classes`` /
    ``palette`` of the dataset metainfo."""

    task = "detection"
    gt_field = "gt_instances"
    pred_field = "pred_instances"

    def render(
        self, image: np.ndarray, sample: Any, dataset_meta: Mapping, score_thr: float = 0.3
    ) -> TaskRender:
        classes = tuple(dataset_meta.get("classes", ()))
        palette = list(dataset_meta.get("palette", ()))
        sx, sy = self.display_factors(image, sample)
        gt_panel, metric = None, None
        if self.has_gt(sample):
            gt = sample.gt_instances
            out = draw_boxes(image, _scaled(gt.bboxes, sx, sy), to_numpy(gt.labels), classes,
                             palette)  # fmt: skip
            n_difficult = 0
            if "ignored_instances" in sample:
                ign = sample.ignored_instances
                n_difficult = len(ign.labels)
                out = draw_boxes(out, _scaled(ign.bboxes, sx, sy), to_numpy(ign.labels), classes,
                                 palette, style="difficult")  # fmt: skip
            caption = f"ground truth: {_count(len(gt.labels), 'box')}"
            if n_difficult:
                caption += f" + {n_difficult} difficult"
            gt_panel = Panel(out, caption)
            if self.has_pred(sample):
                metric = ("AP50", image_ap50(sample, len(classes)))
        if self.has_pred(sample):
            pred = sample.pred_instances
            scores = to_numpy(pred.scores).reshape(-1)
            keep = scores >= score_thr
            out = draw_boxes(image, _scaled(pred.bboxes, sx, sy)[keep],
                             to_numpy(pred.labels).reshape(-1)[keep], classes, palette,
                             scores=scores[keep], style="pred")  # fmt: skip
            caption = f"prediction: {_count(int(keep.sum()), 'box')}, score >= {score_thr:g}"
            pred_panel = Panel(out, caption)
        else:
            pred_panel = Panel(image.copy(), "no prediction")
        return TaskRender(self.task, gt_panel, pred_panel, metric=metric)

"""Depth: ground truth and prediction on one colour scale with a colour bar in metres, the
absolute-error map, and the image's AbsRel.

Ground-truth pixels equal to 0 (no sensor reading) are invalid: drawn grey, left out of the
colour range, the error map and the metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..registry import register_visualizer
from .base import ColorBar, Panel, TaskRender, TaskVisualizer, to_numpy
from .draw import INVALID_RGB, colorize, resize_nearest

__all__ = ["DepthVisualizer", "image_abs_rel"]


def image_abs_rel(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean ``|pred - gt| / gt`` over pixels with ``gt > 0``; NaN when there is none."""
    valid = np.isfinite(gt) & (gt > 0)
    if not valid.any():
        return float("nan")
    return float(np.mean(np.abs(pred[valid] - gt[valid]) / gt[valid]))


def _range(*values: np.ndarray) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values if v.size]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    return lo, max(hi, lo + 1e-3)


@register_visualizer("depth")
class DepthVisualizer(TaskVisualizer):
    """``gt_depth_map`` and ``pred_depth_map`` (metres) with a shared ``viridis`` colour bar,
    ``|pred - gt|`` in ``magma`` with its own bar; metric ``AbsRel``."""

    task = "depth"
    gt_field = "gt_depth_map"
    pred_field = "pred_depth_map"
    cmap = "viridis"
    error_cmap = "magma"

    def render(
        self, image: np.ndarray, sample: Any, dataset_meta: Mapping, score_thr: float = 0.3
    ) -> TaskRender:
        shape = image.shape[:2]
        invalid_entry = [("invalid (no depth)", INVALID_RGB)]
        pred = None
        if self.has_pred(sample):
            pred = to_numpy(sample.pred_depth_map.data)[0].astype(np.float32)
        if not self.has_gt(sample):
            if pred is None:
                return TaskRender(self.task, None, Panel(image.copy(), "no prediction"))
            lo, hi = _range(pred)
            bar = ColorBar(lo, hi, self.cmap, "m")
            shown = resize_nearest(pred, shape)
            image = colorize(shown, np.isfinite(shown), lo, hi, self.cmap)
            panel = Panel(image, "prediction (no ground truth)", colorbar=bar)
            return TaskRender(self.task, None, panel)

        gt = to_numpy(sample.gt_depth_map.data)[0].astype(np.float32)
        valid = np.isfinite(gt) & (gt > 0)
        legend = invalid_entry if not valid.all() else []
        if pred is None:
            lo, hi = _range(gt[valid])
        else:
            pred = resize_nearest(pred, gt.shape)
            lo, hi = _range(gt[valid], pred)
        bar = ColorBar(lo, hi, self.cmap, "m")
        shown_valid = resize_nearest(valid, shape)
        gt_panel = Panel(colorize(resize_nearest(gt, shape), shown_valid, lo, hi, self.cmap),
                         f"ground truth ({100 * valid.mean():.0f}% valid)", legend=list(legend),
                         colorbar=bar)  # fmt: skip
        if pred is None:
            return TaskRender(self.task, gt_panel, Panel(image.copy(), "no prediction"))
        shown_pred = resize_nearest(pred, shape)
        pred_panel = Panel(colorize(shown_pred, np.isfinite(shown_pred), lo, hi, self.cmap),
                           "prediction", colorbar=bar)  # fmt: skip
        err = np.where(valid, np.abs(pred - gt), 0.0).astype(np.float32)
        err_max = max(float(err[valid].max()) if valid.any() else 0.0, 1e-3)
        mean_err = float(err[valid].mean()) if valid.any() else float("nan")
        err_panel = Panel(
            colorize(resize_nearest(err, shape), shown_valid, 0.0, err_max, self.error_cmap),
            f"|pred - gt|, mean {mean_err:.2f} m",
            legend=list(legend),
            colorbar=ColorBar(0.0, err_max, self.error_cmap, "m"),
        )
        metric = ("AbsRel", image_abs_rel(gt, pred))
        return TaskRender(self.task, gt_panel, pred_panel, [err_panel], metric)

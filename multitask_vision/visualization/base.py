"""The task visualizer interface: what a visualizer receives and what it returns.

A task visualizer turns one data sample into panels: the ground truth (None when the sample has
none for that task), the prediction, optional extra panels (e.g. a depth error map), and a
per-sample metric. Visualizers are registered by task name::

    @register_visualizer('normals')
    class NormalsVisualizer(TaskVisualizer):
        gt_field, pred_field = 'gt_normals', 'pred_normals'

        def render(self, image, sample, dataset_meta, score_thr=0.3) -> TaskRender: ...

Figures, contact sheets, ``visualize.py`` and the TensorBoard hook only go through this interface,
so a new task plugs in without editing them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..registry import TASK_VISUALIZERS

__all__ = [
    "ColorBar",
    "Panel",
    "TaskRender",
    "TaskVisualizer",
    "build_visualizers",
    "get_visualizer",
    "task_metas",
    "to_numpy",
]

RGB = tuple[int, int, int]


@dataclass
class ColorBar:
    """A colour bar drawn beside a panel: ``cmap`` from ``vmin`` to ``vmax`` (in ``unit``)."""

    vmin: float
    vmax: float
    cmap: str = "viridis"
    unit: str = "m"


@dataclass
class Panel:
    """One image of a figure.

    Attributes:
        image: Array[H, W, 3] uint8 RGB, at the display size of the input image.
        caption: the line above the image.
        legend: (label, RGB colour) entries listed under the image.
        colorbar: a colour bar drawn to the right of the image.
    """

    image: np.ndarray
    caption: str
    legend: list[tuple[str, RGB]] = field(default_factory=list)
    colorbar: ColorBar | None = None


@dataclass
class TaskRender:
    """What a visualizer returns for one sample.

    Attributes:
        task: the task name.
        gt: the ground-truth panel, or None when the sample has no ground truth for the task.
        pred: the prediction panel.
        extras: further panels after the prediction (e.g. an error map).
        metric: (name, value) of the per-sample metric; None without ground truth; the value is
            NaN when undefined (e.g. AP of an image without boxes).
    """

    task: str
    gt: Panel | None
    pred: Panel
    extras: list[Panel] = field(default_factory=list)
    metric: tuple[str, float] | None = None


class TaskVisualizer:
    """Base class of task visualizers (registered with ``@register_visualizer(task)``).

    Subclasses set ``gt_field`` / ``pred_field`` (the data sample fields they read) and implement
    `render`. Annotations and predictions are in ORIGINAL image pixels (``ori_shape``); the
    image given to `render` may be larger (display size), so coordinates are rescaled by
    `display_factors`.
    """

    task: ClassVar[str] = ""
    gt_field: ClassVar[str] = ""
    pred_field: ClassVar[str] = ""

    def has_gt(self, sample: Any) -> bool:
        return bool(self.gt_field) and self.gt_field in sample

    def has_pred(self, sample: Any) -> bool:
        return bool(self.pred_field) and self.pred_field in sample

    @staticmethod
    def display_factors(image: np.ndarray, sample: Any) -> tuple[float, float]:
        """(sx, sy): display pixels per original pixel along x and y."""
        ori_h, ori_w = sample.metainfo.get("ori_shape", image.shape[:2])[:2]
        return image.shape[1] / ori_w, image.shape[0] / ori_h

    def render(
        self,
        image: np.ndarray,
        sample: Any,
        dataset_meta: Mapping,
        score_thr: float = 0.3,
    ) -> TaskRender:
        """Render one sample's ground truth and prediction for this task.

        Args:
            image: Array[H, W, 3] uint8 RGB, the original image possibly resized for display.
            sample: a data sample with this task's ``pred_field`` (and ``gt_field`` if annotated)
                and ``ori_shape`` in its metainfo.
            dataset_meta: the metainfo naming this task's classes and colours
                (``classes`` / ``palette``; ``seg_classes`` / ``seg_palette``).
            score_thr: predictions scored below it are not drawn (tasks with scores).
        """
        raise NotImplementedError


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _registered() -> list[str]:
    return sorted(TASK_VISUALIZERS.module_dict)


def get_visualizer(task: str, head: str | None = None) -> TaskVisualizer:
    """The registered visualizer of ``task``, built.

    Raises:
        KeyError: no visualizer is registered for ``task``; names the task (and its head), the
            closest registered name and all registered ones.
    """
    cls = TASK_VISUALIZERS.module_dict.get(task)
    if cls is None:
        names = _registered()
        close = difflib.get_close_matches(task, names, n=1)
        where = f" (head {head!r})" if head else ""
        raise KeyError(
            f"no visualizer is registered for task {task!r}{where}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" Registered visualizers: {', '.join(names)}. Register one with "
            f"@register_visualizer({task!r}) on a TaskVisualizer subclass and import its module "
            "(custom_imports in the config); see docs/visualization.md"
        )
    visualizer = cls()
    visualizer.task = task
    return visualizer


def build_visualizers(
    tasks: Sequence[str], heads: Mapping[str, str] | None = None
) -> dict[str, TaskVisualizer]:
    """One visualizer per task, checking them all before any is used.

    Raises:
        KeyError: as `get_visualizer`, for the first task without a visualizer.
    """
    heads = heads or {}
    return {task: get_visualizer(task, heads.get(task)) for task in tasks}


def task_metas(datasets: Mapping[str, Mapping], dataset: str, tasks: Sequence[str]) -> dict:
    """The metainfo each task's visualizer gets for a sample of ``dataset``.

    A dataset's own metainfo serves the tasks it annotates. For a task it does not annotate (a
    detection head's predictions on a depth dataset), the metainfo of the first dataset that
    annotates it names the classes, since that dataset trained the head.

    Args:
        datasets: dataset name -> metainfo (``MultiTaskConcatDataset.metainfo['datasets']``).
        dataset: the sample's dataset name.
        tasks: the model's tasks.
    """
    own = dict(datasets.get(dataset, {}))
    out = {}
    for task in tasks:
        if task in own.get("tasks", ()):
            out[task] = own
            continue
        donor = next((m for m in datasets.values() if task in m.get("tasks", ())), own)
        out[task] = dict(donor)
    return out

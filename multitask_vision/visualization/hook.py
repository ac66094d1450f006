"""`MultiTaskVisualizationHook`: after validation, figures of the first samples of every dataset
go to the runner's visualizer (TensorBoard when configured) and optionally to PNG files.

Config::

    custom_imports = dict(imports=["multitask_vision.visualization"], allow_failed_imports=False)
    custom_hooks = [
        dict(type="MultiTaskVisualizationHook", interval=1, num_samples=2, score_thr=0.3,
             save_dir="vis"),  # also <work_dir>/vis/iter_<n>/<dataset>/<img_id>.png
    ]

The figures are the ones ``visualize.py`` writes (the same registered task visualizers), made
from the predictions the validation loop already computed: no extra forward pass.
"""

from __future__ import annotations

import os
import os.path as osp
import re
from typing import Any

import cv2
import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from ..registry import HOOKS
from .base import TaskVisualizer, build_visualizers, task_metas
from .figure import render_sample

__all__ = ["MultiTaskVisualizationHook"]


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


@HOOKS.register_module()
class MultiTaskVisualizationHook(Hook):
    """Log prediction figures of a few validation samples per dataset.

    Args:
        interval: render after every ``interval``-th validation (1: every one; the validation
            before training, when the summary hook runs it, counts as the first).
        num_samples: samples per dataset: the first ones this process validates (in DDP, rank 0
            sees every world-size-th sample).
        score_thr: detection boxes scored below it are not drawn.
        save_dir: also write PNGs under ``<work_dir>/<save_dir>/iter_<n>/<dataset>/``; None: only
            the runner's visualizer.
        min_side: the shorter side of displayed images is scaled up to this many pixels.
        tag: prefix of the image names given to the visualizer (``<tag>_<dataset>_<img_id>``;
            no ``/``, which mmengine's ``LocalVisBackend`` cannot save).

    Raises:
        KeyError: before training, when a model task has no registered visualizer.
    """

    priority = "LOW"

    def __init__(
        self,
        interval: int = 1,
        num_samples: int = 2,
        score_thr: float = 0.3,
        save_dir: str | None = None,
        min_side: int = 256,
        tag: str = "val",
    ):
        if interval < 1 or num_samples < 1:
            raise ValueError(
                f"MultiTaskVisualizationHook: interval={interval} and num_samples={num_samples} "
                "must be >= 1"
            )
        self.interval = interval
        self.num_samples = num_samples
        self.score_thr = score_thr
        self.save_dir = save_dir
        self.min_side = min_side
        self.tag = tag
        self._val_count = 0
        self._active = False
        self._samples: dict[str, list[Any]] = {}
        self._visualizers: dict[str, TaskVisualizer] | None = None

    def _get_visualizers(self, runner) -> dict[str, TaskVisualizer]:
        if self._visualizers is None:
            model = _unwrap(runner.model)
            self._visualizers = build_visualizers(model.tasks, getattr(model, "heads", None))
        return self._visualizers

    def before_run(self, runner) -> None:
        self._get_visualizers(runner)  # an unknown task fails now, not after hours of training

    def before_val_epoch(self, runner) -> None:
        self._val_count += 1
        self._active = is_main_process() and (self._val_count - 1) % self.interval == 0
        self._samples = {}

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._active or not outputs:
            return
        for sample in outputs:
            name = sample.metainfo.get("dataset", "dataset")
            kept = self._samples.setdefault(name, [])
            if len(kept) < self.num_samples:
                sample = sample.cpu()
                if "seg_logits" in sample:
                    del sample.seg_logits  # the largest field, not drawn
                kept.append(sample)

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if not self._active:
            return
        self._active = False
        visualizers = self._get_visualizers(runner)
        meta = runner.val_dataloader.dataset.metainfo or {}
        datasets = meta.get("datasets") or {meta.get("dataset_name", "dataset"): meta}
        tasks = list(visualizers)
        folder = None
        if self.save_dir is not None:
            folder = osp.join(runner.work_dir, self.save_dir, f"iter_{runner.iter}")
        for name, samples in self._samples.items():
            metas = task_metas(datasets, name, tasks)
            for i, sample in enumerate(samples):
                fig = render_sample(sample, visualizers, metas, self.score_thr,
                                    min_side=self.min_side)  # fmt: skip
                img_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(sample.metainfo.get("img_id", i)))
                runner.visualizer.add_image(f"{self.tag}_{name}_{img_id}", fig.image,
                                            step=runner.iter)  # fmt: skip
                if folder is not None:
                    os.makedirs(osp.join(folder, name), exist_ok=True)
                    cv2.imwrite(osp.join(folder, name, f"{img_id}.png"),
                                np.ascontiguousarray(fig.image[..., ::-1]))  # fmt: skip
        self._samples = {}

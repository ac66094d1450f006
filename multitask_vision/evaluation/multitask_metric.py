"""`MultiTaskMetric`: each dataset's tasks evaluated by mmlab's own metric classes.

Config::

    val_evaluator = dict(
        type='MultiTaskMetric',
        metrics=dict(
            voc=dict(detection=dict(type='mmdet.VOCMetric', eval_mode='area'),
                     segmentation=dict(type='mmseg.IoUMetric')),
            nyu=dict(depth=dict(type='mmseg.DepthMetric', max_depth_eval=10.0)),
        ),
    )

Each sample goes, by its ``dataset`` metainfo, to the metrics of that dataset whose task it has
ground truth for (a VOC image without a mask is scored for detection only). Results are keyed
``<dataset>/<task>/<metric>``, e.g. ``voc/detection/mAP``, ``nyu/depth/abs_rel``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.evaluator import BaseMetric

from ..registry import METRICS

__all__ = ["GT_FIELDS", "MultiTaskMetric"]

#: The ground-truth field that makes a sample count for a task's metric.
GT_FIELDS = {"detection": "gt_instances", "segmentation": "gt_sem_seg", "depth": "gt_depth_map"}


def _task_meta(meta: Mapping, task: str) -> dict:
    """The dataset metainfo as a task's mmlab metric expects it (``classes`` of that task)."""
    meta = copy.deepcopy(dict(meta))
    if task == "segmentation" and "seg_classes" in meta:
        meta["classes"] = meta["seg_classes"]
        meta["palette"] = meta.get("seg_palette", meta.get("palette"))
    return meta


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Per-dataset, per-task evaluation with mmdet / mmseg metrics.

    Args:
        metrics: dataset name -> task -> metric config (or built metric).
        gt_fields: task -> ground-truth field; defaults to :data:`GT_FIELDS`, extend it for new
            tasks.
        collect_device: as mmengine metrics.
    """

    default_prefix = None

    def __init__(
        self,
        metrics: Mapping[str, Mapping[str, Any]],
        gt_fields: Mapping[str, str] | None = None,
        collect_device: str = "cpu",
    ):
        super().__init__(collect_device=collect_device)
        if not metrics:
            raise ValueError("MultiTaskMetric: metrics is empty; give dataset -> task -> metric")
        self.gt_fields = {**GT_FIELDS, **(gt_fields or {})}
        self.metrics: dict[str, dict[str, BaseMetric]] = {}
        for dataset, per_task in metrics.items():
            self.metrics[dataset] = {}
            for task, cfg in per_task.items():
                if task not in self.gt_fields:
                    raise ValueError(
                        f"MultiTaskMetric: metrics[{dataset!r}] task {task!r} has no ground-truth "
                        f"field; known tasks: {sorted(self.gt_fields)} (extend with gt_fields=)"
                    )
                metric = METRICS.build(cfg) if isinstance(cfg, Mapping) else cfg
                self.metrics[dataset][task] = metric

    @property
    def dataset_meta(self) -> dict | None:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        self._dataset_meta = meta
        if not meta:
            return
        per_dataset = meta.get("datasets") or {meta.get("dataset_name"): meta}
        for dataset, per_task in self.metrics.items():
            if dataset not in per_dataset:
                raise KeyError(
                    f"MultiTaskMetric: metrics are configured for dataset {dataset!r}, but the "
                    f"evaluated datasets are {sorted(k for k in per_dataset if k)}"
                )
            for task, metric in per_task.items():
                metric.dataset_meta = _task_meta(per_dataset[dataset], task)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            per_task = self.metrics.get(sample.get("dataset"), {})
            for task, metric in per_task.items():
                if self.gt_fields[task] in sample:
                    metric.process(data_batch, [sample])

    def compute_metrics(self, results: list) -> dict:  # pragma: no cover - evaluate() overrides
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        """Evaluate every (dataset, task) metric that received samples."""
        out: dict[str, float] = {}
        for dataset, per_task in self.metrics.items():
            for task, metric in per_task.items():
                count = torch.tensor(len(metric.results))
                if get_world_size() > 1:
                    all_reduce(count)
                if int(count) == 0:
                    continue
                for key, value in metric.evaluate(int(count)).items():
                    out[f"{dataset}/{task}/{key.split('/')[-1]}"] = value
        return out

"""`PackMultiTaskInputs`: the last pipeline step, numpy results -> (image tensor, data sample)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData, PixelData

from multitask_vision.registry import TRANSFORMS
from multitask_vision.structures import MultiTaskDataSample

__all__ = ["DEFAULT_META_KEYS", "TASK_RESULT_KEYS", "PackMultiTaskInputs"]

#: The results key that holds each task's ground truth before packing.
TASK_RESULT_KEYS = {"detection": "gt_bboxes", "segmentation": "gt_seg_map", "depth": "gt_depth_map"}

DEFAULT_META_KEYS = (
    "img_id",
    "img_path",
    "ori_shape",
    "img_shape",
    "scale_factor",
    "flip",
    "flip_direction",
    "dataset",
    "gt_key_tasks",
)


@TRANSFORMS.register_module()
class PackMultiTaskInputs(BaseTransform):
    """Pack the image and ground truth into ``dict(inputs, data_samples)``.

    Returns:
        inputs: Tensor[3, H, W] uint8, BGR (as mmdet's ``PackDetInputs``; the data preprocessor
            converts, normalises and pads).
        data_samples: `MultiTaskDataSample` with, for the tasks the sample declares:
            gt_instances / ignored_instances: InstanceData(bboxes Tensor[N, 4] float32 (x1, y1,
                x2, y2) pixels, labels Tensor[N] int64); ignored = VOC ``difficult``;
            gt_sem_seg: PixelData(data Tensor[1, H, W] int64; 255 = ignore);
            gt_depth_map: PixelData(data Tensor[1, H, W] float32 metres; 0 = invalid);
            metainfo: ``meta_keys`` plus ``tasks`` (sorted tuple). ``flip`` defaults to False,
            ``scale_factor`` to (1.0, 1.0) when the pipeline had no flip or resize.

    Args:
        meta_keys: results keys copied into the metainfo.

    Raises:
        TypeError: the image is not uint8 (float pipelines break the inputs contract).
        KeyError: a declared task without its ground truth (LoadMultiTaskAnnotations missing).
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results["img"]
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(
                f"PackMultiTaskInputs: {results.get('img_path')}: image must be uint8 [H, W, 3] "
                f"BGR, got {img.dtype} {list(img.shape)}; keep images uint8 in the pipeline "
                "(the data preprocessor normalises them)"
            )
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        tasks = tuple(sorted(results.get("tasks", ())))
        for task in tasks:
            if TASK_RESULT_KEYS[task] not in results:
                raise KeyError(
                    f"PackMultiTaskInputs: {results.get('img_path')} declares task {task!r} but "
                    f"has no {TASK_RESULT_KEYS[task]}; add dict(type='LoadMultiTaskAnnotations') "
                    "to the pipeline"
                )
        sample = MultiTaskDataSample()
        if "detection" in tasks:
            boxes = torch.from_numpy(np.asarray(results["gt_bboxes"], np.float32).reshape(-1, 4))
            labels = torch.from_numpy(np.asarray(results["gt_bboxes_labels"], np.int64))
            ignore = torch.from_numpy(
                np.asarray(results.get("gt_ignore_flags", np.zeros(len(labels), bool)), bool)
            )
            sample.gt_instances = InstanceData(bboxes=boxes[~ignore], labels=labels[~ignore])
            sample.ignored_instances = InstanceData(bboxes=boxes[ignore], labels=labels[ignore])
        if "segmentation" in tasks:
            seg = np.ascontiguousarray(results["gt_seg_map"], dtype=np.int64)
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(seg)[None])
        if "depth" in tasks:
            depth = np.ascontiguousarray(results["gt_depth_map"], dtype=np.float32)
            sample.gt_depth_map = PixelData(data=torch.from_numpy(depth)[None])
        meta = {k: results[k] for k in self.meta_keys if k in results}
        meta.setdefault("img_shape", img.shape[:2])
        meta.setdefault("ori_shape", img.shape[:2])
        meta.setdefault("scale_factor", (1.0, 1.0))
        meta.setdefault("flip", False)
        meta.setdefault("flip_direction", None)
        meta["tasks"] = tasks
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys})"

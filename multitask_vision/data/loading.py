"""Loading transforms: the image, and the ground truth of the tasks a sample declares.

Results keys (numpy, as mmdet/mmseg pipelines; all in the pixels of ``img``):
    img:               Array[H, W, 3] uint8 BGR
    gt_bboxes:         Array[N, 4] float32 (x1, y1, x2, y2) pixels
    gt_bboxes_labels:  Array[N] int64, indices into metainfo ``classes``
    gt_ignore_flags:   Array[N] bool, True for VOC ``difficult`` objects
    gt_seg_map:        Array[H, W] uint8, indices into ``seg_classes``; 255 = ignore
    gt_depth_map:      Array[H, W] float32 metres; 0 = invalid
    img_shape / ori_shape: (h, w); ``ori_shape`` is the file's size and never changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from multitask_vision.data.bad_samples import BadSampleError
from multitask_vision.data.base import TASKS, check_tasks
from multitask_vision.data.file_io import read_depth_png, read_image, read_label_png
from multitask_vision.registry import TRANSFORMS

__all__ = ["LoadImageFromFile", "LoadMultiTaskAnnotations"]


@TRANSFORMS.register_module()
class LoadImageFromFile(BaseTransform):
    """Read ``img_path`` as a uint8 BGR image (``mmcv.imread`` convention).

    Same role and output keys as mmcv's ``LoadImageFromFile``, but a missing, empty or corrupt
    file raises `BadSampleError` naming the file (mmcv's fails later, deep in a transform).

    Adds: ``img`` Array[H, W, 3] uint8 BGR, ``img_shape`` and ``ori_shape`` (h, w).

    Args:
        backend_args: mmengine file backend arguments. None: the sample's ``backend_args`` if the
            dataset set it, else local files.
    """

    def __init__(self, backend_args: dict | None = None):
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        img = read_image(results["img_path"], self.backend_args or results.get("backend_args"))
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend_args={self.backend_args})"


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(BaseTransform):
    """Load the ground truth of every task in ``results['tasks']``, checked against the image.

    - detection: ``instances`` (mmdet format: bbox, bbox_label, ignore_flag) -> ``gt_bboxes``,
      ``gt_bboxes_labels``, ``gt_ignore_flags``;
    - segmentation: ``seg_map_path`` (class-index PNG) -> ``gt_seg_map``;
    - depth: ``depth_path`` (16-bit PNG, ``depth_scale`` units per metre) -> ``gt_depth_map``.

    Put it right after `LoadImageFromFile` in training pipelines. In evaluation pipelines put it
    AFTER ``Resize``, as mmdet's VOC and mmseg's configs do: the ground truth then stays in
    original image pixels, where predictions are compared with it.

    Args:
        tasks: load only these tasks (default: all the sample declares). A sample keeps the
            tasks it declares in ``tasks``; restricting here is for visualisation tools.

    Raises:
        BadSampleError: a mask or depth map whose size differs from the image's, mask values
            that are neither a class index nor 255, an XML ``<size>`` that disagrees with the
            image, a box outside the image, a label outside the class list.
    """

    def __init__(self, tasks: Sequence[str] | None = None):
        self.tasks = None if tasks is None else check_tasks(tasks, TASKS, type(self).__name__)

    def transform(self, results: dict) -> dict:
        tasks = tuple(results.get("tasks", ()))
        if self.tasks is not None:
            tasks = tuple(t for t in tasks if t in self.tasks)
        if "detection" in tasks:
            self._load_boxes(results)
        if "segmentation" in tasks:
            self._load_seg(results)
        if "depth" in tasks:
            self._load_depth(results)
        return results

    @staticmethod
    def _load_boxes(results: dict) -> None:
        h, w = results["ori_shape"]
        where = results.get("xml_path", results["img_path"])
        if results.get("width") is not None and (results["width"], results["height"]) != (w, h):
            raise BadSampleError(
                f"{where}: annotation <size> says {results['width']}x{results['height']} but the "
                f"image {results['img_path']} is {w}x{h}"
            )
        instances = results.get("instances", [])
        boxes = np.array([i["bbox"] for i in instances], dtype=np.float32).reshape(-1, 4)
        labels = np.array([i["bbox_label"] for i in instances], dtype=np.int64)
        ignore = np.array([bool(i.get("ignore_flag", 0)) for i in instances], dtype=bool)
        bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        bad |= (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise BadSampleError(
                f"{where}: box {k} {boxes[k].tolist()} is degenerate or outside the {w}x{h} image"
            )
        num_classes = results.get("num_det_classes")
        if (
            num_classes is not None
            and len(labels)
            and (labels.min() < 0 or labels.max() >= num_classes)
        ):
            raise BadSampleError(
                f"{where}: box labels {sorted(set(labels.tolist()))} outside 0..{num_classes - 1}"
            )
        results["gt_bboxes"] = boxes
        results["gt_bboxes_labels"] = labels
        results["gt_ignore_flags"] = ignore

    @staticmethod
    def _load_seg(results: dict) -> None:
        path = results["seg_map_path"]
        seg = read_label_png(path, results.get("backend_args"))
        _check_same_size(seg, results, path, "segmentation mask")
        num_classes = results.get("num_seg_classes")
        if num_classes is not None:
            bad = (seg >= num_classes) & (seg != 255)
            if bad.any():
                values = np.unique(seg[bad]).tolist()
                raise BadSampleError(
                    f"{path}: mask values {values[:10]} are neither a class index "
                    f"(0..{num_classes - 1}) nor 255 (ignore)"
                )
        results["gt_seg_map"] = seg
        results.setdefault("seg_fields", []).append("gt_seg_map")

    @staticmethod
    def _load_depth(results: dict) -> None:
        path = results["depth_path"]
        depth = read_depth_png(
            path, results.get("depth_scale", 1000.0), results.get("backend_args")
        )
        _check_same_size(depth, results, path, "depth map")
        results["gt_depth_map"] = depth
        results.setdefault("seg_fields", []).append("gt_depth_map")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tasks={self.tasks})"


def _check_same_size(array: np.ndarray, results: dict, path: str, what: str) -> None:
    h, w = results["ori_shape"]
    if array.shape[:2] != (h, w):
        raise BadSampleError(
            f"{path}: {what} is {array.shape[1]}x{array.shape[0]} but its image "
            f"{results['img_path']} is {w}x{h} (width x height)"
        )

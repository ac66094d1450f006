"""Adapter for mmdet dense detection heads (``BaseDenseHead``: FCOSHead, RetinaHead, ATSSHead...).

Ground truth: ``data_sample.gt_instances`` (bboxes Tensor[N, 4] x1y1x2y2 in network-input pixels,
labels Tensor[N]) and ``ignored_instances``, unpacked with mmdet's own ``unpack_gt_instances``.
Loss: the head's ``loss_by_feat`` with its configured losses, assigner and sampler.
Prediction: the head's ``predict_by_feat`` (its ``test_cfg``: score threshold, ``nms_pre``, NMS,
``max_per_img``) with ``rescale=True``: ``pred_instances`` (bboxes in ORIGINAL image pixels,
scores, labels), exactly as mmdet detectors return them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import unpack_gt_instances
from torch import nn

from ..registry import ADAPTERS
from .base import prefix_losses, require_field
from .mmlab_module import MMLabModuleAdapter, as_feature_tuple

__all__ = ["DEFAULT_DENSE_HEAD_TEST_CFG", "MMDetDenseHeadAdapter"]

#: mmdet's single-stage default (configs/fcos, configs/retinanet), used when args has no test_cfg.
DEFAULT_DENSE_HEAD_TEST_CFG = dict(
    nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5),
    max_per_img=100,
)  # fmt: skip


@ADAPTERS.register_module(name="mmdet_dense_head")
class MMDetDenseHeadAdapter(MMLabModuleAdapter):
    protocol = "mmdet_dense_head"
    is_head = True

    @classmethod
    def matches(cls, block_cls: type, scope: str) -> bool:
        return scope == "mmdet" and issubclass(block_cls, BaseDenseHead)

    @classmethod
    def output_names(cls, block_cls: type, args) -> None:
        return None

    @classmethod
    def default_task(cls, block_cls: type) -> str:
        return "detection"

    def build_args(self) -> dict:
        return {"test_cfg": DEFAULT_DENSE_HEAD_TEST_CFG, **self.spec.args}

    def __call__(self, block: nn.Module, *inputs: Any) -> tuple:
        return block(as_feature_tuple(inputs))

    def loss(self, block, outputs: tuple, data_samples: Sequence[Any]):
        require_field(data_samples, "gt_instances", self.spec)
        gt_instances, gt_ignore, img_metas = unpack_gt_instances(data_samples)
        losses = block.loss_by_feat(*outputs, gt_instances, img_metas, gt_ignore)
        return prefix_losses(losses, self.task)

    def predict(self, block, outputs: tuple, data_samples: Sequence[Any]) -> None:
        metas = [s.metainfo for s in data_samples]
        results = block.predict_by_feat(*outputs, batch_img_metas=metas, rescale=True)
        for sample, result in zip(data_samples, results, strict=True):
            sample.pred_instances = result

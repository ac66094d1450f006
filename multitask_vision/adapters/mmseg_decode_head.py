"""Adapter for mmseg decode heads (``BaseDecodeHead``: FCNHead, ASPPHead, SegformerHead...).

Ground truth: ``data_sample.gt_sem_seg`` (PixelData Tensor[1, H, W], 255 = ignore, padded to the
batch). Loss: the head's ``loss_by_feat``, i.e. its configured ``loss_decode`` list, its
``ignore_index``, its sampler and the resize of logits to the label size with its
``align_corners``. Prediction: the head's ``predict_by_feat`` then mmseg's segmentor
post-processing (crop the padding, undo a flip, resize to the original size, argmax or the
binary threshold): ``pred_sem_seg`` (Tensor[1, H, W] long) and ``seg_logits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import nn

from ..postprocess import dense_to_original
from ..registry import ADAPTERS
from .base import prefix_losses, require_field
from .mmlab_module import MMLabModuleAdapter, as_feature_tuple

__all__ = ["MMSegDecodeHeadAdapter"]


@ADAPTERS.register_module(name="mmseg_decode_head")
class MMSegDecodeHeadAdapter(MMLabModuleAdapter):
    protocol = "mmseg_decode_head"
    is_head = True

    @classmethod
    def matches(cls, block_cls: type, scope: str) -> bool:
        return scope == "mmseg" and issubclass(block_cls, BaseDecodeHead)

    @classmethod
    def output_names(cls, block_cls: type, args) -> None:
        return None

    @classmethod
    def default_task(cls, block_cls: type) -> str:
        return "segmentation"

    def __call__(self, block: nn.Module, *inputs: Any):
        return block(list(as_feature_tuple(inputs)))

    def loss(self, block, outputs, data_samples: Sequence[Any]):
        require_field(data_samples, "gt_sem_seg", self.spec)
        return prefix_losses(block.loss_by_feat(outputs, data_samples), self.task)

    def predict(self, block, outputs, data_samples: Sequence[Any]) -> None:
        metas = [s.metainfo for s in data_samples]
        logits = block.predict_by_feat(outputs, metas)
        per_sample = dense_to_original(logits, metas, align_corners=block.align_corners)
        for sample, lg in zip(data_samples, per_sample, strict=True):
            if lg.shape[0] > 1:
                pred = lg.argmax(dim=0, keepdim=True)
            else:  # binary head: mmseg stores the sigmoid and thresholds it
                lg = lg.sigmoid()
                pred = (lg > block.threshold).to(lg)
            sample.seg_logits = PixelData(data=lg)
            sample.pred_sem_seg = PixelData(data=pred)

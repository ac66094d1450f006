"""``SegHead``: a light semantic segmentation head fusing one or several feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import nn

from multitask_vision.blocks._common import (
    as_channel_list,
    check_feature_count,
    conv_norm_act,
    feature_list,
    samples_with,
    stack_maps,
    zero_loss,
)
from multitask_vision.blocks.base import NativeHead
from multitask_vision.postprocess import dense_to_original
from multitask_vision.registry import BLOCKS

__all__ = ["SegHead"]


@BLOCKS.register_module()
class SegHead(NativeHead):
    """Semantic segmentation head: sum of projected, upsampled inputs -> convs -> classifier.

    Each input gets a 1x1 conv-norm-ReLU to ``channels`` and is bilinearly resized to the FIRST
    input's size (pass inputs fine to coarse); the sum goes through ``num_convs`` 3x3
    conv-norm-ReLU layers, dropout and a 1x1 classifier. With one input this is an FCN head.

    forward(feats) -> logits Tensor[B, num_classes, h, w] at the first input's resolution.
    loss: pixel-wise cross entropy with ``ignore_index``, logits bilinearly upsampled to the
    ground truth (padded batch input) size, averaged over non-ignored pixels of the samples that
    have ``gt_sem_seg``; ``acc_seg`` (percent, no gradient) is logged too.
    predict: ``pred_sem_seg`` = PixelData(data=Tensor[1, H, W] int64) and ``seg_logits`` =
    PixelData(data=Tensor[num_classes, H, W] float) at the ORIGINAL image size (H, W).

    Args:
        num_classes: number of classes.
        in_channels: channels of the input map(s).
        channels: width of the fused features.
        num_convs: 3x3 conv layers after the fusion.
        norm: ``'BN'``, ``'GN'`` or None.
        num_groups: GroupNorm groups.
        dropout: Dropout2d probability before the classifier.
        ignore_index: ground truth label to ignore.
        loss_weight: multiplier of ``loss_ce``.

    Example config (FPN levels 0..3, strides 4..32)::

        dict(name='seg_head', type='SegHead', inputs=['fpn.0', 'fpn.1', 'fpn.2', 'fpn.3'],
             args=dict(num_classes=21, in_channels=[64, 64, 64, 64], channels=64))
    """

    task = "segmentation"
    pred_field = "pred_sem_seg"

    def __init__(
        self,
        num_classes: int,
        in_channels: int | Sequence[int],
        channels: int = 128,
        num_convs: int = 1,
        norm: str | None = "BN",
        num_groups: int = 32,
        dropout: float = 0.1,
        ignore_index: int = 255,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.in_channels = as_channel_list(in_channels, "SegHead")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.laterals = nn.ModuleList(
            conv_norm_act(c, channels, 1, norm, num_groups, owner="SegHead")
            for c in self.in_channels
        )
        self.convs = nn.Sequential(
            *(
                conv_norm_act(channels, channels, 3, norm, num_groups, owner="SegHead")
                for _ in range(num_convs)
            )
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, *inputs) -> torch.Tensor:
        """Feature maps Tensor[B, C_i, h_i, w_i] -> logits Tensor[B, num_classes, h_0, w_0]."""
        feats = feature_list(inputs)
        check_feature_count(feats, self.in_channels, "SegHead")
        size = feats[0].shape[-2:]
        x = self.laterals[0](feats[0])
        for lateral, f in zip(self.laterals[1:], feats[1:], strict=True):
            x = x + F.interpolate(lateral(f), size=size, mode="bilinear", align_corners=False)
        return self.classifier(self.dropout(self.convs(x)))

    def loss(self, outputs: torch.Tensor, data_samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """``loss_ce`` (scalar; a connected 0 if no pixel is labelled) and ``acc_seg``."""
        keep = samples_with(data_samples, "gt_sem_seg")
        if not keep:
            return {"loss_ce": zero_loss(outputs), "acc_seg": outputs.new_zeros(())}
        gt = stack_maps([data_samples[i].gt_sem_seg.data for i in keep], self.ignore_index)
        gt = gt[:, 0].to(outputs.device, torch.long)  # [B_kept, H, W]
        logits = outputs[torch.as_tensor(keep, device=outputs.device)]
        logits = F.interpolate(logits, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        valid = gt != self.ignore_index
        bad = valid & ((gt < 0) | (gt >= self.num_classes))
        if bad.any():
            raise ValueError(
                f"SegHead: ground truth labels {gt[bad].unique().tolist()} are outside "
                f"[0, {self.num_classes}) and are not ignore_index={self.ignore_index}"
            )
        num_valid = valid.sum()
        ce = F.cross_entropy(
            logits.float(), gt, ignore_index=self.ignore_index, reduction="sum"
        ) / num_valid.clamp(min=1)
        with torch.no_grad():
            correct = ((logits.argmax(1) == gt) & valid).sum()
            acc = 100.0 * correct.float() / num_valid.clamp(min=1)
        return {"loss_ce": self.loss_weight * ce, "acc_seg": acc}

    @torch.no_grad()
    def predict(self, outputs: torch.Tensor, data_samples: Sequence[Any]) -> None:
        """Write ``pred_sem_seg`` and ``seg_logits`` at each sample's original size."""
        logits = dense_to_original(outputs.float(), [s.metainfo for s in data_samples])
        for sample, seg_logits in zip(data_samples, logits, strict=True):
            sample.seg_logits = PixelData(data=seg_logits)
            sample.pred_sem_seg = PixelData(data=seg_logits.argmax(0, keepdim=True))

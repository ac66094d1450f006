"""``DenseDepthHead``: metric depth from one or several feature maps, fused top-down."""

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
from multitask_vision.losses import SILogLoss  # noqa: F401  (registers the depth losses)
from multitask_vision.postprocess import dense_to_original
from multitask_vision.registry import BLOCKS, LOSSES

__all__ = ["DenseDepthHead"]


@BLOCKS.register_module()
class DenseDepthHead(NativeHead):
    """Dense metric depth head with a bounded output.

    Each input gets a 1x1 conv-norm-ReLU to ``channels``; from the last (coarsest) input up, the
    running map is bilinearly resized to the next input, added to it and refined by a 3x3
    conv-norm-ReLU (pass inputs fine to coarse). Then ``num_convs`` 3x3 conv-norm-ReLU layers and
    a 3x3 conv to one channel give ``min_depth + (max_depth - min_depth) * sigmoid(x)``.

    forward(feats) -> depth Tensor[B, 1, h, w] metres at the first input's resolution.
    loss: the prediction is bilinearly upsampled to the ground truth (padded batch input) size
    and compared with ``gt_depth_map`` (metres, 0 = invalid; padding is 0 too) by ``loss``;
    samples without ``gt_depth_map`` are left out. The key is ``loss_<loss.loss_name>``
    (``loss_silog`` or ``loss_l1``).
    predict: ``pred_depth_map`` = PixelData(data=Tensor[1, H, W] float32 metres) at the ORIGINAL
    image size.

    Args:
        in_channels: channels of the input map(s), fine to coarse.
        channels: width of the decoder.
        max_depth: upper bound of the prediction, metres.
        min_depth: lower bound of the prediction, metres (> 0, so log losses stay finite).
        loss: a depth loss module or its config, e.g. ``dict(type='SILogLoss', lambd=0.85)`` or
            ``dict(type='L1DepthLoss')`` (see ``multitask_vision.losses``).
        num_convs: 3x3 conv layers after the fusion.
        norm: ``'BN'``, ``'GN'`` or None.
        num_groups: GroupNorm groups.

    Example config (ResNet layer4 alone; or several levels, e.g. ``['fpn.0', 'fpn.1']``)::

        dict(name='depth_head', type='DenseDepthHead', inputs=['backbone.layer4'],
             args=dict(in_channels=512, channels=64, max_depth=10.0,
                       loss=dict(type='SILogLoss')))
    """

    task = "depth"
    pred_field = "pred_depth_map"

    def __init__(
        self,
        in_channels: int | Sequence[int],
        channels: int = 64,
        max_depth: float = 10.0,
        min_depth: float = 1e-3,
        loss: dict | nn.Module | None = None,
        num_convs: int = 1,
        norm: str | None = "BN",
        num_groups: int = 32,
    ):
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ValueError(
                f"DenseDepthHead: need 0 < min_depth < max_depth, got min_depth={min_depth}, "
                f"max_depth={max_depth}"
            )
        self.in_channels = as_channel_list(in_channels, "DenseDepthHead")
        self.max_depth = float(max_depth)
        self.min_depth = float(min_depth)
        loss = dict(type="SILogLoss") if loss is None else loss
        self.loss_fn = loss if isinstance(loss, nn.Module) else LOSSES.build(loss)
        self.loss_name = getattr(self.loss_fn, "loss_name", "depth")

        def cna(cin: int, cout: int, k: int) -> nn.Sequential:
            return conv_norm_act(cin, cout, k, norm, num_groups, owner="DenseDepthHead")

        self.laterals = nn.ModuleList(cna(c, channels, 1) for c in self.in_channels)
        self.fuse_convs = nn.ModuleList(cna(channels, channels, 3) for _ in self.in_channels[1:])
        self.convs = nn.Sequential(*(cna(channels, channels, 3) for _ in range(num_convs)))
        self.conv_depth = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, *inputs) -> torch.Tensor:
        """Feature maps Tensor[B, C_i, h_i, w_i] -> depth Tensor[B, 1, h_0, w_0] metres."""
        feats = feature_list(inputs)
        check_feature_count(feats, self.in_channels, "DenseDepthHead")
        x = self.laterals[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.laterals[i](feats[i])
            up = F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse_convs[i](lateral + up)
        x = self.conv_depth(self.convs(x))
        return self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(x)

    def loss(self, outputs: torch.Tensor, data_samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """``loss_<name>``: the depth loss over valid ground truth pixels (0 if there are none)."""
        key = f"loss_{self.loss_name}"
        keep = samples_with(data_samples, "gt_depth_map")
        if not keep:
            return {key: zero_loss(outputs)}
        gt = stack_maps([data_samples[i].gt_depth_map.data for i in keep], 0.0)
        gt = gt.to(outputs.device, torch.float32)  # [B_kept, 1, H, W]
        pred = outputs[torch.as_tensor(keep, device=outputs.device)].float()
        pred = F.interpolate(pred, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        return {key: self.loss_fn(pred, gt)}

    @torch.no_grad()
    def predict(self, outputs: torch.Tensor, data_samples: Sequence[Any]) -> None:
        """Write ``pred_depth_map`` (Tensor[1, H, W] float32 metres, original size)."""
        depths = dense_to_original(outputs.float(), [s.metainfo for s in data_samples])
        for sample, depth in zip(data_samples, depths, strict=True):
            sample.pred_depth_map = PixelData(data=depth)

"""``FPN``: feature pyramid network (Lin et al. 2017), plain convolutions only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multitask_vision.blocks._common import as_channel_list, check_feature_count, feature_list
from multitask_vision.blocks.base import NativeBlock
from multitask_vision.registry import BLOCKS

__all__ = ["FPN"]

EXTRA_MODES = ("conv", "pool")


def _c2_xavier_fill(conv: nn.Conv2d) -> None:
    # Caffe2 "XavierFill", as detectron2 and mmdet initialise FPN convolutions.
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)


@BLOCKS.register_module()
class FPN(NativeBlock):
    """Top-down feature pyramid with lateral 1x1 and output 3x3 convolutions.

    Inputs: feature maps ordered fine to coarse, each half the size of the previous one (e.g.
    ResNet layer1..layer4, strides 4..32): the backbone's dict as one input, a tuple, or several
    tensors. Output: a tuple of ``num_outs`` Tensor[B, out_channels, H_i, W_i]; levels beyond the
    inputs come from stride-2 3x3 convolutions on the last output (``extra='conv'``, with a ReLU
    before every extra conv but the first, as FCOS/RetinaNet) or from 1x1 max pooling with stride
    2 (``extra='pool'``, Faster R-CNN). Sub-outputs are named ``'0'``, ``'1'``, ...

    Args:
        in_channels: channels of every input map, in input order.
        out_channels: channels of every output map.
        num_outs: number of output levels (>= inputs used).
        start_level: first input used (1 skips layer1: outputs at strides 8, 16, 32, ...).
        extra: how to make levels beyond the inputs, ``'conv'`` or ``'pool'``.

    Example config (P2-P5 from ResNet-18 layer1..layer4; P6 by a stride-2 conv)::

        dict(name='fpn', type='FPN', inputs=['backbone'],
             args=dict(in_channels=[64, 128, 256, 512], out_channels=64, num_outs=5))
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        extra: str = "conv",
    ):
        super().__init__()
        self.in_channels = as_channel_list(in_channels, "FPN")
        if not 0 <= start_level < len(self.in_channels):
            raise ValueError(
                f"FPN: start_level={start_level} out of range for {len(self.in_channels)} inputs"
            )
        used = self.in_channels[start_level:]
        if num_outs < len(used):
            raise ValueError(
                f"FPN: num_outs={num_outs} is smaller than the {len(used)} inputs used "
                f"(in_channels={self.in_channels}, start_level={start_level})"
            )
        if extra not in EXTRA_MODES:
            raise ValueError(f"FPN: extra must be one of {EXTRA_MODES}, got {extra!r}")
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.extra = extra

        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in used)
        self.output_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in used
        )
        num_extra = num_outs - len(used) if extra == "conv" else 0
        self.extra_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1) for _ in range(num_extra)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _c2_xavier_fill(m)

    @classmethod
    def output_names(cls, args: dict) -> tuple[str, ...]:
        return tuple(str(i) for i in range(args["num_outs"]))

    def forward(self, *inputs) -> tuple[torch.Tensor, ...]:
        """Feature maps fine to coarse -> tuple of ``num_outs`` maps, fine to coarse."""
        feats = feature_list(inputs)
        check_feature_count(feats, self.in_channels, "FPN")
        feats = feats[self.start_level :]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.output_convs, laterals, strict=True)]
        if self.extra == "conv":
            for i, conv in enumerate(self.extra_convs):
                outs.append(conv(F.relu(outs[-1]) if i > 0 else outs[-1]))
        else:
            while len(outs) < self.num_outs:
                outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)

"""Plumbing shared by the native blocks: input normalisation, conv-norm-act, ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "as_channel_list",
    "conv_norm_act",
    "feature_list",
    "samples_with",
    "stack_maps",
    "zero_loss",
]

NORMS = ("BN", "GN", None)


def feature_list(inputs: Sequence[Any]) -> list[torch.Tensor]:
    """Flatten a block's positional inputs into a list of feature maps.

    A block fed by ``inputs=['backbone']`` receives one dict (name -> Tensor), by
    ``inputs=['fpn']`` one tuple, by ``inputs=['fpn.0', 'fpn.1']`` several tensors; all three
    become a list of Tensor[B, C_i, H_i, W_i] in the given (dict insertion) order.
    """
    if len(inputs) == 1:
        x = inputs[0]
        if isinstance(x, dict):
            return list(x.values())
        if isinstance(x, list | tuple):
            return list(x)
        return [x]
    return list(inputs)


def check_feature_count(feats: Sequence[Any], in_channels: Sequence[int], owner: str) -> None:
    """Raise if a head got another number of feature maps than its ``in_channels`` lists."""
    if len(feats) != len(in_channels):
        raise ValueError(
            f"{owner} got {len(feats)} feature maps but in_channels has "
            f"{len(in_channels)} entries ({in_channels})"
        )


def as_channel_list(in_channels: int | Sequence[int], owner: str) -> list[int]:
    """``in_channels`` as a non-empty list of positive ints; a clear error otherwise."""
    channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
    if not channels or not all(isinstance(c, int) and c > 0 for c in channels):
        raise ValueError(
            f"{owner}: in_channels must be a positive int or a non-empty list of them, "
            f"got {in_channels!r}"
        )
    return channels


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    norm: str | None = "BN",
    num_groups: int = 32,
    owner: str = "block",
) -> nn.Sequential:
    """Conv2d (+ BatchNorm2d or GroupNorm) + ReLU, as a plain ``nn.Sequential``.

    Plain modules (no wrapper attributes such as ``out_channels``) keep pruning tools and
    conv-BN fusion working.
    """
    if norm not in NORMS:
        raise ValueError(f"{owner}: norm must be one of {NORMS}, got {norm!r}")
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=norm is None
        )
    ]
    if norm == "BN":
        layers.append(nn.BatchNorm2d(out_channels))
    elif norm == "GN":
        if out_channels % num_groups:
            raise ValueError(
                f"{owner}: GroupNorm needs channels divisible by num_groups, got "
                f"{out_channels} channels and num_groups={num_groups}"
            )
        layers.append(nn.GroupNorm(num_groups, out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def samples_with(data_samples: Sequence[Any], field: str) -> list[int]:
    """Indices of the samples that carry ground truth ``field`` (e.g. ``'gt_sem_seg'``).

    In a multi-dataset batch a sample only has the ground truth of the tasks its dataset
    annotates; heads leave the others out of their loss.
    """
    return [i for i, s in enumerate(data_samples) if getattr(s, field, None) is not None]


def stack_maps(maps: Sequence[torch.Tensor], pad_value: float) -> torch.Tensor:
    """Stack per-sample maps Tensor[1, H_i, W_i] into Tensor[B, 1, H, W].

    Maps should already be padded to ``batch_input_shape``; any that are not are padded at the
    bottom/right with ``pad_value`` (the "ignore" value), which matches top-left aligned images.
    """
    h = max(m.shape[-2] for m in maps)
    w = max(m.shape[-1] for m in maps)
    out = [
        F.pad(m, (0, w - m.shape[-1], 0, h - m.shape[-2]), value=pad_value)
        if m.shape[-2:] != (h, w)
        else m
        for m in maps
    ]
    return torch.stack(out)


def zero_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """A zero scalar that stays connected to the graph of ``tensors`` (no NaN even if they are).

    Used when a batch has nothing to learn from for a term, so that every parameter still gets a
    (zero) gradient and DDP does not complain about unused parameters.
    """
    return sum(torch.where(torch.isfinite(t), t, 0).sum() * 0.0 for t in tensors)

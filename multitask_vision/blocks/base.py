"""The protocol of native blocks (registered in ``multitask_vision.registry.BLOCKS``).

A native block is an ``nn.Module`` whose ``forward`` takes the outputs of its config ``inputs``
as positional arguments, in order. Its output is a Tensor, a tuple/list (sub-outputs ``name.0``,
``name.1``, ...) or a dict (sub-outputs ``name.key``); ``output_names(args)`` lists the dict keys
or indices so that configs are validated before anything is built.

A native *head* also sets ``task`` and implements ``loss`` and ``predict``; it is called by the
native adapter, which prefixes loss keys with the task (``loss_cls`` -> ``loss_detection_cls``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["NativeBlock", "NativeHead"]


class NativeBlock(nn.Module):
    """Base class of native blocks; subclasses need not use it, only follow the protocol."""

    @classmethod
    def output_names(cls, args: dict) -> Sequence[str] | None:
        """Sub-output names for config ``args``, or None if the output has no sub-outputs."""
        return None


class NativeHead(NativeBlock):
    """A block with a task: computes its own loss and writes its predictions.

    Attributes:
        task: the task this head serves by default ('detection', 'segmentation', 'depth', ...).
        pred_field: the data sample field ``predict`` writes (``pred_instances`` ...).
    """

    task: ClassVar[str] = ""
    pred_field: ClassVar[str] = ""

    def loss(self, outputs: Any, data_samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Loss terms keyed ``loss_<term>`` (plus optional logged values without 'loss')."""
        raise NotImplementedError

    def predict(self, outputs: Any, data_samples: Sequence[Any]) -> None:
        """Write predictions into each data sample's ``pred_field``, in original image pixels."""
        raise NotImplementedError

"""Adapter for mmdet / mmseg blocks that are not heads (necks, backbones)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from torch import nn

from ..registry import ADAPTERS
from .base import BlockAdapter

__all__ = ["MMLabModuleAdapter", "as_feature_tuple"]


def as_feature_tuple(inputs: Sequence[Any]) -> tuple:
    """mmlab necks and heads take a tuple of feature maps: one dict/tuple input is unpacked,
    several inputs are packed, in config order."""
    if len(inputs) == 1:
        (x,) = inputs
        if isinstance(x, Mapping):
            return tuple(x.values())
        if isinstance(x, (tuple, list)):
            return tuple(x)
    return tuple(inputs)


@ADAPTERS.register_module(name="mmlab_module")
class MMLabModuleAdapter(BlockAdapter):
    """mmdet/mmseg necks get a tuple of features; backbones get the image tensor.

    Blocks are built from an mmengine ``ConfigDict`` (mmdet reads ``test_cfg.min_bbox_size`` and
    the like as attributes) inside the block library's default scope, so the modules it builds
    from its own registry (losses, assigners) resolve there whatever the Runner's scope is.
    """

    protocol = "mmlab_module"

    @classmethod
    def matches(cls, block_cls: type, scope: str) -> bool:
        return scope in ("mmdet", "mmseg")

    @classmethod
    def output_names(cls, block_cls: type, args: Mapping) -> Sequence[str] | None:
        if "num_outs" in args:
            return [str(i) for i in range(int(args["num_outs"]))]
        if "out_indices" in args:
            return [str(i) for i in range(len(args["out_indices"]))]
        return None

    def _scope(self) -> str:
        return self.block_cls.__module__.split(".")[0]

    def build_args(self) -> dict:
        return dict(self.spec.args)

    def build(self) -> nn.Module:
        with DefaultScope.overwrite_default_scope(self._scope()):
            return self.block_cls(**ConfigDict(self.build_args()))

    def __call__(self, block: nn.Module, *inputs: Any) -> Any:
        if ".backbones." in self.block_cls.__module__ and len(inputs) == 1:
            return block(inputs[0])
        return block(as_feature_tuple(inputs))

"""Adapter for our own blocks (``multitask_vision.blocks``): they follow ``blocks/base.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..registry import ADAPTERS
from .base import BlockAdapter, prefix_losses

__all__ = ["NativeAdapter"]


@ADAPTERS.register_module(name="native")
class NativeAdapter(BlockAdapter):
    """Native blocks take their inputs positionally; heads own ``loss`` and ``predict``."""

    protocol = "native"

    def __init__(self, spec, block_cls):
        super().__init__(spec, block_cls)
        self.is_head = callable(getattr(block_cls, "loss", None)) and callable(
            getattr(block_cls, "predict", None)
        )

    @classmethod
    def matches(cls, block_cls: type, scope: str) -> bool:
        return scope == "mtv"

    @classmethod
    def output_names(cls, block_cls: type, args: Mapping) -> Sequence[str] | None:
        fn = getattr(block_cls, "output_names", None)
        return fn(dict(args)) if callable(fn) else None

    @classmethod
    def default_task(cls, block_cls: type) -> str | None:
        return getattr(block_cls, "task", None) or None

    def loss(self, block, outputs: Any, data_samples: Sequence[Any]):
        return prefix_losses(block.loss(outputs, data_samples), self.task)

    def predict(self, block, outputs: Any, data_samples: Sequence[Any]) -> None:
        block.predict(outputs, data_samples)

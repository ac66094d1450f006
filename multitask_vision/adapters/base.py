"""The adapter protocol: every convention between the graph and a block lives in an adapter.

An adapter is stateless with respect to the block's weights: the graph owns the modules, and each
method receives the module, so pruning or quantization may replace a module without leaving the
adapter pointing at a stale one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ..model import BlockSpec

__all__ = ["BlockAdapter", "prefix_losses", "require_field"]


def prefix_losses(losses: Mapping[str, Any], task: str) -> dict[str, Any]:
    """``loss_cls`` -> ``loss_<task>_cls``; logged values (``acc_seg``) -> ``<task>_acc_seg``."""
    out = {}
    for key, value in losses.items():
        if key.startswith("loss_"):
            out[f"loss_{task}_{key[len('loss_') :]}"] = value
        elif key == "loss":
            out[f"loss_{task}"] = value
        else:
            out[f"{task}_{key}"] = value
    return out


def require_field(data_samples: Sequence[Any], field: str, spec: BlockSpec) -> None:
    """Raise a clear error when a sample lacks the ground-truth field a head needs."""
    for sample in data_samples:
        if field not in sample:
            meta = getattr(sample, "metainfo", {})
            raise KeyError(
                f"{spec.where} (task {spec.task!r}) needs data_sample.{field}, but sample "
                f"{meta.get('img_id', '?')!r} of dataset {meta.get('dataset', '?')!r} has only "
                f"{sorted(k for k in sample.all_keys() if k.startswith('gt_'))}; check the "
                "dataset's gt_key_tasks"
            )


class BlockAdapter:
    """Bridges one block's calling, loss, ground-truth and prediction conventions.

    Attributes:
        protocol: registered adapter name.
        is_head: whether blocks of this protocol compute a loss and predictions.
    """

    protocol: ClassVar[str] = ""
    is_head: ClassVar[bool] = False

    def __init__(self, spec: BlockSpec, block_cls: type):
        self.spec = spec
        self.block_cls = block_cls

    @property
    def task(self) -> str | None:
        return self.spec.task

    @classmethod
    def matches(cls, block_cls: type, scope: str) -> bool:
        """Whether this protocol is the default for a class from ``scope``."""
        return False

    @classmethod
    def output_names(cls, block_cls: type, args: Mapping) -> Sequence[str] | None:
        """Sub-output names known from the config alone, or None when unknown."""
        return None

    @classmethod
    def default_task(cls, block_cls: type) -> str | None:
        """The task a head of this class usually serves (for error hints)."""
        return None

    def build(self) -> nn.Module:
        return self.block_cls(**self.spec.args)

    def __call__(self, block: nn.Module, *inputs: Any) -> Any:
        return block(*inputs)

    def loss(
        self, block: nn.Module, outputs: Any, data_samples: Sequence[Any]
    ) -> dict[str, torch.Tensor]:
        """Loss terms keyed ``loss_<task>_<term>``, from the block's own loss machinery."""
        raise TypeError(f"{self.spec.where}: {self.protocol} blocks have no loss")

    def predict(self, block: nn.Module, outputs: Any, data_samples: Sequence[Any]) -> None:
        """Write predictions into the data samples, in original image pixels."""
        raise TypeError(f"{self.spec.where}: {self.protocol} blocks make no predictions")

"""Loading the checkpoint to deploy (plain, physically pruned or QAT) and saving pruned ones.

Checkpoints are mmengine's format (``{'state_dict': {'blocks.<block>.<param>': ...}, 'meta':
{...}}``) read with ``torch.load(weights_only=True)`` (``multitask_vision.checkpoint``). A
physically pruned checkpoint carries ``meta['pruning']``; its tensors have the pruned shapes,
and the model built from the unpruned config is reshaped to them before loading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..checkpoint import check_checkpoint_matches, load_checkpoint_file
from .pruning import reshape_to_state_dict, sync_channel_attributes
from .qat import (
    QATCheckpointError,
    is_qat_model,
    load_qat_checkpoint,
    qat_meta_from_checkpoint,
    strip_qat,
)

__all__ = [
    "LoadedCheckpoint",
    "load_deploy_checkpoint",
    "load_state_dict_strict",
    "save_checkpoint",
]


def load_state_dict_strict(model: nn.Module, state: Mapping, path: str = "<checkpoint>") -> None:
    """Load ``state`` into ``model``; every key must match in name and shape (fake-quant
    observers excepted: they size themselves when loaded).

    Raises:
        CheckpointError: naming the missing, unexpected and reshaped keys.
    """
    check_checkpoint_matches(model, state, path, shape_exempt=lambda k: "_fake_quant." in k)
    model.load_state_dict(dict(state), strict=True)


@dataclass
class LoadedCheckpoint:
    """Attributes:
    meta: the checkpoint's ``meta``.
    qat: the QAT settings if it was a QAT checkpoint, else None.
    qat_overrides: conv input scale / zero point learned by QAT (for the quantizer).
    pruned: whether it held a physically pruned model.
    """

    meta: dict
    qat: dict | None = None
    qat_overrides: dict[str, tuple[float, int]] = field(default_factory=dict)
    pruned: bool = False


def load_deploy_checkpoint(
    model: nn.Module, path: str, example: torch.Tensor, require_qat: bool = False
) -> LoadedCheckpoint:
    """Load ``path`` into a model freshly built from its config, in place.

    QAT checkpoints are converted to a float model with the learned weights (their observers'
    ranges are returned for the quantizer); physically pruned ones reshape the model first.

    Args:
        model: the model built from the training config.
        path: the checkpoint.
        example: Tensor[1, 3, H, W] to trace channel counts of a pruned model with.
        require_qat: raise if the checkpoint is not a QAT checkpoint (``method='qat'``).

    Raises:
        CheckpointError: unreadable file, or keys / shapes that do not match.
        QATCheckpointError: ``require_qat`` and no QAT settings in the checkpoint.
    """
    ckpt = load_checkpoint_file(path)
    if "state_dict" not in ckpt:
        ckpt = {"state_dict": ckpt, "meta": {}}
    ckpt["state_dict"] = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    meta = dict(ckpt.get("meta") or {})
    try:
        qat = qat_meta_from_checkpoint(ckpt, path)
    except QATCheckpointError:
        if require_qat:
            raise
        qat = None
    if qat is not None:
        model, overrides = load_qat_checkpoint(model, ckpt, path)
        return LoadedCheckpoint(meta, qat, overrides if require_qat else {})
    if is_qat_model(model):  # a QAT training config with a float checkpoint
        strip_qat(model)
    state = ckpt["state_dict"]
    pruned = bool(meta.get("pruning", {}).get("physical"))
    if pruned:
        reshape_to_state_dict(model, state)
    load_state_dict_strict(model, state, path)
    if pruned:
        sync_channel_attributes(model, example)
    return LoadedCheckpoint(meta, None, {}, pruned)


def save_checkpoint(model: nn.Module, path: str, meta: Mapping) -> None:
    """mmengine-format checkpoint (``state_dict`` + ``meta``), written atomically."""
    tmp = f"{path}.partial"
    torch.save({"state_dict": model.state_dict(), "meta": dict(meta)}, tmp)
    os.replace(tmp, path)

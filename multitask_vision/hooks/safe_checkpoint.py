"""`SafeCheckpointHook`: training checkpoints that ``torch.load(weights_only=True)`` accepts.

mmengine stores its message hub's ``HistoryBuffer`` objects in every checkpoint, and pickling
them references the builtin ``getattr``, which weights-only loading rightly refuses (allowing it
would allow ``getattr(os, 'system')``). This hook writes each buffer as plain tensors and rebuilds
the buffers after loading, so resume keeps the log history without any unsafe global.
"""

from __future__ import annotations

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from ..registry import HOOKS

__all__ = ["SafeCheckpointHook", "from_safe_message_hub", "to_safe_message_hub"]

_TAG = "__history_buffer__"


def to_safe_message_hub(state: dict) -> dict:
    """``message_hub`` state with every ``HistoryBuffer`` replaced by tensors."""
    scalars = {}
    for key, buf in state.get("log_scalars", {}).items():
        if isinstance(buf, HistoryBuffer):
            log, count = buf.data
            scalars[key] = {
                _TAG: True,
                "log": torch.as_tensor(np.asarray(log, dtype=np.float64)),
                "count": torch.as_tensor(np.asarray(count, dtype=np.float64)),
                "max_length": int(buf.max_length),
            }
        else:
            scalars[key] = buf
    return dict(state, log_scalars=scalars)


def from_safe_message_hub(state: dict) -> dict:
    """The inverse of :func:`to_safe_message_hub`."""
    scalars = {}
    for key, value in state.get("log_scalars", {}).items():
        if isinstance(value, dict) and value.get(_TAG):
            scalars[key] = HistoryBuffer(
                value["log"].numpy().tolist(), value["count"].numpy().tolist(), value["max_length"]
            )
        else:
            scalars[key] = value
    return dict(state, log_scalars=scalars)


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Convert the message hub state on save and back on load (always on: see the runner)."""

    priority = "LOWEST"  # save: after every hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = to_safe_message_hub(checkpoint["message_hub"])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = from_safe_message_hub(checkpoint["message_hub"])

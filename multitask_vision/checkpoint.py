"""Loading checkpoints safely, with errors that say what does not match.

Every checkpoint is read with ``torch.load(weights_only=True)``: a downloaded ``.pth`` cannot run
code. mmengine writes a few of its own types (message hub history, numpy scalars) into training
checkpoints; exactly those are allow-listed, nothing else.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "allow_mmengine_checkpoint_types",
    "check_checkpoint_matches",
    "checkpoint_state_dict",
    "load_checkpoint_file",
    "load_model_weights",
]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, corrupt, unsafe or not matching."""


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list the non-tensor types mmengine's Runner stores in a training checkpoint."""
    from mmengine.logging.history_buffer import HistoryBuffer

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed np.core
    safe: list[Any] = [HistoryBuffer, np.dtype, np.ndarray]
    safe += [core.multiarray.scalar, core.multiarray._reconstruct]
    safe += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    torch.serialization.add_safe_globals(safe)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """Read a checkpoint with weights-only unpickling.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or holds objects that
            weights-only loading refuses (the message names the object).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    allow_mmengine_checkpoint_types()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path!r} holds objects that weights-only loading refuses, so it is not "
            f"loaded (it could run code): {str(e).splitlines()[0]}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt or truncated ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no detail'})"
        ) from e
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(ckpt).__name__}, not a dict")
    return dict(ckpt)


def _short(keys: list[str], n: int = 10) -> str:
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def checkpoint_state_dict(ckpt: Mapping) -> dict[str, torch.Tensor]:
    state = ckpt.get("state_dict", ckpt)
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def check_checkpoint_matches(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    path,
    shape_exempt: Callable[[str], bool] | None = None,
) -> None:
    """Raise `CheckpointError` listing the keys that are missing, unexpected or reshaped.

    ``shape_exempt(key)`` marks keys whose shape may differ (e.g. observers that size
    themselves when loaded).
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if isinstance(own[k], torch.Tensor)
        and isinstance(state[k], torch.Tensor)
        and state[k].shape != own[k].shape
        and not (shape_exempt and shape_exempt(k))
    )
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing in the checkpoint: {_short(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model: {_short(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} with another shape: {_short(shapes)}")
    raise CheckpointError(
        f"checkpoint {os.fspath(path)!r} does not match the config's model; "
        + "; ".join(parts)
        + ". Was it trained with another config?"
    )


def load_model_weights(
    model: nn.Module, path: str | os.PathLike, strict: bool = True
) -> dict[str, Any]:
    """Load a checkpoint's ``state_dict`` into ``model`` and return the checkpoint's ``meta``.

    Accepts mmengine checkpoints (``{'state_dict': ..., 'meta': ...}``) and bare state dicts;
    a ``module.`` prefix left by DDP is stripped.

    Raises:
        CheckpointError: when ``strict`` and keys are missing, unexpected or of another shape;
            the message lists them, so a checkpoint from another config is recognisable.
    """
    ckpt = load_checkpoint_file(path)
    state = checkpoint_state_dict(ckpt)
    if strict:
        check_checkpoint_matches(model, state, path)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return dict(ckpt.get("meta", {}) or {})

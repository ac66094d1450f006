"""`RNGStateHook`: checkpoints carry the Python, NumPy and torch RNG states, so a resumed run
draws the same random numbers as an uninterrupted one (with ``num_workers=0``; worker processes
have their own generators)."""

from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook

from ..registry import HOOKS

__all__ = ["RNGStateHook"]


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save RNG states with each checkpoint; restore them when training resumes.

    The loop replays the data loader up to the resumed iteration, which consumes random numbers;
    the states are therefore restored after that replay (``after_data_replay``, called by
    `MultiTaskTrainLoop`), before the first new batch is drawn.
    """

    priority = "VERY_LOW"

    def __init__(self):
        self._pending: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        np_state = np.random.get_state()
        checkpoint["rng_state"] = dict(
            python=list(random.getstate()[1]),
            python_version=random.getstate()[0],
            python_gauss=random.getstate()[2],
            numpy_keys=torch.from_numpy(np_state[1].astype(np.int64)),
            numpy_pos=int(np_state[2]),
            numpy_gauss=(int(np_state[3]), float(np_state[4])),
            torch=torch.get_rng_state(),
        )

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get("rng_state")

    def after_data_replay(self, runner) -> None:
        if self._pending is None:
            return
        s, self._pending = self._pending, None
        random.setstate((s["python_version"], tuple(s["python"]), s["python_gauss"]))
        has_gauss, gauss = s["numpy_gauss"]
        np.random.set_state(
            ("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], has_gauss, gauss)
        )
        torch.set_rng_state(s["torch"])

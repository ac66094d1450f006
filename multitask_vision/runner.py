"""`MultiTaskRunner`: mmengine's Runner with crash-safe checkpoints.

- Every checkpoint is written to a temporary file and renamed into place, so a kill (even
  ``kill -9``) never leaves a truncated ``iter_N.pth``; ``latest.pth`` is then replaced
  atomically by a hard link (a copy where links are impossible) to the newest checkpoint.
- ``--resume`` with no path resumes from ``latest.pth``.
- Checkpoints are read with ``torch.load(weights_only=True)`` (mmengine's default under torch
  >= 2.6); the few mmengine types a training checkpoint holds are allow-listed.
"""

from __future__ import annotations

import os
import shutil

from mmengine.runner import Runner

from .checkpoint import allow_mmengine_checkpoint_types

__all__ = ["LATEST", "MultiTaskRunner", "find_latest_checkpoint"]

LATEST = "latest.pth"


def _atomic_link(src: str, dst: str) -> None:
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.partial")
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def find_latest_checkpoint(work_dir: str) -> str | None:
    """``<work_dir>/latest.pth`` if it exists, else None."""
    path = os.path.join(work_dir, LATEST)
    return path if os.path.isfile(path) else None


class MultiTaskRunner(Runner):
    """mmengine ``Runner`` whose checkpoints are written atomically (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        allow_mmengine_checkpoint_types()
        super().__init__(*args, **kwargs)

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        partial = f".{filename}.partial"
        super().save_checkpoint(out_dir, partial, *args, **kwargs)
        # Runner.save_checkpoint is master-only: other ranks wrote nothing.
        tmp, final = os.path.join(out_dir, partial), os.path.join(out_dir, filename)
        if os.path.isfile(tmp):
            os.replace(tmp, final)
            _atomic_link(final, os.path.join(out_dir, LATEST))

"""`TaskTraceHook`: which dataset and tasks every rank trained on at every step, and a checksum
of the weights at the end: the evidence that DDP ranks ran the same heads and stayed in sync."""

from __future__ import annotations

import json
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from ..registry import HOOKS

__all__ = ["TaskTraceHook"]


@HOOKS.register_module()
class TaskTraceHook(Hook):
    """Append ``{"iter", "dataset", "tasks", "batch"}`` per step to
    ``<work_dir>/task_trace_rank<r>.jsonl`` and ``{"checksum": ...}`` after training."""

    def _path(self, runner) -> str:
        return os.path.join(runner.work_dir, f"task_trace_rank{get_rank()}.jsonl")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        samples = (data_batch or {}).get("data_samples") or []
        record = dict(
            iter=runner.iter,
            dataset=sorted({s.metainfo.get("dataset") for s in samples}),
            tasks=sorted({t for s in samples for t in s.metainfo.get("tasks", ())}),
            batch=len(samples),
        )
        with open(self._path(runner), "a") as f:
            f.write(json.dumps(record) + "\n")

    def after_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        with torch.no_grad():
            checksum = sum(float(p.double().abs().sum()) for p in model.parameters())
        with open(self._path(runner), "a") as f:
            f.write(json.dumps(dict(checksum=checksum)) + "\n")

"""`MultiTaskSummaryHook`: the untrained model's metrics, then after each validation a table of
every metric beside the single-task baselines and Delta_m; the history goes to
``<work_dir>/metrics_history.json``."""

from __future__ import annotations

import json
import os

from mmengine.hooks import Hook

from ..evaluation import format_summary
from ..registry import HOOKS

__all__ = ["MultiTaskSummaryHook"]


@HOOKS.register_module()
class MultiTaskSummaryHook(Hook):
    """Print the multi-task summary and keep the metric history.

    Args:
        baselines: metric key (``<dataset>/<task>/<metric>``) -> single-task result.
        eval_before_train: validate the untrained model first (column ``iter 0``).
        keys: metric keys to show (default: all).
    """

    # LOWEST: the validation before training must run after every other before_train (the
    # checkpoint hook prepares its file backend there, and saves the best checkpoint after val).
    priority = "LOWEST"

    def __init__(self, baselines: dict | None = None, eval_before_train: bool = True,
                 keys: list[str] | None = None):  # fmt: skip
        self.baselines = dict(baselines or {})
        self.eval_before_train = eval_before_train
        self.keys = keys
        self.history: dict[str, dict[str, float]] = {}

    def before_train(self, runner) -> None:
        path = os.path.join(runner.work_dir, "metrics_history.json")
        if os.path.isfile(path):  # resumed: keep what was measured before the interruption
            with open(path) as f:
                self.history = json.load(f)
        if self.eval_before_train and runner.iter == 0 and "iter 0" not in self.history:
            runner.val_loop.run()

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if not metrics:
            return
        title = f"iter {runner.iter}"
        self.history[title] = {k: float(v) for k, v in metrics.items()}
        runner.logger.info(
            "multi-task summary\n" + format_summary(self.history, self.baselines, self.keys)
        )
        path = os.path.join(runner.work_dir, "metrics_history.json")
        tmp = path + ".partial"
        with open(tmp, "w") as f:
            json.dump(self.history, f, indent=2)
        os.replace(tmp, path)

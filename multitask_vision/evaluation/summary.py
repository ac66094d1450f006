"""The multi-task summary: each metric beside its single-task baseline, and the gain Delta_m.

Delta_m (Maninis et al. 2019; Vandenhende et al., MTI-Net; LibMTL) is the mean over tasks of the
relative change of the multi-task model against single-task baselines, sign-corrected so that
positive is better for lower-is-better metrics too::

    Delta_m = 100 / T * sum_t mean_{m in t} (-1)^{l_m} (M_mt - M_st) / M_st

where a task t is a ``<dataset>/<task>`` prefix and l_m = 1 for lower-is-better metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["LOWER_IS_BETTER", "format_summary", "is_lower_better", "multitask_gain"]

#: Metric names (last key component) where lower is better (mmseg DepthMetric's errors).
LOWER_IS_BETTER = frozenset({"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"})


def is_lower_better(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in LOWER_IS_BETTER


def multitask_gain(metrics: Mapping[str, float], baselines: Mapping[str, float]) -> float | None:
    """Delta_m in percent over the metrics that have a baseline; None if there are none."""
    per_task: dict[str, list[float]] = {}
    for key, base in baselines.items():
        if key not in metrics or not base:
            continue
        sign = -1.0 if is_lower_better(key) else 1.0
        task = key.rsplit("/", 1)[0]
        per_task.setdefault(task, []).append(sign * (metrics[key] - base) / base)
    if not per_task:
        return None
    return 100.0 * sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)


def format_summary(
    columns: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, float] | None = None,
    keys: Iterable[str] | None = None,
) -> str:
    """A plain-text table: one row per metric, one column per named result set.

    Args:
        columns: column title -> metrics, e.g. ``{'iter 0': {...}, 'iter 2000': {...}}``.
        baselines: optional single-task baselines; adds a column and a Delta_m row per column.
        keys: metric keys to show (default: every key of the columns, sorted).
    """
    baselines = dict(baselines or {})
    if keys is None:
        keys = sorted({k for col in columns.values() for k in col if "/" in k})
    keys = list(keys)
    titles = list(columns) + (["single-task"] if baselines else [])
    labels = [k + (" (lower better)" if is_lower_better(k) else "") for k in keys]
    width = max([len(label) for label in labels] + [len("Delta_m (%)")]) + 2
    lines = ["metric".ljust(width) + "".join(f"{t:>14}" for t in titles)]
    for key, label in zip(keys, labels, strict=True):
        cells = [columns[t].get(key) for t in columns]
        if baselines:
            cells.append(baselines.get(key))
        lines.append(label.ljust(width) + "".join(_cell(c) for c in cells))
    if baselines:
        gains = [multitask_gain(columns[t], baselines) for t in columns]
        lines.append("Delta_m (%)".ljust(width) + "".join(_cell(g) for g in gains))
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return f"{'-':>14}"
    return f"{float(value):>14.4f}"

"""The deploy report: per stage parameters, MACs, file size, latency and task metrics.

``report.json`` holds ``stages`` (one entry per stage: fp32, pruned, int8, pruned_int8), the
ratios of each stage to fp32, and the parity / quantization details; :func:`format_table`
prints the same numbers as a table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "StageReport",
    "count_macs",
    "count_params",
    "format_table",
    "headline_metrics",
    "ratios",
    "write_report",
]


@dataclass
class StageReport:
    """Measurements of one stage's exported artifact.

    Attributes:
        name: ``'fp32'``, ``'pruned'``, ``'int8'`` or ``'pruned_int8'``.
        artifact: file name of the ONNX model (inside the output folder).
        params: parameters of the exported blocks.
        macs: multiply-accumulates of one batch-1 forward pass at the exported size.
        file_bytes: size of the ONNX file.
        latency_ms: ``{'1': median ms with 1 thread, 'N': with all N threads}``.
        metrics: task metrics on the validation split (empty without an evaluator).
        parity: exported vs eager (fp32 stages): max abs difference, pass / fail.
        details: anything else (pruning result, quantization summary, TorchScript file).
    """

    name: str
    artifact: str
    params: int
    macs: int
    file_bytes: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_macs(module: nn.Module, example: torch.Tensor) -> int:
    """MACs of ``module(example)`` (convolutions, linear layers, norms), by Torch-Pruning's
    counter (it counts multiply-accumulates of conv / linear layers)."""
    import torch_pruning as tp

    was_training = module.training
    module.eval()
    macs, _ = tp.utils.count_ops_and_params(module, example)
    module.train(was_training)
    return int(macs)


def ratios(stages: Sequence[StageReport]) -> dict[str, dict[str, float]]:
    """Each stage relative to fp32: params, MACs, file size, latency (per thread setting)."""
    base = next((s for s in stages if s.name == "fp32"), None)
    if base is None:
        return {}
    out = {}
    for s in stages:
        r = dict(
            params=s.params / base.params,
            macs=s.macs / base.macs,
            file=s.file_bytes / base.file_bytes,
        )
        for k, v in s.latency_ms.items():
            if k in base.latency_ms:
                r[f"latency_{k}t"] = v / base.latency_ms[k]
        out[s.name] = r
    return out


#: Metric names shown in the table (report.json has them all).
HEADLINE = ("mAP", "mIoU", "abs_rel", "rmse", "d1")


def headline_metrics(keys: Sequence[str]) -> list[str]:
    """The keys whose last part is a headline metric (``voc/detection/mAP``...)."""
    picked = [k for k in keys if k.rsplit("/", 1)[-1] in HEADLINE]
    return picked or list(keys)


def _fmt_metric(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def format_table(stages: Sequence[StageReport], metric_keys: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per stage, ratios to fp32 in parentheses."""
    if not stages:
        return "(no stages)"
    rel = ratios(stages)
    threads = list(stages[0].latency_ms)
    if metric_keys is None:
        metric_keys = headline_metrics(sorted({k for s in stages for k in s.metrics}))
    header = ["stage", "params (M)", "GMACs", "file (MB)"]
    header += [f"ORT {t} thr (ms)" for t in threads] + list(metric_keys)
    rows = [header]
    for s in stages:
        r = rel.get(s.name, {})

        def cell(value: str, key: str, r=r, base=s.name == "fp32") -> str:
            return f"{value} ({r[key]:.2f}x)" if key in r and not base else value

        row = [
            s.name,
            cell(f"{s.params / 1e6:.3f}", "params"),
            cell(f"{s.macs / 1e9:.3f}", "macs"),
            cell(f"{s.file_bytes / 1e6:.2f}", "file"),
        ]
        row += [cell(f"{s.latency_ms[t]:.2f}", f"latency_{t}t") for t in threads]
        row += [_fmt_metric(s.metrics.get(k)) for k in metric_keys]
        rows.append(row)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_report(path: str, stages: Sequence[StageReport], extra: Mapping[str, Any]) -> dict:
    """Write ``report.json`` (stages, ratios to fp32, and ``extra``) and return it."""
    report = dict(extra)
    report["stages"] = [asdict(s) for s in stages]
    report["ratios_to_fp32"] = ratios(stages)
    with open(path, "w") as f:
        json.dump(report, f, indent=2, default=_json_default)
    return report


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)

"""The deploy config: parsed and validated in full before anything is built, exported or written.

A deploy config is an mmengine config file holding one dict, ``deploy`` (every section optional)::

    deploy = dict(
        pruning=dict(method='structured', amount=0.3, targets='all', norm=1,
                     finetune=dict(iters=300)),
        quantization=dict(method='static', observer='minmax', calibration_steps=50),
        export=dict(format='onnx', blocks=None, img_size=256),
        latency=dict(warmup=10, runs=50),
    )

Every problem is collected and reported at once, naming the key, the value and the valid
choices (with the closest match for a misspelt name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._hints import did_you_mean

__all__ = [
    "DeployConfig",
    "DeployConfigError",
    "DistillConfig",
    "ExportConfig",
    "FinetuneConfig",
    "LatencyConfig",
    "PruningConfig",
    "QuantizationConfig",
    "EXPORT_FORMATS",
    "OBSERVERS",
    "PRUNING_METHODS",
    "QUANTIZATION_METHODS",
    "parse_deploy_config",
]

PRUNING_METHODS = ("structured", "unstructured")
QUANTIZATION_METHODS = ("static", "qat")
#: Calibration methods, named after the PyTorch observers they correspond to (see quantization.py).
OBSERVERS = ("minmax", "moving_average_minmax", "percentile", "entropy")
EXPORT_FORMATS = ("onnx", "torchscript")

_SECTIONS = ("pruning", "quantization", "export", "latency")
_PRUNING_KEYS = ("method", "amount", "targets", "norm", "physical", "round_to", "finetune")
_FINETUNE_KEYS = ("iters", "lr", "schedule", "warmup_iters", "distill", "seed", "log_interval")
_DISTILL_KEYS = ("weight", "tasks")
FINETUNE_SCHEDULES = ("cosine", "constant")
DISTILL_TASKS = ("all", "batch")
_QUANT_KEYS = ("method", "observer", "calibration_steps", "per_channel", "float_outputs",
               "percentile")  # fmt: skip
_EXPORT_KEYS = ("format", "blocks", "img_size", "opset", "atol", "rtol")
_LATENCY_KEYS = ("warmup", "runs")


class DeployConfigError(ValueError):
    """An invalid deploy config; the message lists every problem found, one per line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "invalid deploy config" + (
            f" ({len(self.problems)} problems)" if len(self.problems) > 1 else ""
        )
        super().__init__(head + ":\n  - " + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class DistillConfig:
    """Distillation from the unpruned model during the fine-tune (see ``distill.py``).

    Attributes:
        weight: factor of each task's ``loss_distill_<task>``.
        tasks: ``'all'`` (every head on every batch) or ``'batch'`` (the batch's tasks only).
    """

    weight: float = 1.0
    tasks: str = "all"


@dataclass(frozen=True)
class FinetuneConfig:
    """A short fine-tune after pruning, through the model's own ``train_step``.

    Attributes:
        iters: optimizer steps.
        lr: learning rate replacing the training config's (None keeps it).
        schedule: ``'cosine'`` (decay to 1% of ``lr`` over the fine-tune) or ``'constant'``.
        warmup_iters: linear warm-up steps before the schedule.
        distill: distillation from the unpruned model, or None.
        seed: seeds the data order, the augmentations and torch, so a deploy run repeats.
        log_interval: print the losses every this many steps.
    """

    iters: int
    lr: float | None = None
    schedule: str = "cosine"
    warmup_iters: int = 0
    distill: DistillConfig | None = None
    seed: int = 0
    log_interval: int = 50


@dataclass(frozen=True)
class PruningConfig:
    """Attributes:
    method: ``'structured'`` (channels, Ln norm) or ``'unstructured'`` (global L1 on weights).
    amount: fraction of channels (structured) or weights (unstructured) to remove, in [0, 1).
    targets: block names whose layers are pruned, or None for every block.
    norm: the ``n`` of the channel Ln norm (structured).
    physical: structured only: remove the channels (True) or only mask them with
        ``torch.nn.utils.prune.ln_structured`` (False: same shapes, nothing gets smaller).
    round_to: keep channel counts multiples of this (structured, physical), or None.
    finetune: a short fine-tune after pruning, or None.
    """

    method: str = "structured"
    amount: float = 0.3
    targets: tuple[str, ...] | None = None
    norm: float = 1.0
    physical: bool = True
    round_to: int | None = None
    finetune: FinetuneConfig | None = None


@dataclass(frozen=True)
class QuantizationConfig:
    """Attributes:
    method: ``'static'`` (post-training, calibrated) or ``'qat'`` (convert a QAT checkpoint).
    observer: calibration method (see ``OBSERVERS``).
    calibration_steps: calibration images (one image per step, real dataset images).
    per_channel: per-output-channel weight scales (recommended).
    float_outputs: keep the heads' output layers and the ops after them in float, so raw
        outputs (box distances, depth in metres) keep full precision.
    percentile: the percentile of ``observer='percentile'``.
    """

    method: str = "static"
    observer: str = "minmax"
    calibration_steps: int = 50
    per_channel: bool = True
    float_outputs: bool = True
    percentile: float = 99.999


@dataclass(frozen=True)
class ExportConfig:
    """Attributes:
    formats: artifact formats; ONNX is always written too, since every stage is measured in
        ONNX Runtime and int8 exists only as an ONNX QDQ model.
    blocks: the blocks whose outputs are exported (their ancestors run inside), or None for
        every head (the whole model).
    img_size: (H, W) of the exported input, multiples of 32.
    opset: ONNX opset, or None for the exporter's default.
    atol / rtol: fp32 parity tolerance: ``max|onnx - eager| <= atol + rtol * max|eager|``.
    """

    formats: tuple[str, ...] = ("onnx",)
    blocks: tuple[str, ...] | None = None
    img_size: tuple[int, int] = (256, 256)
    opset: int | None = None
    atol: float = 1e-4
    rtol: float = 1e-3


@dataclass(frozen=True)
class LatencyConfig:
    """ONNX Runtime latency: ``warmup`` runs discarded, median of ``runs``."""

    warmup: int = 10
    runs: int = 50


@dataclass(frozen=True)
class DeployConfig:
    pruning: PruningConfig | None = None
    quantization: QuantizationConfig | None = None
    export: ExportConfig = field(default_factory=ExportConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Checker:
    """Collects problems while reading one section; returns defaults for bad values."""

    def __init__(self, problems: list[str]):
        self.problems = problems

    def section(self, raw, where: str, keys: Sequence[str]) -> dict | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.problems.append(f"{where} must be a dict, got {raw!r}")
            return None
        for key in raw:
            if key not in keys:
                self.problems.append(
                    f"{where}: unknown key {key!r}{did_you_mean(key, keys)}; "
                    f"valid keys: {list(keys)}"
                )
        return dict(raw)

    def choice(self, d: dict, key: str, where: str, choices: Sequence[str], default: str) -> str:
        v = d.get(key, default)
        if v not in choices:
            self.problems.append(
                f"{where}.{key}: unsupported value {v!r}{did_you_mean(v, choices)}; "
                f"valid: {list(choices)}"
            )
            return default
        return v

    def int_(self, d: dict, key: str, where: str, default, minimum: int = 1, allow_none=False):
        v = d.get(key, default)
        if v is None and allow_none:
            return None
        if not _is_int(v) or v < minimum:
            self.problems.append(f"{where}.{key} must be an int >= {minimum}, got {v!r}")
            return default
        return v

    def bool_(self, d: dict, key: str, where: str, default: bool) -> bool:
        v = d.get(key, default)
        if not isinstance(v, bool):
            self.problems.append(f"{where}.{key} must be True or False, got {v!r}")
            return default
        return v

    def blocks(self, v, where: str, block_names: Sequence[str]) -> tuple[str, ...] | None:
        """``'all'`` / None -> None; a name or a list of names -> tuple, each a known block."""
        if v is None or v == "all":
            return None
        names = [v] if isinstance(v, str) else v
        if (
            not isinstance(names, Sequence)
            or not names
            or not all(isinstance(n, str) for n in names)
        ):
            self.problems.append(
                f"{where} must be 'all' or a non-empty list of block names, got {v!r}; "
                f"blocks: {list(block_names)}"
            )
            return None
        for n in names:
            if n not in block_names:
                self.problems.append(
                    f"{where}: unknown block {n!r}{did_you_mean(n, block_names)}; "
                    f"the model's blocks: {list(block_names)}"
                )
        if len(set(names)) != len(names):
            self.problems.append(f"{where}: duplicate block names in {list(names)}")
        return tuple(names)


def _parse_pruning(raw, c: _Checker, block_names) -> PruningConfig | None:
    where = "deploy.pruning"
    d = c.section(raw, where, _PRUNING_KEYS)
    if d is None:
        return None
    method = c.choice(d, "method", where, PRUNING_METHODS, "structured")
    amount = d.get("amount", 0.3)
    if not _is_number(amount) or not 0 <= amount < 1:
        c.problems.append(
            f"{where}.amount must be a number in [0, 1) (the fraction removed), got {amount!r}"
        )
        amount = 0.3
    targets = c.blocks(d.get("targets", "all"), f"{where}.targets", block_names)
    norm = d.get("norm", 1)
    if not _is_number(norm) or norm <= 0 or (math.isinf(norm) and norm < 0):
        c.problems.append(f"{where}.norm must be a positive number (1, 2, inf...), got {norm!r}")
        norm = 1
    physical = c.bool_(d, "physical", where, True)
    round_to = c.int_(d, "round_to", where, None, allow_none=True)
    if method == "unstructured" and ("physical" in d or "round_to" in d):
        c.problems.append(
            f"{where}: 'physical' and 'round_to' apply to method='structured' only; "
            "unstructured pruning zeroes single weights, which cannot be removed"
        )
    if "norm" in d and method == "unstructured":
        c.problems.append(f"{where}.norm applies to method='structured' only (unstructured is L1)")
    finetune = None
    fd = c.section(d.get("finetune"), f"{where}.finetune", _FINETUNE_KEYS)
    if fd is not None:
        iters = c.int_(fd, "iters", f"{where}.finetune", 300)
        lr = fd.get("lr")
        if lr is not None and (not _is_number(lr) or lr <= 0):
            c.problems.append(f"{where}.finetune.lr must be a positive number or None, got {lr!r}")
            lr = None
        schedule = c.choice(fd, "schedule", f"{where}.finetune", FINETUNE_SCHEDULES, "cosine")
        warmup = c.int_(fd, "warmup_iters", f"{where}.finetune", 0, minimum=0)
        if warmup >= iters:
            c.problems.append(
                f"{where}.finetune.warmup_iters ({warmup}) must be less than iters ({iters})"
            )
        distill = None
        dd = c.section(fd.get("distill"), f"{where}.finetune.distill", _DISTILL_KEYS)
        if dd is not None:
            weight = dd.get("weight", 1.0)
            if not _is_number(weight) or not weight > 0 or math.isinf(weight):
                c.problems.append(
                    f"{where}.finetune.distill.weight must be a positive number, got {weight!r}"
                )
                weight = 1.0
            tasks = c.choice(dd, "tasks", f"{where}.finetune.distill", DISTILL_TASKS, "all")
            distill = DistillConfig(float(weight), tasks)
        seed = c.int_(fd, "seed", f"{where}.finetune", 0, minimum=0)
        log_interval = c.int_(fd, "log_interval", f"{where}.finetune", 50)
        finetune = FinetuneConfig(
            iters, None if lr is None else float(lr), schedule, warmup, distill, seed, log_interval
        )
    return PruningConfig(method, float(amount), targets, float(norm), physical, round_to, finetune)


def _parse_quantization(raw, c: _Checker) -> QuantizationConfig | None:
    where = "deploy.quantization"
    d = c.section(raw, where, _QUANT_KEYS)
    if d is None:
        return None
    method = c.choice(d, "method", where, QUANTIZATION_METHODS, "static")
    observer = c.choice(d, "observer", where, OBSERVERS, "minmax")
    steps = c.int_(d, "calibration_steps", where, 50)
    per_channel = c.bool_(d, "per_channel", where, True)
    float_outputs = c.bool_(d, "float_outputs", where, True)
    pct = d.get("percentile", 99.999)
    if not _is_number(pct) or not 50 < pct <= 100:
        c.problems.append(f"{where}.percentile must be a number in (50, 100], got {pct!r}")
        pct = 99.999
    if "percentile" in d and observer != "percentile":
        c.problems.append(f"{where}.percentile is only used with observer='percentile'")
    return QuantizationConfig(method, observer, steps, per_channel, float_outputs, float(pct))


def _parse_img_size(v, where: str, c: _Checker) -> tuple[int, int]:
    size = (v, v) if _is_int(v) else v
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(_is_int(s) and s > 0 for s in size)
    ):
        c.problems.append(f"{where} must be an int or (H, W) of positive ints, got {v!r}")
        return (256, 256)
    if any(s % 32 for s in size):
        c.problems.append(
            f"{where}={v!r}: sizes must be multiples of 32 (the coarsest feature stride), "
            f"e.g. {tuple(max(32, round(s / 32) * 32) for s in size)}"
        )
    return (int(size[0]), int(size[1]))


def _parse_export(raw, c: _Checker, block_names) -> ExportConfig:
    where = "deploy.export"
    d = c.section(raw, where, _EXPORT_KEYS)
    if d is None:
        return ExportConfig()
    fmt = d.get("format", "onnx")
    fmts = [fmt] if isinstance(fmt, str) else fmt
    formats: list[str] = []
    if not isinstance(fmts, Sequence) or not fmts:
        c.problems.append(f"{where}.format must be one of {list(EXPORT_FORMATS)} or a list of them")
    else:
        for f in fmts:
            if f not in EXPORT_FORMATS:
                c.problems.append(
                    f"{where}.format: unsupported format {f!r}{did_you_mean(f, EXPORT_FORMATS)}; "
                    f"valid: {list(EXPORT_FORMATS)}"
                )
            elif f not in formats:
                formats.append(f)
    blocks = c.blocks(d.get("blocks"), f"{where}.blocks", block_names)
    img_size = _parse_img_size(d.get("img_size", 256), f"{where}.img_size", c)
    opset = c.int_(d, "opset", where, None, minimum=13, allow_none=True)
    tol = {}
    for key, default in (("atol", 1e-4), ("rtol", 1e-3)):
        v = d.get(key, default)
        if not _is_number(v) or v < 0:
            c.problems.append(f"{where}.{key} must be a number >= 0, got {v!r}")
            v = default
        tol[key] = float(v)
    return ExportConfig(tuple(formats) or ("onnx",), blocks, img_size, opset, **tol)


def _parse_latency(raw, c: _Checker) -> LatencyConfig:
    d = c.section(raw, "deploy.latency", _LATENCY_KEYS)
    if d is None:
        return LatencyConfig()
    return LatencyConfig(
        c.int_(d, "warmup", "deploy.latency", 10, minimum=0),
        c.int_(d, "runs", "deploy.latency", 50),
    )


def parse_deploy_config(deploy: Mapping | None, block_names: Sequence[str]) -> DeployConfig:
    """Validate a ``deploy`` dict against the model's block names; nothing is built.

    Args:
        deploy: the ``deploy`` dict of a deploy config (None or empty: export and measure fp32).
        block_names: the model's block names, in config order (``[b['name'] for b in
            cfg.model.blocks]``).

    Raises:
        DeployConfigError: listing every problem (section, key, value, valid choices).
    """
    problems: list[str] = []
    c = _Checker(problems)
    deploy = {} if deploy is None else deploy
    if not isinstance(deploy, Mapping):
        raise DeployConfigError([f"deploy must be a dict of sections {list(_SECTIONS)}"])
    for key in deploy:
        if key not in _SECTIONS:
            problems.append(
                f"deploy: unknown section {key!r}{did_you_mean(key, _SECTIONS)}; "
                f"valid sections: {list(_SECTIONS)}"
            )
    cfg = DeployConfig(
        pruning=_parse_pruning(deploy.get("pruning"), c, block_names),
        quantization=_parse_quantization(deploy.get("quantization"), c),
        export=_parse_export(deploy.get("export"), c, block_names),
        latency=_parse_latency(deploy.get("latency"), c),
    )
    if problems:
        raise DeployConfigError(problems)
    return cfg

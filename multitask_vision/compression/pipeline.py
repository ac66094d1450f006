"""``run_deploy``: fp32 -> pruned -> int8 -> pruned + int8, each exported, verified and measured.

Stages (each optional but fp32):

1. ``fp32``: the model as loaded, exported (ONNX, and TorchScript if asked), checked against
   eager PyTorch (max abs difference; a failure stops everything).
2. ``pruned``: a copy pruned as ``deploy.pruning`` says, optionally fine-tuned, exported and
   checked the same way; its checkpoint is saved as ``pruned.pth``.
3. ``int8``: the fp32 ONNX model quantized by ONNX Runtime (QDQ), calibrated on real images
   (or with QAT's learned ranges); judged by the task metrics.
4. ``pruned_int8``: the same on the pruned model.

For each: parameters, MACs, file size, ONNX Runtime latency (batch 1, one thread and all
threads, median after warm-up) and the task metrics (``evaluate``), in ``report.json`` and a
printed table.

Everything is written into a temporary folder next to ``output_dir`` and moved into place only
when every stage succeeded: a failure leaves nothing half-written.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import DeployConfig, FinetuneConfig
from .decode import io_spec
from .export import (
    ExportModule,
    export_onnx,
    export_torchscript,
    file_size,
    verify_onnx,
    verify_torchscript,
)
from .latency import cpu_info, measure_latencies, thread_settings
from .pruning import (
    find_output_layers,
    mask_structured,
    mask_unstructured,
    prunable_layers,
    prune_channels,
    remove_masks,
    sparsity,
)
from .quantization import calibration_images, quantize_onnx
from .report import StageReport, count_macs, count_params, format_table, write_report
from .runtime import ExportedPredictor

__all__ = ["DeployResult", "ExportParityError", "run_deploy"]

Evaluate = Callable[[Callable[[Mapping], list]], Mapping[str, float]]
Finetune = Callable[[nn.Module, FinetuneConfig, "nn.Module | None"], None]


class ExportParityError(RuntimeError):
    """An fp32 export whose outputs differ from eager PyTorch beyond the tolerance."""


@dataclass
class DeployResult:
    """Attributes:
    output_dir: where the artifacts are.
    stages: the measured stages.
    report: the content of ``report.json``.
    table: the printed table.
    pruned_model: the pruned PyTorch model (None without pruning).
    """

    output_dir: str
    stages: list[StageReport]
    report: dict
    table: str
    pruned_model: nn.Module | None = None


def _check_output_dir(output_dir: str, overwrite: bool) -> None:
    if os.path.isfile(output_dir):
        raise FileExistsError(f"output {output_dir!r} is a file, not a folder")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(
            f"output folder {output_dir!r} is not empty; choose another --output or pass "
            "--overwrite to replace it"
        )


def _move_into_place(tmp: str, output_dir: str) -> None:
    if os.path.isdir(output_dir):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(output_dir) or ".")
        os.replace(output_dir, os.path.join(old, "x"))
        os.replace(tmp, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, output_dir)


class _Stager:
    """Exports, verifies and measures one float model; quantizes an exported file."""

    def __init__(self, cfg: DeployConfig, out: str, example, parity_inputs, evaluate, log):
        self.cfg = cfg
        self.out = out
        self.example = example
        self.parity_inputs = parity_inputs
        self.evaluate = evaluate
        self.log = log
        self.threads = thread_settings()

    def measure_latency(self, stages: list[StageReport]) -> None:
        """Fill every stage's ``latency_ms``, measured interleaved across stages."""
        lat = self.cfg.latency
        paths = [os.path.join(self.out, s.artifact) for s in stages]
        t0 = time.time()
        image = self.parity_inputs[0].numpy()
        measured = measure_latencies(paths, self.threads, lat.warmup, lat.runs, image)
        for s, p in zip(stages, paths, strict=True):
            s.latency_ms = measured[p]
        self.log(f"[deploy] latency of {len(stages)} models measured in {time.time() - t0:.1f} s")

    def _metrics(self, model, path: str, structure) -> dict[str, float]:
        if self.evaluate is None:
            return {}
        t0 = time.time()
        predictor = ExportedPredictor(model, path, structure, self.cfg.export.img_size)
        metrics = dict(self.evaluate(predictor))
        self.log(f"[deploy]   metrics of {os.path.basename(path)} in {time.time() - t0:.1f} s")
        return metrics

    def float_stage(self, name: str, model: nn.Module, details: dict) -> tuple[StageReport, Any]:
        ecfg = self.cfg.export
        module = ExportModule(model, ecfg.blocks).eval()
        module.trace_structure(self.example)
        path = os.path.join(self.out, f"{name}.onnx")
        t0 = time.time()
        export_onnx(module, path, self.example, ecfg.opset)
        parity = verify_onnx(path, module, self.parity_inputs, ecfg.atol, ecfg.rtol)
        self.log(
            f"[deploy] {name}: exported {os.path.basename(path)} in {time.time() - t0:.1f} s; "
            f"ONNX Runtime vs eager max|diff| = {parity.worst:.3g} "
            f"({'ok' if parity.passed else 'FAILED'})"
        )
        if not parity.passed:
            raise ExportParityError(
                f"{name}: the ONNX export differs from eager PyTorch beyond atol={ecfg.atol} + "
                f"rtol={ecfg.rtol} * max|eager|: " + "; ".join(parity.failures)
            )
        parity_info = {"onnx": parity.to_dict()}
        if "torchscript" in ecfg.formats:
            ts_path = os.path.join(self.out, f"{name}.torchscript.pt")
            export_torchscript(module, ts_path, self.example)
            ts = verify_torchscript(ts_path, module, self.parity_inputs, ecfg.atol, ecfg.rtol)
            self.log(
                f"[deploy] {name}: TorchScript {os.path.basename(ts_path)} (torch.jit.trace, "
                f"deprecated in PyTorch but kept): max|diff| = {ts.worst:.3g}"
            )
            if not ts.passed:
                raise ExportParityError(
                    f"{name}: the TorchScript export differs from eager: " + "; ".join(ts.failures)
                )
            parity_info["torchscript"] = ts.to_dict()
            details["torchscript"] = os.path.basename(ts_path)
        report = StageReport(
            name=name,
            artifact=os.path.basename(path),
            params=count_params(module),
            macs=count_macs(module, self.example),
            file_bytes=file_size(path),
            metrics=self._metrics(model, path, module.structure),
            parity=parity_info,
            details=details,
        )
        return report, module

    def int8_stage(
        self, name: str, model, module: ExportModule, fp32: StageReport, images, output_layers,
        overrides,
    ) -> StageReport:  # fmt: skip
        qcfg = self.cfg.quantization
        src = os.path.join(self.out, fp32.artifact)
        path = os.path.join(self.out, f"{name}.onnx")
        t0 = time.time()
        summary = quantize_onnx(src, path, images, qcfg, output_layers, overrides)
        self.log(
            f"[deploy] {name}: quantized in {time.time() - t0:.1f} s on "
            f"{summary.calibration_images} calibration images ({qcfg.observer}); ONNX Runtime "
            f"runs {summary.int8_convs} convolutions in int8, {summary.float_convs} in float"
        )
        # Information only: int8 is judged by the task metrics, not by a tolerance.
        parity = verify_onnx(path, module, self.parity_inputs, float("inf"), 0.0)
        return StageReport(
            name=name,
            artifact=os.path.basename(path),
            params=fp32.params,
            macs=fp32.macs,
            file_bytes=file_size(path),
            metrics=self._metrics(model, path, module.structure),
            parity={
                "onnx_vs_fp32_eager": dict(
                    max_abs_diff=parity.worst,
                    per_output=parity.max_abs_diff,
                    note="int8 is judged by the task metrics, not by a tolerance",
                )
            },
            details={"quantization": summary.to_dict(), "method": qcfg.method},
        )


def _prune(
    model: nn.Module, cfg: DeployConfig, example, finetune: Finetune | None, teacher, log
) -> dict:
    pcfg = cfg.pruning
    details: dict[str, Any] = dict(
        method=pcfg.method, amount=pcfg.amount, targets=list(pcfg.targets or ["all"]),
        physical=pcfg.method == "structured" and pcfg.physical,
    )  # fmt: skip
    t0 = time.time()
    outputs = find_output_layers(model, example)
    if details["physical"]:
        res = prune_channels(model, example, pcfg.amount, pcfg.targets, pcfg.norm, pcfg.round_to)
        details.update(params_before=res.params_before, params_after=res.params_after,
                       norm=pcfg.norm)  # fmt: skip
        log(
            f"[deploy] pruned: removed {pcfg.amount:.0%} of the channels of "
            f"{len(res.channels)} layers: {res.params_before / 1e6:.3f}M -> "
            f"{res.params_after / 1e6:.3f}M parameters ({time.time() - t0:.1f} s)"
        )
        layers = None
    else:
        layers = prunable_layers(model, pcfg.targets, outputs)
        if pcfg.method == "unstructured":
            mask_unstructured(layers, pcfg.amount)
        else:
            mask_structured(layers, pcfg.amount, pcfg.norm)
            details["norm"] = pcfg.norm
        log(
            f"[deploy] pruned: {pcfg.method} masks on {len(layers)} layers "
            f"(torch.nn.utils.prune); shapes unchanged"
        )
    details["output_layers_kept"] = sorted(outputs)
    if pcfg.finetune is not None:
        t0 = time.time()
        finetune(model, pcfg.finetune, teacher)
        details["finetune"] = asdict(pcfg.finetune)
        log(f"[deploy] pruned: fine-tuned {pcfg.finetune.iters} iterations in "
            f"{time.time() - t0:.1f} s")  # fmt: skip
    model.eval()
    if layers is not None:
        remove_masks(model)
        details["weight_sparsity"] = sparsity(layers.values())
    return details


def run_deploy(
    model: nn.Module,
    cfg: DeployConfig,
    output_dir: str,
    calibration: Iterable[Mapping] | None = None,
    evaluate: Evaluate | None = None,
    finetune: Finetune | None = None,
    qat_overrides: Mapping[str, tuple[float, int]] | None = None,
    overwrite: bool = False,
    extra_report: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> DeployResult:
    """Run every configured stage and write the artifacts and the report to ``output_dir``.

    Args:
        model: a ``MultiTaskModel`` with its weights (float; a QAT checkpoint is converted by
            ``load_deploy_checkpoint`` first). It is not modified; pruning works on a copy.
        cfg: the parsed deploy config (``parse_deploy_config``).
        output_dir: the folder to create (replaced only with ``overwrite``).
        calibration: preprocessed batches (``dict(inputs=Tensor[B, 3, H, W], data_samples)``)
            of real images; needed for quantization, also used as parity inputs.
        evaluate: ``evaluate(predict_fn) -> {metric: value}`` on the validation split, or None
            (no metrics).
        finetune: ``finetune(model, FinetuneConfig, teacher)`` (teacher: the unpruned model),
            needed when ``pruning.finetune`` is set.
        qat_overrides: conv input (scale, zero point) learned by QAT, for the int8 stage.
        overwrite: replace a non-empty ``output_dir``.
        extra_report: more entries for ``report.json`` (config paths, checkpoint...).
        log: where progress lines go.

    Raises:
        ValueError: a missing ingredient (calibration data, fine-tune function).
        FileExistsError: ``output_dir`` is not empty and ``overwrite`` is False.
        ExportParityError: an fp32 export that does not match eager PyTorch.
    """
    if cfg.quantization is not None and calibration is None:
        raise ValueError("deploy.quantization needs calibration images: pass `calibration`")
    if cfg.pruning is not None and cfg.pruning.finetune is not None and finetune is None:
        raise ValueError("deploy.pruning.finetune is set but no `finetune` function was given")
    output_dir = os.path.abspath(output_dir)
    _check_output_dir(output_dir, overwrite)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=parent)
    try:
        result = _run(model, cfg, tmp, calibration, evaluate, finetune, qat_overrides, log)
        stages, pruned_model = result
        host = cpu_info()
        _log_host(host, stages, log)
        table = format_table(stages)
        report = write_report(
            os.path.join(tmp, "report.json"),
            stages,
            dict(
                deploy_config=_jsonable(asdict(cfg)),
                input_size=list(cfg.export.img_size),
                threads=[str(t) for t in thread_settings()],
                host=host,
                **(extra_report or {}),
            ),
        )
        _move_into_place(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log("[deploy] report (ratios to fp32 in parentheses):\n" + table)
    log(f"[deploy] wrote {output_dir}")
    return DeployResult(output_dir, stages, report, table, pruned_model)


def _log_host(host: dict, stages: list[StageReport], log) -> None:
    """Say what the latencies were measured on, and when int8 was timed where it cannot pay."""
    dot = host["int8_dot"]
    log(
        f"[deploy] measured on: {host['cpu']} ({host['machine']}, {host['threads']} threads, "
        f"onnxruntime {host['onnxruntime']}); int8 dot-product instructions: "
        + ("unknown" if dot is None else ", ".join(dot) or "none")
    )
    if dot == [] and any(s.name.endswith("int8") for s in stages):
        log(
            "[deploy] note: without int8 dot-product instructions (x86 VNNI / AMX, ARM "
            "dot-product) ONNX Runtime's int8 convolutions run about as fast as fp32 ones; "
            "the int8 latency here says little about a chip that has them: measure there"
        )


def _jsonable(obj):
    return json.loads(
        json.dumps(obj, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    )


def _run(model, cfg: DeployConfig, out, calibration, evaluate, finetune, qat_overrides, log):
    size = cfg.export.img_size
    model = model.eval()
    steps = cfg.quantization.calibration_steps if cfg.quantization else 2
    images = calibration_images(calibration, size, max(steps, 2)) if calibration else []
    g = torch.Generator().manual_seed(0)
    example = torch.randn(1, 3, *size, generator=g)
    parity_inputs = [torch.from_numpy(x) for x in images[:2]] + [example]
    stager = _Stager(cfg, out, example, parity_inputs, evaluate, log)
    stages: list[StageReport] = []

    fp32, module = stager.float_stage("fp32", model, {})
    stages.append(fp32)
    with open(os.path.join(out, "model_io.json"), "w") as f:
        json.dump(io_spec(model, module, size), f, indent=1)
    output_layers = list(find_output_layers(model, example)) if cfg.quantization else []

    pruned_model = pruned = pruned_module = None
    if cfg.pruning is not None:
        from .checkpoint import save_checkpoint

        pruned_model = copy.deepcopy(model)
        details = _prune(pruned_model, cfg, example, finetune, model, log)
        save_checkpoint(pruned_model, os.path.join(out, "pruned.pth"), {"pruning": details})
        pruned, pruned_module = stager.float_stage("pruned", pruned_model, details)
        stages.append(pruned)

    if cfg.quantization is not None:
        calib = [np.ascontiguousarray(x) for x in images[:steps]]
        stages.append(
            stager.int8_stage("int8", model, module, fp32, calib, output_layers, qat_overrides)
        )
        if pruned is not None:
            # QAT ranges were learned on the unpruned model: the pruned one is calibrated.
            stages.append(
                stager.int8_stage(
                    "pruned_int8", pruned_model, pruned_module, pruned, calib, output_layers, None
                )
            )
    stager.measure_latency(stages)
    return stages, pruned_model

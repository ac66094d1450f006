"""Export the block graph (the whole multi-task model or chosen blocks) and check it against eager.

The exported function is ``image -> flat tuple of tensors``:

- input ``image``: Tensor[B, 3, H, W] float32, normalised as the data preprocessor does
  (``(x - mean) / std``, its channel order, RGB by default), images top-left in the padded
  canvas (padding 0);
- outputs: the raw outputs of the exported blocks, flattened and named. A head is named after
  its task: ``segmentation`` (logits Tensor[B, num_classes, h, w]), ``depth`` (metres
  Tensor[B, 1, h, w]), and a dense detection head gives one output per part and level:
  ``detection.cls_scores.<l>`` Tensor[B, num_classes, h_l, w_l] (logits),
  ``detection.bbox_preds.<l>`` Tensor[B, 4, h_l, w_l] (l, t, r, b distances in input pixels),
  ``detection.centernesses.<l>`` Tensor[B, 1, h_l, w_l] (logits). Other blocks give
  ``<block>.<key or index>`` (``backbone.layer4``, ``neck.0``).

Detection post-processing (score threshold, top-k, NMS, rescaling) is NOT in the graph: see
``decode.py`` for the reference decoder that consumes these outputs.

ONNX goes through ``torch.onnx.export(..., dynamo=True)`` (the default exporter of torch 2.14,
which needs ``onnxscript``), with the weights inside the file. TorchScript goes through
``torch.jit.trace``: deprecated in current PyTorch (it warns), kept because users ask for it.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .decode import DENSE_DETECTION_PARTS

__all__ = [
    "DENSE_DETECTION_PARTS",
    "ExportModule",
    "ParityReport",
    "export_onnx",
    "export_torchscript",
    "file_size",
    "flatten_outputs",
    "unflatten_outputs",
    "verify_onnx",
    "verify_torchscript",
]

Structure = Any  # int (leaf index) | list[Structure] | dict[str, Structure]


def flatten_outputs(value: Any, leaves: list[torch.Tensor] | None = None) -> tuple[list, Structure]:
    """Nested dict / tuple / list of tensors -> (tensors in order, JSON-able structure).

    The structure has the same nesting, with each tensor replaced by its index in the list.
    """
    leaves = [] if leaves is None else leaves
    if isinstance(value, torch.Tensor):
        leaves.append(value)
        return leaves, len(leaves) - 1
    if isinstance(value, Mapping):
        return leaves, {str(k): flatten_outputs(v, leaves)[1] for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return leaves, [flatten_outputs(v, leaves)[1] for v in value]
    raise TypeError(f"cannot export a block output of type {type(value).__name__}")


def unflatten_outputs(structure: Structure, leaves: Sequence[Any]) -> Any:
    """Inverse of :func:`flatten_outputs` (lists come back as tuples, as blocks return them)."""
    if isinstance(structure, int):
        return leaves[structure]
    if isinstance(structure, Mapping):
        return {k: unflatten_outputs(v, leaves) for k, v in structure.items()}
    return tuple(unflatten_outputs(v, leaves) for v in structure)


def _is_dense_detection(structure: Structure) -> bool:
    return (
        isinstance(structure, list)
        and len(structure) in DENSE_DETECTION_PARTS
        and all(isinstance(s, list) and s and all(isinstance(i, int) for i in s) for s in structure)
        and len({len(s) for s in structure}) == 1
    )


def _names(base: str, structure: Structure, out: dict[int, str]) -> None:
    if isinstance(structure, int):
        out[structure] = base
    elif isinstance(structure, Mapping):
        for k, v in structure.items():
            _names(f"{base}.{k}", v, out)
    else:
        for i, v in enumerate(structure):
            _names(f"{base}.{i}", v, out)


class ExportModule(nn.Module):
    """The exported function: ``image -> flat tuple`` of the outputs of ``targets``.

    Shares the model's block modules (no copy). Call :meth:`trace_structure` once (it runs the
    graph) to get ``structure`` and ``output_names``.

    Args:
        model: a ``MultiTaskModel`` (its ``blocks``, ``heads``, ``input_name``).
        targets: blocks whose outputs are exported (ancestors run inside); None = every head.
    """

    def __init__(self, model: nn.Module, targets: Sequence[str] | None = None):
        super().__init__()
        self.blocks = model.blocks
        self.input_name = model.input_name
        self.targets = tuple(targets) if targets else tuple(model.heads.values())
        self.tasks = {head: task for task, head in model.heads.items()}
        self.structure: dict[str, Structure] | None = None
        self.output_names: list[str] | None = None

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.blocks({self.input_name: image}, self.targets)
        leaves, _ = flatten_outputs([outs[t] for t in self.targets])
        return tuple(leaves)

    @torch.no_grad()
    def trace_structure(self, image: torch.Tensor) -> dict[str, Structure]:
        """Run once; set ``structure`` ({target: nested indices}) and ``output_names``."""
        outs = self.blocks({self.input_name: image}, self.targets)
        _, structure = flatten_outputs([outs[t] for t in self.targets])
        self.structure = dict(zip(self.targets, structure, strict=True))
        names: dict[int, str] = {}
        for target, s in self.structure.items():
            base = self.tasks.get(target, target)
            if target in self.tasks and _is_dense_detection(s):
                for part, levels in zip(DENSE_DETECTION_PARTS[len(s)], s, strict=True):
                    _names(f"{base}.{part}", levels, names)
            else:
                _names(base, s, names)
        self.output_names = [names[i] for i in range(len(names))]
        return self.structure


@contextlib.contextmanager
def _quiet_export():
    """Silence the exporters' progress prints and the tracer / deprecation chatter."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def export_onnx(module: ExportModule, path: str, example: torch.Tensor, opset: int | None) -> None:
    """Export ``module`` at the example's shape (static) to one self-contained ONNX file."""
    if module.output_names is None:
        module.trace_structure(example)
    module.eval()
    with _quiet_export():
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=[module.input_name],
            output_names=module.output_names,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def export_torchscript(module: ExportModule, path: str, example: torch.Tensor) -> None:
    """Trace ``module`` with ``torch.jit.trace`` (deprecated in torch, kept on request)."""
    if module.output_names is None:
        module.trace_structure(example)
    module.eval()
    with _quiet_export(), torch.no_grad():
        traced = torch.jit.trace(module, (example,), check_trace=False, strict=False)
    traced.save(path)


@dataclass
class ParityReport:
    """Exported vs eager on the same inputs.

    Attributes:
        max_abs_diff: per output name, max |exported - eager| over all inputs.
        max_abs_ref: per output name, max |eager|.
        passed: every output within ``atol + rtol * max_abs_ref``.
    """

    max_abs_diff: dict[str, float] = field(default_factory=dict)
    max_abs_ref: dict[str, float] = field(default_factory=dict)
    atol: float = 0.0
    rtol: float = 0.0

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)

    @property
    def failures(self) -> list[str]:
        return [
            f"{k}: max|diff| {d:.3g} > {self.atol:g} + {self.rtol:g} * {self.max_abs_ref[k]:.3g}"
            for k, d in self.max_abs_diff.items()
            if not d <= self.atol + self.rtol * self.max_abs_ref[k]
        ]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return dict(max_abs_diff=self.worst, passed=self.passed, per_output=self.max_abs_diff)


def _compare(
    names: Sequence[str],
    run_exported,
    module: ExportModule,
    inputs: Sequence[torch.Tensor],
    atol: float,
    rtol: float,
) -> ParityReport:
    report = ParityReport(atol=atol, rtol=rtol)
    module.eval()
    for x in inputs:
        with torch.no_grad():
            ref = [r.float().numpy() for r in module(x)]
        got = run_exported(x)
        if len(got) != len(ref):
            raise RuntimeError(f"exported model gave {len(got)} outputs, eager {len(ref)}")
        for name, g, r in zip(names, got, ref, strict=True):
            if g.shape != r.shape:
                raise RuntimeError(f"exported output {name!r} has shape {g.shape}, eager {r.shape}")
            d = float(np.abs(g.astype(np.float64) - r).max()) if r.size else 0.0
            report.max_abs_diff[name] = max(report.max_abs_diff.get(name, 0.0), d)
            m = float(np.abs(r).max()) if r.size else 0.0
            report.max_abs_ref[name] = max(report.max_abs_ref.get(name, 0.0), m)
    return report


def verify_onnx(
    path: str,
    module: ExportModule,
    inputs: Sequence[torch.Tensor],
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> ParityReport:
    """Run the ONNX file in ONNX Runtime and the eager module on ``inputs``; compare outputs."""
    from .runtime import make_session

    session = make_session(path)
    names = [o.name for o in session.get_outputs()]

    def run(x: torch.Tensor) -> list[np.ndarray]:
        return session.run(None, {module.input_name: x.numpy()})

    return _compare(names, run, module, inputs, atol, rtol)


def verify_torchscript(
    path: str,
    module: ExportModule,
    inputs: Sequence[torch.Tensor],
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> ParityReport:
    """``torch.jit.load`` the file and compare with the eager module on ``inputs``."""
    loaded = torch.jit.load(path, map_location="cpu")
    loaded.eval()

    def run(x: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.float().numpy() for o in loaded(x)]

    return _compare(module.output_names, run, module, inputs, atol, rtol)


def file_size(path: str) -> int:
    """Bytes on disk, external data files included."""
    size = os.path.getsize(path)
    data = path + ".data"
    return size + (os.path.getsize(data) if os.path.exists(data) else 0)

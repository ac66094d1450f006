"""Running exported models: ONNX Runtime sessions and ``predict_fn``s over exported files.

A ``predict_fn`` maps a preprocessed batch (``dict(inputs=Tensor[B, 3, H, W], data_samples=
[...])``, the data preprocessor's output) to the data samples with ``pred_*`` fields in
ORIGINAL image pixels, exactly as ``model(..., mode='predict')`` writes them; evaluation code
takes any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model import select_output
from .export import unflatten_outputs

__all__ = [
    "ExportedPredictor",
    "eager_predict_fn",
    "make_session",
    "pad_to_size",
    "run_blocks",
]


def make_session(path: str, threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimization on.

    Args:
        path: the .onnx file.
        threads: intra-op threads; None = ONNX Runtime's default (all physical cores).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def pad_to_size(inputs: torch.Tensor, size: Sequence[int], data_samples=None) -> torch.Tensor:
    """Pad Tensor[B, 3, h, w] at the bottom/right with 0 to ``size`` (H, W), as the data
    preprocessor pads (images stay top-left); update the samples' ``batch_input_shape`` and
    ``pad_shape``.

    Raises:
        ValueError: a batch larger than ``size`` (the exported input is static).
    """
    h, w = inputs.shape[-2:]
    H, W = size
    if h > H or w > W:
        raise ValueError(
            f"a batch of {h}x{w} images does not fit the exported input {H}x{W}: set "
            f"deploy.export.img_size to at least ({-(-h // 32) * 32}, {-(-w // 32) * 32}) or "
            "make the test pipeline's Resize scale smaller"
        )
    if (h, w) != (H, W):
        inputs = F.pad(inputs, (0, W - w, 0, H - h), value=0.0)
    for s in data_samples or ():
        s.set_metainfo(dict(batch_input_shape=(H, W), pad_shape=(H, W)))
    return inputs


def run_blocks(model: nn.Module, values: dict[str, Any], targets: Sequence[str]) -> dict[str, Any]:
    """Run, eagerly, the blocks ``targets`` need that are not already in ``values``.

    Args:
        model: a ``MultiTaskModel``.
        values: graph inputs and known block outputs, e.g. ``{'image': x, 'neck': (...)}``.
        targets: block names wanted.

    Returns:
        ``values`` completed with every block computed.
    """
    graph = model.blocks
    for name in graph.plan(targets):
        if name in values:
            continue
        args = [
            select_output(values[src], path, f"{src}.{'.'.join(path)}") if path else values[src]
            for src, path in graph.specs[name].input_refs()
        ]
        values[name] = model.adapters[name](graph[name], *args)
    return values


def eager_predict_fn(model: nn.Module):
    """``predict_fn`` running the PyTorch model (``mode='predict'``)."""

    @torch.no_grad()
    def predict(batch: Mapping) -> list:
        model.eval()
        return model(batch["inputs"], batch["data_samples"], mode="predict")

    return predict


class ExportedPredictor:
    """``predict_fn`` over an exported ONNX file.

    ONNX Runtime computes the exported blocks at the exported size (each image padded to it);
    blocks outside the export (heads of a ``blocks=['backbone']`` export) run eagerly on those
    outputs; then each head's own ``predict`` (mmdet ``predict_by_feat`` with NMS, mmseg
    post-processing, native heads' ``predict``) writes the predictions.

    Args:
        model: the ``MultiTaskModel`` the file was exported from (same weights and shapes).
        path: the .onnx file (fp32 or int8 QDQ).
        structure: ``ExportModule.structure`` of the export: {target block: nested indices}.
        img_size: (H, W) of the exported input.
        threads: ONNX Runtime intra-op threads (None = default).
    """

    def __init__(
        self,
        model: nn.Module,
        path: str,
        structure: Mapping[str, Any],
        img_size: Sequence[int],
        threads: int | None = None,
    ):
        self.model = model
        self.session = make_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.batch = self.session.get_inputs()[0].shape[0]
        self.structure = dict(structure)
        self.img_size = tuple(img_size)

    def raw_outputs(self, inputs: torch.Tensor) -> dict[str, Any]:
        """Tensor[B, 3, H, W] at the exported size -> {target: nested outputs as tensors}."""
        step = self.batch if isinstance(self.batch, int) else inputs.shape[0]
        chunks = [
            self.session.run(None, {self.input_name: inputs[i : i + step].numpy()})
            for i in range(0, inputs.shape[0], step)
        ]
        leaves = [torch.from_numpy(np.concatenate(parts)) for parts in zip(*chunks, strict=True)]
        return {t: unflatten_outputs(s, leaves) for t, s in self.structure.items()}

    @torch.no_grad()
    def __call__(self, batch: Mapping) -> list:
        samples = batch["data_samples"]
        inputs = pad_to_size(batch["inputs"].float().cpu(), self.img_size, samples)
        model = self.model.eval()
        heads = list(model.heads.values())
        values = {model.input_name: inputs, **self.raw_outputs(inputs)}
        values = run_blocks(model, values, heads)
        for head in heads:
            model.adapters[head].predict(model.blocks[head], values[head], samples)
        return samples

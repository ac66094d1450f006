"""Post-training static int8 through ONNX Runtime's quantizer (QDQ, per-channel weights).

Why this path (measured on torch 2.14, see docs/deployment.md): ONNX Runtime's
``quantize_static`` turns every convolution of our models into an int8 ``QLinearConv`` at run
time, while PyTorch's PT2E flow (now ``torchao.quantization.pt2e``) exported to ONNX left about
half of them in float, and ``torch.ao.quantization`` eager / FX modes are deprecated. So the
int8 artifact is an ONNX QDQ model: QuantizeLinear / DequantizeLinear pairs with uint8
activations (asymmetric, per tensor) and int8 weights (symmetric, per output channel), which
ONNX Runtime fuses into integer kernels.

Calibration feeds real dataset images, preprocessed exactly as in evaluation, one per step.
``observer`` names follow PyTorch's observers: ``'minmax'`` (``MinMaxObserver``: running min /
max over all calibration images), ``'moving_average_minmax'`` (``MovingAverageMinMaxObserver``,
constant 0.01), ``'percentile'`` (clip to a percentile of the absolute values; a histogram
method) and ``'entropy'`` (KL-divergence threshold, TensorRT's method, on histograms).

QAT checkpoints (see ``qat.py``) go through the same quantizer, with the scales and zero points
their fake-quant observers learned imposed on the convolution inputs (``TensorQuantOverrides``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .config import QuantizationConfig
from .runtime import pad_to_size

__all__ = [
    "QuantizationSummary",
    "calibration_images",
    "conv_nodes_by_module",
    "nodes_after_output_layers",
    "op_counts",
    "quantize_onnx",
]


def calibration_images(
    batches: Iterable[Mapping], img_size: Sequence[int], steps: int
) -> list[np.ndarray]:
    """Up to ``steps`` images Array[1, 3, H, W] float32 from preprocessed batches, each padded
    to the exported size as in evaluation.

    Raises:
        ValueError: no image at all.
    """
    images: list[np.ndarray] = []
    for batch in batches:
        inputs = pad_to_size(batch["inputs"].float().cpu(), img_size)
        for x in inputs:
            images.append(x[None].numpy().astype(np.float32))
            if len(images) >= steps:
                return images
    if not images:
        raise ValueError("calibration got no images: the calibration data loader is empty")
    return images


class _Reader:
    """ONNX Runtime ``CalibrationDataReader`` over a list of images."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray]):
        self.input_name = input_name
        self.images = list(images)
        self.i = 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return {self.input_name: self.images[self.i - 1]}

    def rewind(self):
        self.i = 0


def conv_nodes_by_module(onnx_model) -> dict[str, list]:
    """``{'blocks.<block>.<path>': [Conv nodes]}``: Conv nodes found by their weight initializer,
    which the dynamo exporter names after the parameter (``blocks.<block>.<path>.weight``)."""
    inits = {i.name for i in onnx_model.graph.initializer}
    out: dict[str, list] = {}
    for node in onnx_model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        name = node.input[1]
        if name.startswith("blocks.") and name.endswith(".weight"):
            out.setdefault(name[: -len(".weight")], []).append(node)
    return out


def nodes_after_output_layers(onnx_model, output_layers: Iterable[str]) -> list[str]:
    """Names of the nodes from each output layer's Conv to the graph outputs (inclusive)."""
    convs = conv_nodes_by_module(onnx_model)
    consumers: dict[str, list] = {}
    for node in onnx_model.graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    todo = [n for layer in output_layers for n in convs.get(layer, [])]
    seen: dict[str, None] = {}
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen[node.name] = None
        for t in node.output:
            todo.extend(consumers.get(t, []))
    return list(seen)


def op_counts(path: str) -> Counter:
    """Operator counts of the model as ONNX Runtime runs it (after its graph optimizations,
    which fuse QDQ patterns into ``QLinearConv`` etc.)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        model = onnx.load(so.optimized_model_filepath)
    return Counter(n.op_type for n in model.graph.node)


@dataclass
class QuantizationSummary:
    """Attributes:
    int8_convs: convolutions ONNX Runtime runs as ``QLinearConv``.
    float_convs: convolutions left in float (``Conv`` / ``FusedConv``).
    excluded_nodes: nodes kept in float on purpose (``float_outputs``).
    calibration_images: images used for calibration.
    overrides: tensors whose scale / zero point came from QAT.
    """

    int8_convs: int
    float_convs: int
    excluded_nodes: int
    calibration_images: int
    overrides: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@contextlib.contextmanager
def _quiet_root_logger():
    # The quantizer logs per-tensor warnings (e.g. per-channel axes of GroupNorm scales) on the
    # root logger; they are expected and not actionable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx(
    fp32_path: str,
    int8_path: str,
    images: Sequence[np.ndarray],
    cfg: QuantizationConfig,
    output_layers: Iterable[str] = (),
    overrides: Mapping[str, tuple[float, int]] | None = None,
) -> QuantizationSummary:
    """Quantize an fp32 ONNX file to an int8 QDQ file, calibrated on ``images``.

    Args:
        fp32_path: the exported fp32 model.
        int8_path: where the int8 model goes.
        images: calibration inputs, Array[1, 3, H, W] float32 each.
        cfg: the quantization section of the deploy config.
        output_layers: module names of the heads' output layers (kept float with what follows
            them when ``cfg.float_outputs``).
        overrides: ``{'blocks.<block>.<conv>': (scale, zero_point)}`` of conv inputs (uint8),
            e.g. learned by QAT; imposed on the input tensor of those convs.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(fp32_path)
    input_name = model.graph.input[0].name
    exclude = nodes_after_output_layers(model, output_layers) if cfg.float_outputs else []
    extra: dict = {}
    method = {
        "minmax": CalibrationMethod.MinMax,
        "moving_average_minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[cfg.observer]
    if cfg.observer == "moving_average_minmax":
        extra.update(CalibMovingAverage=True, CalibMovingAverageConstant=0.01)
    if cfg.observer == "percentile":
        extra.update(CalibPercentile=cfg.percentile)
    tensor_overrides = {}
    if overrides:
        for module, nodes in conv_nodes_by_module(model).items():
            if module in overrides:
                scale, zp = overrides[module]
                for node in nodes:
                    tensor_overrides.setdefault(
                        node.input[0],
                        [
                            {
                                "scale": np.array(scale, np.float32),
                                "zero_point": np.array(zp, np.uint8),
                            }
                        ],
                    )
        extra["TensorQuantOverrides"] = tensor_overrides
    with _quiet_root_logger():
        quantize_static(
            fp32_path,
            int8_path,
            _Reader(input_name, images),
            quant_format=QuantFormat.QDQ,
            per_channel=cfg.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=exclude,
            extra_options=extra,
        )
    counts = op_counts(int8_path)
    return QuantizationSummary(
        int8_convs=counts["QLinearConv"],
        float_convs=counts["Conv"] + counts["FusedConv"],
        excluded_nodes=len(exclude),
        calibration_images=len(images),
        overrides=len(tensor_overrides),
    )

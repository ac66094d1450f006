"""Static int8 through ONNX Runtime: convolutions really run as QLinearConv, the file shrinks,
calibration reads real (preprocessed) images, and QAT ranges are imposed on conv inputs."""

import os

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from multitask_vision.compression.config import QuantizationConfig
from multitask_vision.compression.export import ExportModule, export_onnx, verify_onnx
from multitask_vision.compression.pruning import find_output_layers
from multitask_vision.compression.quantization import (
    calibration_images,
    conv_nodes_by_module,
    op_counts,
    quantize_onnx,
)
from multitask_vision.compression.testing import build_model, synthetic_batches

SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_model()
    batches = synthetic_batches(model, n=3, batch_size=2, size=SIZE)
    module = ExportModule(model).eval()
    images = calibration_images(batches, (SIZE, SIZE), steps=5)
    path = str(tmp_path_factory.mktemp("q") / "fp32.onnx")
    export_onnx(module, path, torch.from_numpy(images[0]), None)
    return model, module, path, images, find_output_layers(model, torch.from_numpy(images[0]))


def test_calibration_images_are_padded_preprocessed_images():
    model = build_model()
    batches = synthetic_batches(model, n=2, batch_size=2, size=SIZE)
    images = calibration_images(batches, (96, 64), steps=3)
    assert len(images) == 3 and images[0].shape == (1, 3, 96, 64)
    assert images[0].dtype == np.float32
    np.testing.assert_array_equal(images[1][0, :, :SIZE], batches[0]["inputs"][1].numpy())
    assert not images[0][0, :, SIZE:].any()  # padding 0, as the preprocessor pads
    with pytest.raises(ValueError, match=r"64x64 images does not fit the exported input 32x32: set "
                       r"deploy.export.img_size to at least \(64, 64\)"):  # fmt: skip
        calibration_images(batches, (32, 32), steps=3)


def test_static_int8_runs_every_conv_in_int8(exported, tmp_path):
    model, module, path, images, outputs = exported
    total_convs = sum(len(v) for v in conv_nodes_by_module(onnx.load(path)).values())
    assert total_convs == 56  # 20 backbone, 8 neck, 5 x 4 levels FCOS, 3 FCN, 5 depth
    int8 = str(tmp_path / "int8.onnx")
    cfg = QuantizationConfig(float_outputs=False)
    summary = quantize_onnx(path, int8, images, cfg, outputs)
    assert (summary.int8_convs, summary.float_convs) == (56, 0)
    assert summary.calibration_images == 5
    assert os.path.getsize(int8) < 0.35 * os.path.getsize(path)
    parity = verify_onnx(int8, module, [torch.from_numpy(x) for x in images[:2]], np.inf, 0)
    assert 0 < parity.worst < 0.5 * max(parity.max_abs_ref.values())


def test_float_outputs_keep_output_layers_in_float(exported, tmp_path):
    model, module, path, images, outputs = exported
    int8 = str(tmp_path / "int8.onnx")
    summary = quantize_onnx(path, int8, images, QuantizationConfig(observer="percentile"), outputs)
    # conv_cls / conv_reg / conv_centerness x 4 levels, conv_seg, conv_depth
    assert (summary.int8_convs, summary.float_convs) == (42, 14)
    counts = op_counts(int8)
    assert counts["QLinearConv"] == 42
    # what follows them too: FCOS's exp of the box distances, the depth sigmoid (fused with its
    # conv by ONNX Runtime)
    assert counts["Exp"] == 4 and counts["Conv"] + counts["FusedConv"] == 14
    assert counts["QLinearSigmoid"] == 0


def test_qat_ranges_are_imposed_on_conv_inputs(exported, tmp_path):
    model, module, path, images, outputs = exported
    overrides = {"blocks.backbone.conv1": (0.0321, 121), "blocks.neck.fpn_convs.0.conv": (0.05, 7)}
    int8 = str(tmp_path / "int8_qat.onnx")
    summary = quantize_onnx(path, int8, images[:2], QuantizationConfig(), outputs, overrides)
    assert summary.overrides == 2
    q = onnx.load(int8)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    quant = {n.output[0]: n for n in q.graph.node if n.op_type == "QuantizeLinear"}
    # the graph input 'image' feeds backbone.conv1: its QuantizeLinear uses the learned scale
    (image_q,) = [n for n in quant.values() if n.input[0] == "image"]
    assert float(inits[image_q.input[1]]) == pytest.approx(0.0321)
    assert int(inits[image_q.input[2]]) == 121

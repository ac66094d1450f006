"""Exports round-trip with parity (ONNX Runtime, torch.jit.load), and the reference decoders
reproduce the heads' own predictions from the raw outputs."""

import copy

import numpy as np
import pytest
import torch

from multitask_vision.compression.decode import decode, io_spec
from multitask_vision.compression.export import (
    ExportModule,
    export_onnx,
    export_torchscript,
    verify_onnx,
    verify_torchscript,
)
from multitask_vision.compression.runtime import ExportedPredictor, eager_predict_fn
from multitask_vision.compression.testing import NATIVE_BLOCKS, build_model, synthetic_batches

SIZE = 64
OUTPUT_NAMES = [
    f"detection.{p}.{i}" for p in ("cls_scores", "bbox_preds", "centernesses") for i in range(4)
] + ["segmentation", "depth"]


@pytest.fixture(scope="module")
def model():
    return build_model()


@pytest.fixture(scope="module")
def batches(model):
    return synthetic_batches(model, n=2, batch_size=2, size=SIZE, seed=1)


@pytest.fixture(scope="module")
def whole(model, tmp_path_factory, batches):
    module = ExportModule(model).eval()
    example = batches[0]["inputs"][:1]
    module.trace_structure(example)
    path = str(tmp_path_factory.mktemp("export") / "fp32.onnx")
    export_onnx(module, path, example, None)
    return module, path


def _inputs(batches):
    return [b["inputs"][i : i + 1] for b in batches for i in range(2)]


def test_whole_model_onnx_round_trip(whole, batches):
    module, path = whole
    assert module.output_names == OUTPUT_NAMES
    assert module.structure == {
        "det_head": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], "seg_head": 12, "depth_head": 13
    }  # fmt: skip
    import onnx

    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == OUTPUT_NAMES
    assert not any(n.op_type == "NonMaxSuppression" for n in graph.node)  # NMS stays outside
    report = verify_onnx(path, module, _inputs(batches))
    assert report.passed and report.worst < 1e-4
    assert set(report.max_abs_diff) == set(OUTPUT_NAMES)


def test_torchscript_round_trip(model, batches, tmp_path):
    module = ExportModule(model).eval()
    path = str(tmp_path / "m.pt")
    export_torchscript(module, path, batches[0]["inputs"][:1])
    report = verify_torchscript(path, module, _inputs(batches))
    assert report.passed and report.worst < 1e-5
    assert len(report.max_abs_diff) == 14


def test_block_export_and_hybrid_prediction(model, batches, tmp_path):
    module = ExportModule(model, ["backbone"]).eval()
    example = batches[0]["inputs"][:1]
    module.trace_structure(example)
    assert module.output_names == [f"backbone.{i}" for i in range(4)]
    path = str(tmp_path / "backbone.onnx")
    export_onnx(module, path, example, None)
    assert verify_onnx(path, module, _inputs(batches)).worst < 1e-4
    # backbone in ONNX Runtime, neck and heads eager: same predictions as all-eager
    ort = ExportedPredictor(model, path, module.structure, (SIZE, SIZE))(copy.deepcopy(batches[0]))
    ref = eager_predict_fn(model)(copy.deepcopy(batches[0]))
    for a, b in zip(ort, ref, strict=True):
        assert len(a.pred_instances) == len(b.pred_instances)
        np.testing.assert_allclose(a.pred_instances.bboxes, b.pred_instances.bboxes, atol=1e-2)
        assert (a.pred_sem_seg.data == b.pred_sem_seg.data).float().mean() > 0.999
        np.testing.assert_allclose(a.pred_depth_map.data, b.pred_depth_map.data, atol=1e-4)


def test_onnx_predictions_equal_eager(model, whole, batches):
    module, path = whole
    ort = ExportedPredictor(model, path, module.structure, (SIZE, SIZE))(copy.deepcopy(batches[1]))
    ref = eager_predict_fn(model)(copy.deepcopy(batches[1]))
    for a, b in zip(ort, ref, strict=True):
        assert len(b.pred_instances) > 0
        np.testing.assert_allclose(a.pred_instances.scores, b.pred_instances.scores, atol=1e-4)
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)


def _check_decoder(model, module, batch):
    """numpy decode of raw outputs == the heads' predict (mmdet / mmseg / native)."""
    spec = io_spec(model, module, (SIZE, SIZE))
    ref = eager_predict_fn(model)(copy.deepcopy(batch))
    with torch.no_grad():
        raw = module(batch["inputs"])
    assert sum(len(s.pred_instances) for s in ref) > 0
    for i, sample in enumerate(ref):
        outputs = {n: t[i : i + 1].numpy() for n, t in zip(module.output_names, raw, strict=True)}
        got = decode(outputs, spec, sample.metainfo)
        det = got["detection"]
        assert len(det["bboxes"]) == len(sample.pred_instances)
        np.testing.assert_allclose(det["bboxes"], sample.pred_instances.bboxes.numpy(), atol=1e-3)
        np.testing.assert_allclose(det["scores"], sample.pred_instances.scores.numpy(), atol=1e-5)
        np.testing.assert_array_equal(det["labels"], sample.pred_instances.labels.numpy())
        seg = sample.pred_sem_seg.data[0].numpy()
        assert (got["segmentation"]["labels"] == seg).mean() > 0.999
        depth = sample.pred_depth_map.data[0].numpy()
        np.testing.assert_allclose(got["depth"]["depth"], depth, atol=1e-4)
    return spec


def test_reference_decoder_matches_mmlab_heads(model, whole, batches):
    module, _ = whole
    spec = _check_decoder(model, module, batches[0])
    assert spec["heads"]["detection"]["params"] == dict(
        strides=[4, 8, 16, 32], score_thr=0.05, nms_pre=100, iou_threshold=0.5, max_per_img=20,
        min_bbox_size=0, clip_to_original=False,
    )  # fmt: skip
    assert spec["input"]["mean"] == [123.675, 116.28, 103.53]
    assert spec["input"]["channel_order"] == "RGB" and spec["input"]["shape"] == [1, 3, 64, 64]
    assert spec["undecoded"] == []


def test_reference_decoder_matches_native_heads():
    blocks = copy.deepcopy(NATIVE_BLOCKS)
    blocks[2]["args"]["score_thr"] = 0.005  # an untrained head scores about prior_prob = 0.01
    model = build_model(blocks)
    batch = synthetic_batches(model, n=1, batch_size=2, size=SIZE, seed=2)[0]
    module = ExportModule(model).eval()
    module.trace_structure(batch["inputs"][:1])
    spec = _check_decoder(model, module, batch)
    assert spec["heads"]["detection"]["params"]["clip_to_original"] is True

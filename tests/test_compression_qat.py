"""QAT: fake quantization inside mmdet / mmseg heads trains, and a QAT checkpoint converts to a
float model plus the learned ranges; non-QAT checkpoints are refused for method='qat'."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from multitask_vision.compression.qat import (
    QATCheckpointError,
    QATCheckpointHook,
    QATConv2d,
    activation_overrides,
    load_qat_checkpoint,
    prepare_qat,
    qat_meta,
    qat_meta_from_checkpoint,
    set_qat_state,
)
from multitask_vision.compression.testing import build_model, synthetic_batches


def _convs(model, cls=nn.Conv2d):
    return {n for n, m in model.named_modules() if isinstance(m, cls)}


@pytest.fixture(scope="module")
def trained_qat():
    """A QAT model after 2 training steps, and its float twin before QAT."""
    model = build_model()
    float_model = build_model()
    prepare_qat(model, dict(blocks="all"))
    batches = synthetic_batches(model, n=2, batch_size=2, size=64, train=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for batch in batches:
        losses = model(batch["inputs"], batch["data_samples"], mode="loss")
        loss = sum(v for k, v in losses.items() if "loss" in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float_model, losses


def test_prepare_qat_wraps_every_conv_and_keeps_parameter_names():
    model = build_model()
    convs = _convs(model)
    keys = set(model.state_dict())
    prepare_qat(model, dict(blocks=["det_head", "seg_head"]))
    qat = _convs(model, QATConv2d)
    assert qat == {n for n in convs if n.startswith(("blocks.det_head.", "blocks.seg_head."))}
    assert len(qat) == 8
    new = set(model.state_dict()) - keys
    assert keys <= set(model.state_dict())
    assert "blocks.det_head.conv_cls.activation_fake_quant.scale" in new
    assert "blocks.det_head.conv_cls.weight_fake_quant.zero_point" in new
    assert "qat_marker._extra_state" in new
    assert qat_meta(model) == dict(
        blocks=["det_head", "seg_head"], backend="onnxruntime", observer="moving_average_minmax"
    )


def test_qat_forward_backward_through_mmlab_heads(trained_qat):
    model, _, losses = trained_qat
    assert {"loss_detection_cls", "loss_segmentation_ce", "loss_depth_silog"} <= set(losses)
    assert all(torch.isfinite(v) for k, v in losses.items() if "loss" in k)
    head = model.blocks["det_head"]
    assert head.conv_cls.weight.grad.abs().sum() > 0  # mmdet FCOSHead
    assert model.blocks["seg_head"].conv_seg.weight.grad.abs().sum() > 0  # mmseg FCNHead
    assert head.cls_convs[0].gn.weight.grad.abs().sum() > 0
    fq = head.cls_convs[0].conv.activation_fake_quant
    assert float(fq.scale) != 1.0 and fq.zero_point.dtype == torch.int32
    # weights: symmetric int8 per output channel
    wfq = head.cls_convs[0].conv.weight_fake_quant
    assert wfq.scale.shape == (16,) and int(wfq.zero_point.abs().sum()) == 0


def test_fake_quant_changes_outputs_a_little(trained_qat):
    model, _, _ = trained_qat
    x = synthetic_batches(model, n=1, batch_size=1, size=64)[0]["inputs"]
    with torch.no_grad():
        q = model(x, mode="tensor")["seg_head"]
        set_qat_state(model, observers=False, fake_quant=False)
        f = model(x, mode="tensor")["seg_head"]
        set_qat_state(model, observers=True, fake_quant=True)
    rel = float((q - f).abs().max() / f.abs().max())
    assert 1e-4 < rel < 0.2


def test_hook_writes_meta_and_checkpoint_converts(trained_qat, tmp_path):
    model, float_model, _ = trained_qat
    ckpt = {"state_dict": model.state_dict(), "meta": {}}
    QATCheckpointHook().before_save_checkpoint(SimpleNamespace(model=model), ckpt)
    assert ckpt["meta"]["qat"]["blocks"] == list(model.blocks.keys())
    fresh = build_model(seed=3)
    converted, overrides = load_qat_checkpoint(fresh, ckpt)
    assert not _convs(converted, QATConv2d) and not hasattr(converted, "qat_marker")
    assert len(overrides) == len(_convs(float_model))
    scale, zp = overrides["blocks.det_head.cls_convs.0.conv"]
    fq = model.blocks["det_head"].cls_convs[0].conv.activation_fake_quant
    assert (scale, zp) == (float(fq.scale), int(fq.zero_point))
    w = model.blocks["det_head"].conv_cls.weight
    assert torch.equal(converted.blocks["det_head"].conv_cls.weight, w)
    assert type(converted.blocks["det_head"].conv_cls) is nn.Conv2d
    assert activation_overrides(model) == overrides


def test_models_built_prepared_load_qat_and_float_checkpoints(trained_qat, tmp_path):
    """A QAT training config (``model.qat=...``) builds the model prepared already."""
    from multitask_vision.compression.checkpoint import load_deploy_checkpoint

    model, float_model, _ = trained_qat
    x = torch.zeros(1, 3, 64, 64)
    qat_path, float_path = tmp_path / "qat.pth", tmp_path / "float.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"qat": qat_meta(model)}}, qat_path)
    torch.save({"state_dict": float_model.state_dict(), "meta": {}}, float_path)
    prepared = prepare_qat(build_model(seed=4), dict(blocks="all"))
    loaded = load_deploy_checkpoint(prepared, str(qat_path), x, require_qat=True)
    assert loaded.qat["blocks"][0] == "backbone" and len(loaded.qat_overrides) == 41
    assert not _convs(prepared, QATConv2d)
    prepared = prepare_qat(build_model(seed=4), dict(blocks="all"))
    loaded = load_deploy_checkpoint(prepared, str(float_path), x)
    assert loaded.qat is None and not _convs(prepared, QATConv2d)
    w = float_model.blocks["neck"].fpn_convs[0].conv.weight
    assert torch.equal(prepared.blocks["neck"].fpn_convs[0].conv.weight, w)


def test_marker_alone_identifies_a_qat_checkpoint(trained_qat):
    model, _, _ = trained_qat
    meta = qat_meta_from_checkpoint({"state_dict": model.state_dict(), "meta": {}})
    assert meta["backend"] == "onnxruntime"


def test_plain_checkpoint_is_refused_for_qat():
    ckpt = {"state_dict": build_model().state_dict(), "meta": {"iter": 600}}
    with pytest.raises(
        QATCheckpointError,
        match=r"method='qat' needs a checkpoint trained with QAT, but plain.pth has no "
        r"meta\['qat'\].*use method='static' for post-training quantization",
    ):
        load_qat_checkpoint(build_model(), ckpt, "plain.pth")


def test_bad_qat_config():
    blocks = r"\['backbone', 'neck', 'det_head', 'seg_head', 'depth_head'\]"
    with pytest.raises(
        ValueError, match=r"unknown block\(s\) \['head'\]; the model's blocks: " + blocks
    ):
        prepare_qat(build_model(), dict(blocks=["head"]))
    with pytest.raises(ValueError, match=r"backend: unsupported value 'tensorrt'"):
        prepare_qat(build_model(), dict(backend="tensorrt"))

"""deploy.py and run_deploy end to end: every stage measured into report.json, bad inputs
refused with clear messages before anything is written, nothing half-written on failure."""

import json
import os

import numpy as np
import pytest
import torch

import deploy
from multitask_vision.compression.config import parse_deploy_config
from multitask_vision.compression.decode import decode
from multitask_vision.compression.pipeline import run_deploy
from multitask_vision.compression.runtime import make_session
from multitask_vision.compression.testing import (
    LOSSES,
    MMLAB_BLOCKS,
    build_model,
    small_evaluate,
    synthetic_batches,
)

BLOCK_NAMES = [b["name"] for b in MMLAB_BLOCKS]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    model = build_model()
    batches = synthetic_batches(model, n=2, batch_size=2, size=64)
    train = synthetic_batches(model, n=1, batch_size=2, size=64, seed=5, train=True)
    steps = []

    def finetune(m, cfg, teacher):  # the training loop's step, on synthetic batches
        opt = torch.optim.SGD(m.parameters(), lr=1e-3)
        m.train()
        for _ in range(cfg.iters):
            losses = m(train[0]["inputs"], train[0]["data_samples"], mode="loss")
            loss = sum(v for k, v in losses.items() if "loss" in k)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(float(loss))

    cfg = parse_deploy_config(
        dict(
            pruning=dict(method="structured", amount=0.3, finetune=dict(iters=2)),
            quantization=dict(calibration_steps=4),
            export=dict(format=["onnx", "torchscript"], img_size=64),
            latency=dict(warmup=1, runs=3),
        ),
        BLOCK_NAMES,
    )
    out = str(tmp_path_factory.mktemp("deploy") / "out")
    lines = []
    result = run_deploy(
        model, cfg, out, calibration=batches, evaluate=small_evaluate(batches),
        finetune=finetune, log=lines.append,
    )  # fmt: skip
    return result, model, batches, steps, lines


def test_every_stage_is_measured(deployed):
    result, model, _, steps, _ = deployed
    out = result.output_dir
    assert sorted(os.listdir(out)) == [
        "fp32.onnx", "fp32.torchscript.pt", "int8.onnx", "model_io.json", "pruned.onnx",
        "pruned.pth", "pruned.torchscript.pt", "pruned_int8.onnx", "report.json",
    ]  # fmt: skip
    assert len(steps) == 2
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == ["fp32", "pruned", "int8", "pruned_int8"]
    fp32 = stages["fp32"]
    assert fp32["params"] == sum(p.numel() for p in model.parameters()) == 765777
    assert fp32["macs"] > 0 and fp32["file_bytes"] == os.path.getsize(f"{out}/fp32.onnx")
    assert set(fp32["latency_ms"]) >= {"1"}
    assert report["host"]["threads"] >= 1 and "int8_dot" in report["host"]  # what it ran on
    assert fp32["parity"]["onnx"]["passed"] and fp32["parity"]["onnx"]["max_abs_diff"] < 1e-4
    assert fp32["parity"]["torchscript"]["passed"]
    assert {"detection/mAP", "segmentation/mIoU", "depth/abs_rel"} <= set(fp32["metrics"])
    r = report["ratios_to_fp32"]
    assert r["pruned"]["params"] < 0.6 and r["pruned"]["macs"] < 0.6 and r["pruned"]["file"] < 0.6
    assert r["int8"]["file"] < 0.35 and r["pruned_int8"]["file"] < 0.25
    assert stages["int8"]["params"] == fp32["params"]
    q = stages["int8"]["details"]["quantization"]
    assert (q["int8_convs"], q["float_convs"], q["calibration_images"]) == (42, 14, 4)
    assert stages["pruned"]["details"]["finetune"]["iters"] == 2
    # metrics of the ONNX fp32 model = eager metrics (same predictions)
    ev = small_evaluate(deployed[2])
    from multitask_vision.compression.runtime import eager_predict_fn

    eager = ev(eager_predict_fn(model))
    for k in ("detection/mAP", "segmentation/mIoU", "depth/abs_rel"):
        assert fp32["metrics"][k] == pytest.approx(eager[k], abs=1e-3)


def test_table_and_log(deployed):
    result, *_, lines = deployed
    header = result.table.splitlines()[0].split()
    assert header[:4] == ["stage", "params", "(M)", "GMACs"]
    assert "detection/mAP" in header and "depth/abs_rel" in header
    assert [row.split()[0] for row in result.table.splitlines()[2:]] == [
        "fp32", "pruned", "int8", "pruned_int8"
    ]  # fmt: skip
    assert any("ONNX Runtime vs eager max|diff|" in line for line in lines)
    assert any("runs 42 convolutions in int8, 14 in float" in line for line in lines)
    assert any(line.startswith("[deploy] measured on: ") for line in lines)


def test_model_io_spec_decodes_onnx_outputs(deployed):
    result, _, batches, _, _ = deployed
    with open(os.path.join(result.output_dir, "model_io.json")) as f:
        spec = json.load(f)
    session = make_session(os.path.join(result.output_dir, "int8.onnx"))
    names = [o.name for o in session.get_outputs()]
    assert names == spec["outputs"]
    x = batches[0]["inputs"][:1].numpy()
    outputs = dict(zip(names, session.run(None, {"image": x}), strict=True))
    meta = batches[0]["data_samples"][0].metainfo
    got = decode(outputs, spec, meta)
    assert set(got) == {"detection", "segmentation", "depth"}
    assert got["segmentation"]["labels"].shape == (64, 64)
    assert np.all((got["depth"]["depth"] > 0) & (got["depth"]["depth"] < 10.0))


def test_failure_mid_run_leaves_nothing(tmp_path):
    model = build_model()
    batches = synthetic_batches(model, n=1, batch_size=1, size=64)
    cfg = parse_deploy_config(dict(export=dict(img_size=64), latency=dict(warmup=0, runs=1)),
                              BLOCK_NAMES)  # fmt: skip

    def evaluate(predict_fn):
        raise RuntimeError("evaluator broke")

    with pytest.raises(RuntimeError, match="evaluator broke"):
        run_deploy(model, cfg, str(tmp_path / "out"), calibration=batches, evaluate=evaluate,
                   log=lambda s: None)  # fmt: skip
    assert os.listdir(tmp_path) == []


def test_qat_checkpoint_deploys_with_learned_ranges(tmp_path):
    from mmengine.config import Config

    from multitask_vision.compression.from_config import deploy_from_config
    from multitask_vision.compression.qat import prepare_qat, qat_meta

    model = prepare_qat(build_model(), dict(blocks="all"))
    batches = synthetic_batches(model, n=1, batch_size=2, size=64)
    model.train()
    with torch.no_grad():  # observers see data in training mode
        model(batches[0]["inputs"], mode="tensor")
    ckpt = tmp_path / "qat.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"qat": qat_meta(model)}}, ckpt)
    cfg = Config(dict(model=dict(type="MultiTaskModel", blocks=MMLAB_BLOCKS, losses=LOSSES)))
    deploy_dict = dict(
        quantization=dict(method="qat", calibration_steps=2),
        export=dict(img_size=64),
        latency=dict(warmup=0, runs=1),
    )
    lines = []
    result = deploy_from_config(
        cfg, str(ckpt), deploy_dict, str(tmp_path / "out"), evaluate=False,
        calibration=batches, log=lines.append,
    )  # fmt: skip
    int8 = {s.name: s for s in result.stages}["int8"]
    import onnx

    fp32 = onnx.load(os.path.join(result.output_dir, "fp32.onnx"))
    conv_inputs = {n.input[0] for n in fp32.graph.node if n.op_type == "Conv"}
    # every conv input tensor (several convs share one) gets the scale QAT learned
    assert int8.details["quantization"]["overrides"] == len(conv_inputs) == 39
    assert int8.details["method"] == "qat"
    assert result.report["qat"]["backend"] == "onnxruntime"
    assert any("learned input ranges" in line for line in lines)


def test_preprocessed_batches_leave_grad_mode_on():
    from multitask_vision.compression.data import preprocessed

    model = build_model()
    batches = synthetic_batches(model, n=1, batch_size=1, size=64)
    raw = [dict(inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)],
                data_samples=batches[0]["data_samples"])]  # fmt: skip
    gen = preprocessed(model, raw)
    assert next(gen)["inputs"].shape == (1, 3, 64, 64)
    assert torch.is_grad_enabled()  # the suspended generator does not hold no_grad


# -- deploy.py: refused before anything is built or written --------------------------------------


@pytest.fixture
def files(tmp_path):
    model_cfg = tmp_path / "model.py"
    model_cfg.write_text(
        f"model = dict(type='MultiTaskModel', blocks={MMLAB_BLOCKS!r}, losses={LOSSES!r})\n"
    )
    ckpt = tmp_path / "plain.pth"
    torch.save({"state_dict": build_model().state_dict(), "meta": {}}, ckpt)

    def run(deploy_dict, *extra, checkpoint=str(ckpt)):
        dcfg = tmp_path / "deploy_cfg.py"
        dcfg.write_text(f"deploy = {deploy_dict!r}\n")
        out = tmp_path / "out"
        argv = ["--config", str(model_cfg), "--checkpoint", checkpoint,
                "--deploy-config", str(dcfg), "--output", str(out), *extra]  # fmt: skip
        return deploy.main(argv), out

    return run


@pytest.mark.parametrize(
    "deploy_dict, message",
    [
        (dict(pruning=dict(targets=["neckk"])),
         r"deploy.pruning.targets: unknown block 'neckk' \(did you mean 'neck'\?\); the model's "
         r"blocks: \['backbone', 'neck', 'det_head', 'seg_head', 'depth_head'\]"),
        (dict(pruning=dict(amount=1.0)), r"deploy.pruning.amount must be a number in \[0, 1\)"),
        (dict(export=dict(format="tensorrt")),
         r"deploy.export.format: unsupported format 'tensorrt'; valid: \['onnx', 'torchscript'\]"),
        (dict(quantization=dict(method="qat")),
         r"method='qat' needs a checkpoint trained with QAT, but .*plain.pth has no meta\['qat'\]"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused_and_nothing_is_written(files, capsys, deploy_dict, message):
    import re

    rc, out = files(deploy_dict)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("deploy.py: error: ")
    assert re.search(message, err), err
    assert not out.exists()
    assert not [p for p in os.listdir(out.parent) if ".partial" in p]


def test_missing_checkpoint_and_existing_output(files, capsys, tmp_path):
    rc, _ = files({}, checkpoint=str(tmp_path / "nope.pth"))
    assert rc == 2 and "checkpoint" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    rc, out = files({})
    assert rc == 2 and "is not empty; choose another --output or pass --overwrite" in (
        capsys.readouterr().err
    )
    assert os.listdir(out) == ["keep.txt"]


# -- deploy.py on real data: the training config's loaders, evaluator and optimizer -------------

TINY = os.path.join(os.path.dirname(__file__), "configs", "tiny_det_seg_depth.py")


@pytest.mark.slow
def test_deploy_cli_on_demo_data(tmp_path, monkeypatch, capsys):
    from mmengine.config import Config

    from multitask_vision.data.demo import make_demo_data
    from multitask_vision.registry import MODELS
    from multitask_vision.training import register_all_modules

    make_demo_data(str(tmp_path / "data" / "demo"), num_train=8, num_val=4, log=lambda *a: None)
    monkeypatch.chdir(tmp_path)
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY).model)
    torch.save({"state_dict": model.state_dict(), "meta": {}}, tmp_path / "tiny.pth")
    deploy_dict = dict(
        pruning=dict(amount=0.3, finetune=dict(iters=2, log_interval=1)),
        quantization=dict(calibration_steps=4),
        export=dict(img_size=64),
        latency=dict(warmup=1, runs=3),
    )
    (tmp_path / "deploy_cfg.py").write_text(f"deploy = {deploy_dict!r}\n")
    rc = deploy.main(["--config", TINY, "--checkpoint", "tiny.pth", "--deploy-config",
                      "deploy_cfg.py", "--output", "out"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "fine-tune 2/2 (means since last line): loss_" in out
    with open(tmp_path / "out" / "report.json") as f:
        report = json.load(f)
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == ["fp32", "pruned", "int8", "pruned_int8"]
    for s in stages.values():
        assert {"demo_voc/detection/mAP", "demo_voc/segmentation/mIoU",
                "demo_nyu/depth/abs_rel"} <= set(s["metrics"])  # fmt: skip
    assert stages["int8"]["details"]["quantization"]["calibration_images"] == 4
    assert report["checkpoint"].endswith("tiny.pth")

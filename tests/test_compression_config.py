"""The deploy config: every bad value named with its key and the valid choices, all at once."""

import pytest

from multitask_vision.compression.config import (
    DeployConfigError,
    DistillConfig,
    FinetuneConfig,
    parse_deploy_config,
)

BLOCKS = ["backbone", "neck", "det_head", "seg_head", "depth_head"]


def test_full_config_parses_with_defaults():
    cfg = parse_deploy_config(
        dict(
            pruning=dict(
                method="structured",
                amount=0.3,
                targets="all",
                norm=1,
                finetune=dict(iters=300, lr=5e-4),
            ),
            quantization=dict(method="static", observer="minmax", calibration_steps=50),
            export=dict(format="onnx", blocks=["backbone"], img_size=256),
        ),  # fmt: skip
        BLOCKS,
    )
    assert cfg.pruning.amount == 0.3 and cfg.pruning.targets is None and cfg.pruning.physical
    assert cfg.pruning.finetune == FinetuneConfig(iters=300, lr=5e-4, log_interval=50)
    assert cfg.quantization.calibration_steps == 50 and cfg.quantization.per_channel
    assert cfg.export.formats == ("onnx",) and cfg.export.blocks == ("backbone",)
    assert cfg.export.img_size == (256, 256)
    assert (cfg.latency.warmup, cfg.latency.runs) == (10, 50)


def test_every_section_is_optional():
    cfg = parse_deploy_config(None, BLOCKS)
    assert cfg.pruning is None and cfg.quantization is None
    assert cfg.export.formats == ("onnx",) and cfg.export.blocks is None
    cfg = parse_deploy_config(dict(export=dict(format=["torchscript", "onnx"], img_size=(96, 128))),
                              BLOCKS)  # fmt: skip
    assert cfg.export.formats == ("torchscript", "onnx") and cfg.export.img_size == (96, 128)


def test_unknown_target_block_lists_the_blocks():
    with pytest.raises(
        DeployConfigError,
        match=r"deploy.pruning.targets: unknown block 'bakbone' \(did you mean 'backbone'\?\); "
        r"the model's blocks: \['backbone', 'neck', 'det_head', 'seg_head', 'depth_head'\]",
    ):
        parse_deploy_config(dict(pruning=dict(targets=["bakbone", "neck"])), BLOCKS)
    with pytest.raises(DeployConfigError, match=r"deploy.export.blocks: unknown block 'head'"):
        parse_deploy_config(dict(export=dict(blocks="head")), BLOCKS)


@pytest.mark.parametrize("amount", [1.0, 1.5, -0.1, "30%", None])
def test_amount_outside_unit_interval(amount):
    with pytest.raises(
        DeployConfigError, match=r"deploy.pruning.amount must be a number in \[0, 1\)"
    ):
        parse_deploy_config(dict(pruning=dict(amount=amount)), BLOCKS)


def test_unsupported_format_names_valid_ones():
    with pytest.raises(
        DeployConfigError,
        match=r"deploy.export.format: unsupported format 'tflite'; "
        r"valid: \['onnx', 'torchscript'\]",
    ):
        parse_deploy_config(dict(export=dict(format="tflite")), BLOCKS)
    with pytest.raises(
        DeployConfigError, match=r"unsupported format 'onnnx' \(did you mean 'onnx'"
    ):
        parse_deploy_config(dict(export=dict(format=["onnnx"])), BLOCKS)


def test_unsupported_methods_and_observers():
    with pytest.raises(
        DeployConfigError,
        match=r"deploy.quantization.method: unsupported value 'dynamic'; "
        r"valid: \['static', 'qat'\]",
    ):
        parse_deploy_config(dict(quantization=dict(method="dynamic")), BLOCKS)
    with pytest.raises(DeployConfigError, match=r"observer: unsupported value 'histogram'"):
        parse_deploy_config(dict(quantization=dict(observer="histogram")), BLOCKS)
    with pytest.raises(DeployConfigError, match=r"pruning.method: unsupported value 'random'"):
        parse_deploy_config(dict(pruning=dict(method="random")), BLOCKS)


def test_all_problems_are_reported_at_once():
    with pytest.raises(DeployConfigError) as info:
        parse_deploy_config(
            dict(
                prunning=dict(),
                pruning=dict(amount=2, targets=["x"], method="unstructured", norm=2),
                quantization=dict(calibration_steps=0, percentile=99.9),
                export=dict(img_size=100, format="tflite", atol=-1),
            ),
            BLOCKS,
        )
    problems = info.value.problems
    assert len(problems) == 9, problems
    assert str(info.value).startswith("invalid deploy config (9 problems):")
    assert any("unknown section 'prunning' (did you mean 'pruning'?)" in p for p in problems)
    assert any("norm applies to method='structured' only" in p for p in problems)
    assert any("calibration_steps must be an int >= 1, got 0" in p for p in problems)
    assert any("percentile is only used with observer='percentile'" in p for p in problems)
    assert any("img_size=100: sizes must be multiples of 32" in p and "(96, 96)" in p
               for p in problems)  # fmt: skip


def test_unknown_keys_with_closest_match():
    with pytest.raises(
        DeployConfigError,
        match=r"deploy.pruning.finetune: unknown key 'iterations' \(did you mean 'iters'\?\); "
        r"valid keys: "
        r"\['iters', 'lr', 'schedule', 'warmup_iters', 'distill', 'seed', 'log_interval'\]",
    ):
        parse_deploy_config(dict(pruning=dict(finetune=dict(iterations=5))), BLOCKS)
    with pytest.raises(DeployConfigError, match=r"unknown key 'amout' \(did you mean 'amount'\?\)"):
        parse_deploy_config(dict(pruning=dict(amout=0.3)), BLOCKS)


def test_finetune_schedule_and_distillation():
    cfg = parse_deploy_config(
        dict(pruning=dict(finetune=dict(iters=400, lr=1e-3, schedule="constant", warmup_iters=20,
                                        distill=dict(weight=0.5, tasks="batch"), seed=7))),
        BLOCKS,
    )  # fmt: skip
    assert cfg.pruning.finetune == FinetuneConfig(
        iters=400, lr=1e-3, schedule="constant", warmup_iters=20,
        distill=DistillConfig(weight=0.5, tasks="batch"), seed=7,
    )  # fmt: skip
    default = parse_deploy_config(dict(pruning=dict(finetune=dict(distill=dict()))), BLOCKS)
    ft = default.pruning.finetune
    assert (ft.schedule, ft.warmup_iters, ft.distill) == ("cosine", 0, DistillConfig(1.0, "all"))
    assert ft.seed == 0


def test_bad_finetune_values_are_all_reported():
    with pytest.raises(DeployConfigError) as info:
        parse_deploy_config(
            dict(pruning=dict(finetune=dict(iters=10, schedule="cosin", warmup_iters=10, seed=-1,
                                            distill=dict(weight=0, tasks="every", temp=2)))),
            BLOCKS,
        )  # fmt: skip
    problems = info.value.problems
    assert len(problems) == 6, problems
    assert any("finetune.seed must be an int >= 0, got -1" in p for p in problems)
    assert any("finetune.schedule: unsupported value 'cosin' (did you mean 'cosine'?)" in p
               for p in problems)  # fmt: skip
    assert any("warmup_iters (10) must be less than iters (10)" in p for p in problems)
    assert any("distill.weight must be a positive number, got 0" in p for p in problems)
    assert any("distill.tasks: unsupported value 'every'" in p and "['all', 'batch']" in p
               for p in problems)  # fmt: skip
    assert any("distill: unknown key 'temp'" in p for p in problems)

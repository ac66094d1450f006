"""Every shipped config parses, validates, and builds its model (weights not needed)."""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from multitask_vision.registry import MODELS
from multitask_vision.training import register_all_modules

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, "configs", "*.py")) if osp.basename(p) != "deploy.py"
)


def test_configs_are_found():
    names = {osp.basename(p) for p in CONFIGS}
    assert {"demo_det_seg_depth_mmlab.py", "det_seg_depth_mmlab.py", "det_seg_depth_quick.py",
            "det_seg_depth_mmlab_qat.py"} <= names  # fmt: skip


@pytest.mark.parametrize("path", CONFIGS, ids=osp.basename)
def test_config_builds_and_predicts(path):
    register_all_modules()
    cfg = Config.fromfile(path)
    for block in cfg.model.blocks:  # no ImageNet weights here; the structure is what is tested
        if "pretrained" in block.get("args", {}):
            block["args"]["pretrained"] = False
    model = MODELS.build(cfg.model).eval()
    assert set(model.tasks) == set(cfg.model.losses)
    if cfg.model.get("qat"):
        from multitask_vision.compression.qat import QATConv2d

        n_qat = sum(isinstance(m, QATConv2d) for m in model.modules())
        n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        assert n_qat == n_conv > 0  # blocks='all': every convolution is fake-quantized
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64), mode="tensor")
    assert set(outs) == set(model.heads.values())
    for key in ("train_dataloader", "val_dataloader", "val_evaluator", "train_cfg"):
        assert key in cfg, key

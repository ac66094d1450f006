"""Evaluate a checkpoint on the config's test split (per dataset, per task, mmlab metrics).

    uv run python test.py --config configs/demo_det_seg_depth_mmlab.py \
        --checkpoint work_dirs/demo_det_seg_depth_mmlab/latest.pth
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys

from mmengine.config import Config, DictAction

from multitask_vision.checkpoint import load_model_weights
from multitask_vision.evaluation import format_summary
from multitask_vision.training import build_runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a MultitaskVision checkpoint.")
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument(
        "--work-dir", help="logs and metrics.json (default: next to the checkpoint)"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = Config.fromfile(args.config)
    cfg.custom_hooks = [
        h for h in cfg.get("custom_hooks", []) if h.get("type") != "MultiTaskSummaryHook"
    ]
    work_dir = args.work_dir or osp.join(osp.dirname(osp.abspath(args.checkpoint)), "test")
    runner = build_runner(
        cfg, work_dir=work_dir, cfg_options=args.cfg_options, launcher=args.launcher,
        config_path=args.config,
    )  # fmt: skip
    load_model_weights(runner.model, args.checkpoint)  # strict: lists mismatched keys
    metrics = runner.test()
    baselines = cfg.get("baselines", {})
    print(format_summary({"test": metrics}, baselines))
    with open(osp.join(work_dir, "metrics.json"), "w") as f:
        json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train a multi-task model from a config with mmengine's Runner.

    uv run python train.py --config configs/demo_det_seg_depth_mmlab.py
    uv run python train.py --config configs/det_seg_depth_mmlab.py --work-dir work_dirs/run1 \
        --cfg-options train_cfg.max_iters=20000 optim_wrapper.optimizer.lr=0.01
    uv run python train.py --config configs/det_seg_depth_mmlab.py --resume          # latest.pth
    torchrun --nproc_per_node=2 train.py --config configs/X.py --launcher pytorch    # DDP
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import Config, DictAction

from multitask_vision.training import build_runner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a MultitaskVision model.")
    parser.add_argument("--config", required=True, help="config file (configs/*.py)")
    parser.add_argument("--work-dir", help="where logs and checkpoints go "
                        "(default: work_dirs/<config name>)")  # fmt: skip
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None, metavar="CKPT",
        help="resume from CKPT, or from <work-dir>/latest.pth when no path is given",
    )  # fmt: skip
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config keys, e.g. train_cfg.max_iters=100")  # fmt: skip
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--amp", action="store_true", help="mixed precision (needs a GPU)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    runner = build_runner(
        cfg, work_dir=args.work_dir, resume=args.resume, cfg_options=args.cfg_options,
        launcher=args.launcher, amp=args.amp, config_path=args.config,
    )  # fmt: skip
    runner.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())

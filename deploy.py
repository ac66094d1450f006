"""Deploy a trained model: prune, quantize to int8, export (ONNX / TorchScript), verify every
export against eager PyTorch and measure each stage (parameters, MACs, file size, ONNX Runtime
latency, task metrics) into ``<output>/report.json`` and a printed table.

    uv run python deploy.py --config configs/demo_det_seg_depth_mmlab.py \
        --checkpoint work_dirs/demo_det_seg_depth_mmlab/latest.pth \
        --deploy-config configs/deploy.py --output deploy_output/

See docs/deployment.md for the deploy config and the artifacts.
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import Config, DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Prune, quantize, export and measure a model.")
    parser.add_argument("--config", required=True, help="the model's training config")
    parser.add_argument("--checkpoint", required=True, help="trained (or QAT) checkpoint")
    parser.add_argument("--deploy-config", required=True, help="deploy config (configs/deploy.py)")
    parser.add_argument("--output", default="deploy_output", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    parser.add_argument("--no-eval", action="store_true", help="skip the task metrics")
    parser.add_argument("--max-val-batches", type=int, default=None,
                        help="evaluate on this many validation batches only")  # fmt: skip
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override keys of the training config")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from multitask_vision.checkpoint import CheckpointError
    from multitask_vision.compression import (
        DeployConfigError,
        ExportParityError,
        QATCheckpointError,
    )
    from multitask_vision.compression.from_config import deploy_from_config

    try:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        deploy = Config.fromfile(args.deploy_config).get("deploy")
        deploy_from_config(
            cfg, args.checkpoint, deploy, args.output, overwrite=args.overwrite,
            evaluate=not args.no_eval, max_val_batches=args.max_val_batches,
        )  # fmt: skip
    except (DeployConfigError, QATCheckpointError, CheckpointError, FileNotFoundError,
            FileExistsError) as e:  # fmt: skip
        print(f"deploy.py: error: {e}", file=sys.stderr)
        return 2
    except ExportParityError as e:  # nothing was written
        print(f"deploy.py: export check failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Render per-task predictions next to the ground truth for the first samples of every dataset.

    uv run python visualize.py --config configs/demo_det_seg_depth_mmlab.py \
        --checkpoint work_dirs/demo_det_seg_depth_mmlab/latest.pth --num-samples 8

Writes ``<out-dir>/<dataset>/<img_id>.png`` (a row per task: input | ground truth | prediction
| extras, titled with the sample id and its per-sample metrics), a contact sheet per dataset and
``<out-dir>/index.html``. The tasks come from the config's model; each needs a registered
visualizer (docs/visualization.md).
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

from multitask_vision.visualization.report import (
    SPLITS,
    build_for_visualization,
    dataloader_settings,
    write_visualizations,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Visualize a MultitaskVision checkpoint.")
    parser.add_argument("--config", required=True, help="config file (configs/*.py)")
    parser.add_argument("--checkpoint", required=True, help="weights matching the config")
    parser.add_argument("--num-samples", type=int, default=8, help="samples per dataset")
    parser.add_argument("--split", choices=SPLITS, default="val",
                        help="which <split>_dataloader of the config to draw from")  # fmt: skip
    parser.add_argument("--out-dir", help="default: <checkpoint folder>/vis_<split>")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="detection boxes scored below it are not drawn")  # fmt: skip
    parser.add_argument(
        "--min-side",
        type=int,
        default=256,
        help="small images are shown enlarged to this shorter side (pixels)",
    )
    parser.add_argument("--device", help="default: cuda if available, else cpu")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config keys, e.g. data_root=/data/demo")  # fmt: skip
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f"--num-samples must be >= 1, got {args.num_samples}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model, dataset, loader_cfg = build_for_visualization(
        cfg, args.checkpoint, args.split, args.device
    )
    out_dir = args.out_dir or osp.join(
        osp.dirname(osp.abspath(args.checkpoint)), f"vis_{args.split}"
    )
    batch_size, num_workers = dataloader_settings(loader_cfg)
    notes = [f"config {args.config}", f"checkpoint {args.checkpoint}",
             f"split {args.split}, score threshold {args.score_thr:g}"]  # fmt: skip
    report = write_visualizations(
        model, dataset, out_dir, num_samples=args.num_samples, score_thr=args.score_thr,
        batch_size=batch_size, num_workers=num_workers, min_side=args.min_side, notes=notes,
        log=print,
    )  # fmt: skip
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

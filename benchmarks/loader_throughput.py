"""Loader throughput of the default training pipeline, next to the time of one training step.

    uv run --no-sync python benchmarks/loader_throughput.py                 # demo data, 512 px
    uv run --no-sync python benchmarks/loader_throughput.py --scale 4       # VOC/NYU-sized images
    uv run --no-sync python benchmarks/loader_throughput.py --model-config \
        configs/demo_det_seg_depth_mmlab.py --size 128   # + the demo model step

Builds the training dataloader the way the mmengine Runner does (MultiTaskConcatDataset of the
demo VOC and NYU trees, MultiTaskGroupSampler + MultiTaskGroupBatchSampler, pseudo_collate,
``num_workers`` workers) with the default training pipeline at 512 px (random resize 0.5-2x,
crop 512, flip, photometric distortion), and times batches after a warm-up; then the
MultiTaskDataPreprocessor (normalise + pad; it runs in the main process, inside train_step).

MODEL STEP: with ``--model-config`` (an mmengine config with ``model``, ``optim_wrapper`` and
``train_dataloader``) the loader is that config's train_dataloader (its datasets and task sets,
so batches fit the model's heads) with the pipeline above, and ``model.train_step`` is timed on
its batches; without it that row is n/a. The loader is not the bottleneck when its images/s
exceed those of the training step.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from multitask_vision.data import train_pipeline
from multitask_vision.data.demo import demo_nyu_dataset, demo_voc_dataset, make_demo_data
from multitask_vision.registry import MODELS


def build_loader(root: str, size: int, batch_size: int, workers: int, model_cfg=None):
    """The Runner's train dataloader: the demo concat, or the model config's ``train_dataloader``
    (so the batches fit that model's heads), with the default pipeline at ``size`` px."""
    pipeline = train_pipeline((size, size))
    if model_cfg is not None:
        cfg = copy.deepcopy(model_cfg.train_dataloader.to_dict())
        for dataset in cfg["dataset"].get("datasets", [cfg["dataset"]]):
            dataset["pipeline"] = pipeline
    else:
        cfg = dict(
            dataset=dict(
                type="MultiTaskConcatDataset",
                datasets=[
                    demo_voc_dataset(root, "train", pipeline=pipeline),
                    demo_nyu_dataset(root, "train", pipeline=pipeline),
                ],
            ),
            sampler=dict(type="MultiTaskGroupSampler", strategy="proportional"),
            batch_sampler=dict(type="MultiTaskGroupBatchSampler"),
        )
    cfg.update(batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0)
    return Runner.build_dataloader(cfg, seed=0)


def time_loader(loader, warmup: int, batches: int) -> tuple[float, list]:
    """Seconds for ``batches`` batches of the dataloader alone (workers, collate)."""
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    kept = []
    start = time.perf_counter()
    for _ in range(batches):
        kept.append(next(it))
    return time.perf_counter() - start, kept


def time_preprocessor(preprocessor, batches: list) -> float:
    """Seconds per batch of MultiTaskDataPreprocessor (main process; part of train_step)."""
    start = time.perf_counter()
    for batch in batches:
        preprocessor(batch, training=True)
    return (time.perf_counter() - start) / len(batches)


def time_model_step(cfg, raw_batches: list) -> float:
    """Seconds per ``model.train_step`` (MODEL STEP: the model of ``--model-config``)."""
    from mmengine.optim import build_optim_wrapper

    model = MODELS.build(cfg.model)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train_step(raw_batches[0], optim_wrapper)  # warm-up
    start = time.perf_counter()
    for batch in raw_batches[1:]:
        model.train_step(batch, optim_wrapper)
    return (time.perf_counter() - start) / max(len(raw_batches) - 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="demo data root (default data/demo[_xN])")
    parser.add_argument("--scale", type=int, default=1, help="demo image size multiplier")
    parser.add_argument("--size", type=int, default=512, help="training crop / scale (px)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--model-config", default=None, help="mmengine config: model step time")
    parser.add_argument("--model-steps", type=int, default=5, help="timed steps (after 1 warm-up)")
    args = parser.parse_args()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    init_default_scope("mtv")
    root = args.root or ("data/demo" if args.scale == 1 else f"data/demo_x{args.scale}")
    make_demo_data(root, scale=args.scale, num_train=300 if args.scale == 1 else 120)
    preprocessor = MODELS.build(dict(type="MultiTaskDataPreprocessor"))

    model_cfg = Config.fromfile(args.model_config) if args.model_config else None
    rows = []
    kept = None
    for workers in args.workers:
        loader = build_loader(root, args.size, args.batch_size, workers, model_cfg)
        seconds, batches = time_loader(loader, warmup=3, batches=args.batches)
        n = args.batches * args.batch_size
        rows.append((f"loader, {workers} workers", n / seconds, 1000 * seconds / args.batches))
        kept = kept or batches
    step = time_preprocessor(preprocessor, kept)
    rows.append(("data preprocessor", args.batch_size / step, 1000 * step))
    if args.model_config:
        step = time_model_step(model_cfg, kept[: args.model_steps + 1])
        rows.append(("model train_step", args.batch_size / step, 1000 * step))
    else:
        rows.append(("model train_step", None, None))

    print(
        f"\nimages {args.size} px, batch {args.batch_size}, {os.cpu_count()} CPU cores, "
        f"data {root} (scale {args.scale})"
    )
    print(f"{'what':<24}{'images/s':>12}{'ms/batch':>12}")
    for name, ips, ms in rows:
        if ips is None:
            print(f"{name:<24}{'n/a':>12}{'n/a':>12}   (pass --model-config to time a model)")
        else:
            print(f"{name:<24}{ips:>12.1f}{ms:>12.1f}")


if __name__ == "__main__":
    main()

"""Training throughput: the multi-task model on detection batches vs a plain mmdet detector, and
the inference cost saved by sharing one backbone among three tasks.

    uv run python -m multitask_vision.data.demo --root data/demo
    uv run python benchmarks/train_throughput.py --size 128 --batch 8 --repeats 10

1. train step (preprocess + forward + loss + backward + SGD update) on the same detection
   batches (demo VOC images through the demo training pipeline), alternating between
   - the det+seg+depth mmlab model of configs/demo_det_seg_depth_mmlab.py, and
   - mmdet's own ``FCOS`` detector with the same ResNet-18 + FPN + FCOSHead settings;
   ratio = multi-task images/s / detector images/s (target >= 0.95: no framework tax).
2. inference on one image: the multi-task model once vs three single-task models (backbone +
   det / seg / depth head each), summed.
Median of ``--repeats`` alternating runs after warm-up.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper

from multitask_vision.registry import DATASETS, MODELS
from multitask_vision.training import register_all_modules

CONFIG = "configs/demo_det_seg_depth_mmlab.py"


def _mmdet_fcos(cfg: Config) -> torch.nn.Module:
    """mmdet's FCOS detector with the blocks of the multi-task config."""
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope

    blocks = {b["name"]: b for b in cfg.model.blocks}
    neck = dict(blocks["neck"]["args"], type="FPN")
    head = dict(blocks["det_head"]["args"], type="FCOSHead")
    test_cfg = head.pop("test_cfg")
    pre = cfg.model.data_preprocessor
    det = dict(
        type="FCOS",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_size_divisor=pre.get("pad_size_divisor", 32)),
        # torchvision's ResNet-18 layout, as our ResNetBackbone: pytorch style, BN trained.
        backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                      frozen_stages=-1, norm_cfg=dict(type="BN", requires_grad=True),
                      norm_eval=False, style="pytorch"),
        neck=neck, bbox_head=head, test_cfg=test_cfg,
    )  # fmt: skip
    with DefaultScope.overwrite_default_scope("mmdet"):
        return MMDET_MODELS.build(ConfigDict(det))


def _batches(cfg: Config, size: int, batch: int, n: int) -> list[dict]:
    pipeline = copy.deepcopy(cfg.train_pipeline)
    for t in pipeline:
        if "scale" in t:
            t["scale"] = (size, size)
        if "crop_size" in t:
            t["crop_size"] = (size, size)
    voc = DATASETS.build(
        dict(cfg.train_dataloader.dataset.datasets[0], tasks=("detection",), pipeline=pipeline)
    )
    out = []
    for b in range(n):
        items = [voc[(b * batch + i) % len(voc)] for i in range(batch)]
        out.append(dict(inputs=[x["inputs"] for x in items],
                        data_samples=[x["data_samples"] for x in items]))  # fmt: skip
    return out


def _copy_batch(b: dict) -> dict:
    return dict(inputs=list(b["inputs"]), data_samples=[s.clone() for s in b["data_samples"]])


def _time_train_step(model, ow, batch) -> float:
    t0 = time.perf_counter()
    model.train_step(_copy_batch(batch), ow)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    register_all_modules()
    torch.manual_seed(0)
    cfg = Config.fromfile(args.config)

    mtl = MODELS.build(cfg.model).train()
    det = _mmdet_fcos(cfg).train()
    mtl.init_weights()
    det.init_weights()
    ow_m = OptimWrapper(torch.optim.SGD(mtl.parameters(), lr=1e-3, momentum=0.9))
    ow_d = OptimWrapper(torch.optim.SGD(det.parameters(), lr=1e-3, momentum=0.9))
    batches = _batches(cfg, args.size, args.batch, 4)

    for b in batches[:2]:  # warm-up
        _time_train_step(mtl, ow_m, b)
        _time_train_step(det, ow_d, b)
    times = {"multi-task model": [], "mmdet FCOS": []}
    for i in range(args.repeats):
        b = batches[i % len(batches)]
        order = [("multi-task model", mtl, ow_m), ("mmdet FCOS", det, ow_d)]
        for name, m, ow in order if i % 2 == 0 else order[::-1]:
            times[name].append(_time_train_step(m, ow, b))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"train step on detection batches: batch {args.batch}, {args.size} px, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} alternating runs"
    )
    print("| model              | ms/step | images/s |")
    print("|--------------------|---------|----------|")
    for k in times:
        print(f"| {k:<18} | {1000 * med[k]:7.0f} | {args.batch / med[k]:8.2f} |")
    ratio = med["mmdet FCOS"] / med["multi-task model"]
    print(f"throughput ratio multi-task / mmdet detector: {ratio:.3f} (target >= 0.95)\n")

    # --- sharing: one multi-task forward vs three single-task models --------------------------
    mtl.eval()
    image = torch.randn(1, 3, args.size, args.size)
    singles = []
    for task, head in mtl.heads.items():
        single_cfg = copy.deepcopy(cfg.model)
        needed = set(mtl.blocks.plan([head]))
        single_cfg.blocks = [b for b in single_cfg.blocks if b["name"] in needed]
        single_cfg.losses = {task: single_cfg.losses[task]}
        singles.append((task, MODELS.build(single_cfg).eval()))

    def fwd(m):
        t0 = time.perf_counter()
        with torch.no_grad():
            m(image, mode="tensor")
        return time.perf_counter() - t0

    for _ in range(3):
        fwd(mtl)
        for _, s in singles:
            fwd(s)
    t_mtl, t_single = [], {t: [] for t, _ in singles}
    for _ in range(args.repeats * 2):
        t_mtl.append(fwd(mtl))
        for t, s in singles:
            t_single[t].append(fwd(s))
    m_mtl = statistics.median(t_mtl)
    m_single = {t: statistics.median(v) for t, v in t_single.items()}
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    print(f"inference, one {args.size} px image, median of {args.repeats * 2} runs")
    print("| model                        | ms    | params (M) |")
    print("|------------------------------|-------|------------|")
    print(f"| multi-task (3 heads, shared) | {1000 * m_mtl:5.1f} | {params(mtl):10.2f} |")
    for t, s in singles:
        print(f"| single-task {t:<16} | {1000 * m_single[t]:5.1f} | {params(s):10.2f} |")
    total = sum(m_single.values())
    total_p = sum(params(s) for _, s in singles)
    print(f"| three single-task models     | {1000 * total:5.1f} | {total_p:10.2f} |")
    print(
        f"sharing saves {100 * (1 - m_mtl / total):.0f}% of the time and "
        f"{100 * (1 - params(mtl) / total_p):.0f}% of the parameters"
    )


if __name__ == "__main__":
    main()

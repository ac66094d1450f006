"""The main job's final table: each metric of the untrained model (iteration 0) and after
training, against the demo targets, then the deployment stages and the time of each step.

    uv run python scripts/demo_report.py --work-dir work_dirs/demo \
        --config configs/demo_det_seg_depth_mmlab.py
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys

from mmengine.config import Config


def _load(path: str):
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    history = _load(osp.join(args.work_dir, "metrics_history.json")) or {}
    final = _load(osp.join(args.work_dir, "test", "metrics.json")) or {}
    start = history.get("iter 0", {})
    targets = cfg.get("demo_targets", [])

    print("\n== MultitaskVision demo: untrained vs trained (demo validation split) ==")
    print(f"{'metric':<34}{'iter 0':>10}{'trained':>10}{'target':>12}  ok")
    all_ok = True
    for key, rule, value in targets:
        got = final.get(key)
        ok = got is not None and (got >= value if rule == ">=" else got <= value)
        all_ok &= ok
        s0 = f"{start[key]:.4f}" if key in start else "-"
        s1 = f"{got:.4f}" if got is not None else "-"
        print(f"{key:<34}{s0:>10}{s1:>10}{rule + ' ' + str(value):>12}  {'yes' if ok else 'NO'}")

    report = _load(osp.join(args.work_dir, "deploy", "report.json"))
    if report:
        keys = [key for key, _, _ in targets]
        print("\n== deployment (ONNX Runtime, batch 1; ratios to fp32) ==")
        threads = sorted(report["stages"][0]["latency_ms"], key=int)
        head = f"{'stage':<12}{'params M':>10}{'file MB':>9}"
        head += "".join(f"{'ms ' + t + ' thr':>16}" for t in threads)
        print(head + "".join(f"{k.split('/', 1)[1]:>20}" for k in keys))
        for stage in report["stages"]:
            r = report["ratios_to_fp32"].get(stage["name"], {})
            lat = stage["latency_ms"]
            cells = [f"{stage['params'] / 1e6:>10.2f}", f"{stage['file_bytes'] / 1e6:>9.1f}"]
            for t in threads:
                ratio = r.get(f"latency_{t}t")
                cell = f"{lat[t]:.2f}" + (f" ({ratio:.2f}x)" if ratio is not None else "")
                cells.append(f"{cell:>16}")
            metrics = stage.get("metrics") or {}
            cells += [f"{metrics[k]:>20.4f}" if k in metrics else f"{'-':>20}" for k in keys]
            print(f"{stage['name']:<12}" + "".join(cells))
    timings_path = osp.join(args.work_dir, "timings.txt")
    if osp.isfile(timings_path):
        steps, prev = [], 0
        with open(timings_path) as f:
            lines = f.read().split("\n")
        for line in lines:
            if line.strip():
                name, t = line.split()
                steps.append(f"{name} {int(t) - prev} s")
                prev = int(t)
        print(f"\ntime per step: {', '.join(steps)}; total {prev // 60} min {prev % 60} s")
    print(f"outputs: {args.work_dir}/ (checkpoints, TensorBoard logs, vis/index.html, deploy/)")
    print("all targets met" if all_ok else "some targets NOT met (see the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

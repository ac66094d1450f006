"""The main job's final table (scripts/demo_report.py) from the files the job writes."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _demo_report():
    spec = importlib.util.spec_from_file_location("demo_report", ROOT / "scripts/demo_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _stage(name, params, ms1, ms16, miou):
    return dict(
        name=name,
        params=params,
        file_bytes=params * 4,
        latency_ms={"1": ms1, "16": ms16},
        metrics={"demo_voc/segmentation/mIoU": miou},
    )


@pytest.mark.parametrize("miou,verdict", [(70.0, "all targets met"), (50.0, "NOT met")])
def test_final_table_any_thread_count(tmp_path, capsys, miou, verdict):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("demo_targets = [('demo_voc/segmentation/mIoU', '>=', 60.0)]\n")
    work = tmp_path / "work"
    _write(work / "metrics_history.json", {"iter 0": {"demo_voc/segmentation/mIoU": 1.0}})
    _write(work / "test" / "metrics.json", {"demo_voc/segmentation/mIoU": miou})
    stages = [
        _stage("fp32", 10_000_000, 10.0, 4.0, miou),
        _stage("pruned", 5_000_000, 5.0, 2.0, 69),
    ]
    ratios = {"fp32": {"latency_1t": 1.0, "latency_16t": 1.0}}
    ratios["pruned"] = {"latency_1t": 0.5, "latency_16t": 0.5}
    _write(work / "deploy" / "report.json", {"stages": stages, "ratios_to_fp32": ratios})
    (work / "timings.txt").write_text("data 10\ntrain 70\n")

    assert _demo_report().main(["--work-dir", str(work), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "ms 1 thr" in out and "ms 16 thr" in out  # not only 1 and 2 threads
    pruned = next(line for line in out.splitlines() if line.startswith("pruned"))
    assert "5.00 (0.50x)" in pruned and "2.00 (0.50x)" in pruned and "69.0000" in pruned
    assert "time per step: data 10 s, train 60 s; total 1 min 10 s" in out
    assert verdict in out

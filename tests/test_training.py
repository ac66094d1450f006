"""Training on the mmengine Runner: learning, crash-safe resume, DDP, non-finite losses."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from multitask_vision.checkpoint import CheckpointError, load_checkpoint_file
from multitask_vision.data.demo import make_demo_data
from multitask_vision.registry import DATASETS, MODELS
from multitask_vision.training import build_runner, register_all_modules

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests/configs/tiny_det_seg_depth.py")


@pytest.fixture(scope="module")
def demo_cwd(tmp_path_factory):
    """A directory holding data/demo (a small demo tree), where the tiny config runs."""
    d = tmp_path_factory.mktemp("tiny_run")
    make_demo_data(str(d / "data" / "demo"), num_train=16, num_val=6, log=lambda *a: None)
    return d


def _train_cmd(work_dir, *extra):
    return [sys.executable, str(ROOT / "train.py"), "--config", TINY, "--work-dir",
            str(work_dir), *extra]  # fmt: skip


def _state(path):
    return load_checkpoint_file(path)["state_dict"]


def _fixed_batches(cfg):
    """One detection+segmentation batch and one depth batch, through the real pipeline."""
    register_all_modules()
    datasets = [DATASETS.build(d) for d in cfg.train_dataloader.dataset.datasets]
    voc, nyu = datasets
    voc_idx = [i for i in range(len(voc)) if "segmentation" in voc.get_data_info(i)["tasks"]][:2]
    batches = []
    for ds, idx in ((voc, voc_idx), (nyu, [0, 1])):
        items = [ds[i] for i in idx]
        batches.append(dict(inputs=[it["inputs"] for it in items],
                            data_samples=[it["data_samples"] for it in items]))  # fmt: skip
    return batches


def test_overfits_a_fixed_batch(demo_cwd, monkeypatch):
    monkeypatch.chdir(demo_cwd)
    torch.manual_seed(0)
    cfg = Config.fromfile(TINY)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    batches = _fixed_batches(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def task_losses():
        out = {}
        for batch in batches:
            data = model.data_preprocessor(
                dict(inputs=list(batch["inputs"]),
                     data_samples=[s.clone() for s in batch["data_samples"]]), True
            )  # fmt: skip
            losses = model(**data, mode="loss")
            for task in model.tasks:
                terms = [v for k, v in losses.items() if k.startswith(f"loss_{task}_")]
                if terms:
                    out[task] = sum(terms)
        return out

    first = {k: float(v) for k, v in task_losses().items()}
    assert set(first) == {"detection", "segmentation", "depth"}
    for _ in range(40):
        losses = task_losses()
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    last = {k: float(v) for k, v in task_losses().items()}
    for task in first:  # each task's loss at least halves on a batch it can memorise
        assert last[task] < 0.5 * first[task], (task, first[task], last[task])


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(demo_cwd, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(full), cwd=demo_cwd, check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(_train_cmd(killed), cwd=demo_cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not (killed / "iter_4.pth").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "iter_4.pth").exists()
    assert not (killed / "iter_8.pth").exists(), "the run finished before it was killed"
    # No partial file ever appears under a final name: what is there loads.
    latest = killed / "latest.pth"
    it = load_checkpoint_file(latest)["meta"]["iter"]
    assert it in (4, 6)

    done = subprocess.run(_train_cmd(killed, "--resume"), cwd=demo_cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _state(full / "iter_8.pth"), _state(killed / "iter_8.pth")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


@pytest.mark.slow
def test_ddp_two_processes_same_tasks_and_weights(demo_cwd, tmp_path):
    work = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29517", str(ROOT / "train.py"), "--config", TINY,
           "--work-dir", str(work), "--launcher", "pytorch"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=demo_cwd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    traces = []
    for rank in (0, 1):
        lines = [
            json.loads(x) for x in (work / f"task_trace_rank{rank}.jsonl").read_text().splitlines()
        ]
        traces.append(lines)
    steps = [[(r["iter"], r["dataset"], r["tasks"]) for r in t if "iter" in r] for t in traces]
    assert len(steps[0]) == 8
    assert steps[0] == steps[1]  # every rank ran the same dataset and heads at every step
    assert {tuple(s[2]) for s in steps[0]} >= {("depth",)}  # heads were skipped on some steps
    assert any("detection" in s[2] for s in steps[0])
    sums = [t[-1]["checksum"] for t in traces]
    assert sums[0] == sums[1]  # identical weights on both ranks after training


def test_resume_from_a_checkpoint_of_another_model_lists_keys(demo_cwd, tmp_path, monkeypatch):
    monkeypatch.chdir(demo_cwd)
    cfg = Config.fromfile(TINY)
    cfg.model.blocks[-1]["args"]["channels"] = 4  # another depth head
    model = MODELS.build(cfg.model)
    bad = tmp_path / "other.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, bad)
    with pytest.raises(
        CheckpointError,
        match=r"does not match the config's model; .*another "
        r"shape: blocks.depth_head",
    ):
        build_runner(Config.fromfile(TINY), work_dir=str(tmp_path / "w"), resume=str(bad),
                     config_path=TINY)  # fmt: skip


def test_resume_errors(demo_cwd, tmp_path, monkeypatch):
    monkeypatch.chdir(demo_cwd)
    with pytest.raises(FileNotFoundError, match=r"--resume: no .*latest.pth to resume from"):
        build_runner(Config.fromfile(TINY), work_dir=str(tmp_path / "empty"), resume="auto")
    truncated = tmp_path / "cut.pth"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(
        CheckpointError,
        match=r"--resume: checkpoint .*cut.pth' is corrupt or "
        r"truncated",
    ):
        build_runner(Config.fromfile(TINY), work_dir=str(tmp_path / "w"), resume=str(truncated))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"weights-only loading refuses"):
        load_checkpoint_file(path)


def _nan_model(mode):
    cfg = Config.fromfile(TINY)
    cfg.model.nonfinite_loss = mode
    model = MODELS.build(cfg.model)
    model.blocks["depth_head"].register_forward_hook(lambda m, i, o: o * float("nan"))
    return cfg, model


def test_nonfinite_loss_stops_with_task_term_and_step(demo_cwd, monkeypatch):
    from mmengine.optim import OptimWrapper

    monkeypatch.chdir(demo_cwd)
    cfg, model = _nan_model("error")
    depth_batch = _fixed_batches(cfg)[1]
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step \d+: loss_depth_silog"):
        model.train_step(depth_batch, ow)


def test_nonfinite_loss_skip_mode_counts_and_does_not_update(demo_cwd, monkeypatch):
    from mmengine.optim import OptimWrapper

    monkeypatch.chdir(demo_cwd)
    cfg, model = _nan_model("skip")
    depth_batch = _fixed_batches(cfg)[1]
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log = model.train_step(depth_batch, ow)
    log = model.train_step(depth_batch, ow)
    assert float(log["skipped_steps"]) == 2
    after = dict(model.named_parameters())  # BN statistics move in a forward; weights must not
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_message_hub_history_survives_weights_only_checkpoints(tmp_path):
    from mmengine.logging import HistoryBuffer

    from multitask_vision.hooks.safe_checkpoint import from_safe_message_hub, to_safe_message_hub

    buf = HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2], max_length=10)
    state = dict(log_scalars={"train/loss": buf}, runtime_info={"iter": 3}, resumed_keys={})
    path = tmp_path / "ckpt.pth"
    torch.save({"message_hub": state}, path)
    with pytest.raises(CheckpointError, match="weights-only loading refuses"):
        load_checkpoint_file(path)  # mmengine's raw HistoryBuffer pickles builtins.getattr
    torch.save({"message_hub": to_safe_message_hub(state)}, path)
    back = from_safe_message_hub(load_checkpoint_file(path)["message_hub"])["log_scalars"]
    restored = back["train/loss"]
    assert isinstance(restored, HistoryBuffer)
    assert restored.data[0].tolist() == [1.0, 2.0, 4.0]
    assert restored.data[1].tolist() == [1, 1, 2]
    assert restored.max_length == 10

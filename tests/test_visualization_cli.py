"""visualize.py end to end on generated demo data with the tiny model, its errors, and the
validation hook inside a real mmengine Runner (TensorBoard backend included)."""

import glob
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from PIL import Image

import multitask_vision.visualization  # noqa: F401  (registers the hook)
from multitask_vision.checkpoint import CheckpointError
from multitask_vision.data.demo import make_demo_data
from multitask_vision.registry import DATASETS, MODELS
from multitask_vision.training import build_runner, register_all_modules
from multitask_vision.visualization.figure import display_shape
from multitask_vision.visualization.report import build_for_visualization

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests/configs/tiny_det_seg_depth.py")
N = 4  # the demo val split: 4 images per dataset, the last VOC one with a mask


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(cwd holding data/demo, a checkpoint of the tiny model with seeded random weights)."""
    d = tmp_path_factory.mktemp("vis_demo")
    make_demo_data(str(d / "data" / "demo"), num_train=6, num_val=4, log=lambda *a: None)
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY).model)
    ckpt = d / "tiny.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, ckpt)
    return d, str(ckpt)


def _visualize(*argv):
    import importlib.util

    spec = importlib.util.spec_from_file_location("visualize", ROOT / "visualize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(argv))


def _rgb(path):
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def test_cli_writes_figures_contact_sheets_and_index(demo, tmp_path, monkeypatch, capsys):
    cwd, ckpt = demo
    monkeypatch.chdir(cwd)
    out = tmp_path / "vis"
    assert _visualize("--config", TINY, "--checkpoint", ckpt, "--num-samples", str(N),
                      "--out-dir", str(out), "--score-thr", "0.3") == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert f"index: {out / 'index.html'}" in printed and f"wrote {2 * N} figures" in printed

    voc, nyu = DATASETS.build(Config.fromfile(TINY).val_dataloader.dataset).datasets
    for name, ds in (("demo_voc", voc), ("demo_nyu", nyu)):
        # the first N samples of EACH dataset, not the first N of the concatenation
        ids = [ds.get_data_info(i)["img_id"] for i in range(N)]
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(f"{i}.png" for i in ids)
        sheet = _rgb(out / f"contact_sheet_{name}.png")
        assert sheet.shape == (8 + 300 + 16 + 8, 8 + N * (400 + 8), 3)

    # A VOC figure: 3 task rows of the image at display size, and pixels that say what they show.
    info = next(voc.get_data_info(i) for i in range(N)
                if "segmentation" in voc.get_data_info(i)["tasks"])  # fmt: skip
    fig = _rgb(out / "demo_voc" / f"{info['img_id']}.png")
    h, w = display_shape((info["height"], info["width"]))
    assert min(h, w) == 256
    assert 6 + 16 + 3 * (6 + 16 + h) + 6 <= fig.shape[0] <= 6 + 32 + 3 * (6 + 48 + h) + 6
    assert 6 + 3 * w + 2 * 6 + 6 <= fig.shape[1] <= 6 + 3 * w + 2 * 6 + 6 + 2 * 80
    y0 = 6 + 16 + 6 + 16  # margin, title, gap, caption
    shown = cv2.resize(_rgb(info["img_path"]), (w, h), interpolation=cv2.INTER_LINEAR)
    assert (fig[y0 : y0 + h, 6 : 6 + w] == shown).all()  # the input panel is the image
    y1 = y0 + h + 6 + 16  # the segmentation row (the detection row has no legend)
    seg_gt = fig[y1 : y1 + h, 6 + w + 6 : 6 + 2 * w + 6]
    mask = np.array(Image.open(info["seg_map_path"]))  # palette PNG: class indices
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    changed = (seg_gt != fig[y1 : y1 + h, 6 : 6 + w]).any(axis=2)
    assert (changed == (mask != 0)).mean() > 0.995  # overlay exactly on the mask (but rounding)
    assert changed.any() and not changed[mask == 0].any()
    det_gt = fig[y0 : y0 + h, 6 + w + 6 : 6 + 2 * w + 6]
    sx, sy = w / info["width"], h / info["height"]
    for inst in info["instances"]:
        x1, y1_, x2, y2 = (round(v * f) for v, f in zip(inst["bbox"], (sx, sy) * 2, strict=True))
        outline = np.zeros((h, w), bool)
        outline[y1_ : y2 + 1, x1 : x2 + 1] = True
        outline[y1_ + 1 : y2, x1 + 1 : x2] = False
        box_changed = (det_gt != shown).any(axis=2)[outline]
        assert box_changed.mean() > (0.4 if inst["ignore_flag"] else 0.99)  # dashed if difficult

    page = (out / "index.html").read_text()
    links = re.findall(r'<img src="([^"]+)"', page)
    assert len(links) == 2 * N and all((out / link).is_file() for link in links)
    assert 'href="contact_sheet_demo_nyu.png"' in page


def test_cli_errors_checkpoint_mismatch_unknown_task_empty_split(demo, tmp_path, monkeypatch):
    cwd, _ = demo
    monkeypatch.chdir(cwd)
    cfg = Config.fromfile(TINY)
    cfg.model.blocks[-1]["args"]["channels"] = 4  # another depth head
    other = tmp_path / "other.pth"
    torch.save({"state_dict": MODELS.build(cfg.model).state_dict()}, other)
    with pytest.raises(CheckpointError, match=r"does not match the config's model; .*another "
                       r"shape: blocks.depth_head"):  # fmt: skip
        _visualize("--config", TINY, "--checkpoint", str(other), "--out-dir", str(tmp_path))

    cfg = Config.fromfile(TINY)
    cfg.model.blocks[-1]["task"] = "normals"
    cfg.model.losses = ConfigDict(detection=dict(weight=1.0), segmentation=dict(weight=1.0),
                                  normals=dict(weight=1.0))  # fmt: skip
    with pytest.raises(
        KeyError,
        match=r"no visualizer is registered for task 'normals' \(head "
        r"'depth_head'\).*Registered visualizers: depth, detection, segmentation",
    ):
        build_for_visualization(cfg, "never_read.pth")  # checked before the checkpoint

    ckpt = demo[1]
    cfg = Config.fromfile(TINY)
    cfg.val_dataloader.dataset.datasets[1].update(indices=0, serialize_data=False)
    with pytest.raises(ValueError, match=r"--split 'val': val_dataloader.dataset has no samples "
                       r"in dataset\(s\) \['demo_nyu'\]"):  # fmt: skip
        build_for_visualization(cfg, ckpt)
    cfg.val_dataloader.dataset.datasets[1]["serialize_data"] = True  # mmengine's own error
    with pytest.raises(ValueError, match=r"--split 'val' \(val_dataloader.dataset\): a dataset "
                       r"has no samples"):  # fmt: skip
        build_for_visualization(cfg, ckpt)
    voc_root = cwd / "data/demo/VOCdevkit/VOC2012"
    for folder in ("Main", "Segmentation"):
        (voc_root / "ImageSets" / folder / "empty.txt").write_text("")
    cfg = Config.fromfile(TINY)
    cfg.val_dataloader.dataset.datasets[0]["split"] = "empty"
    with pytest.raises(ValueError, match=r"--split 'val' \(val_dataloader.dataset\): .*"
                       r"empty.txt: split file is empty"):  # fmt: skip
        build_for_visualization(cfg, ckpt)
    cfg = Config.fromfile(TINY)
    cfg.test_dataloader = None
    with pytest.raises(KeyError, match=r"the config has no test_dataloader; splits it defines: "
                       r"val, train"):  # fmt: skip
        build_for_visualization(cfg, ckpt, split="test")


def test_hook_logs_figures_to_tensorboard_every_interval(demo, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cwd, ckpt = demo
    monkeypatch.chdir(cwd)
    cfg = Config.fromfile(TINY)
    k = 2  # samples per dataset
    cfg.custom_hooks = [dict(type="MultiTaskVisualizationHook", interval=2, num_samples=k,
                             save_dir="vis")]  # fmt: skip
    cfg.vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
    cfg.visualizer = dict(type="Visualizer", vis_backends=cfg.vis_backends, name="vis_hook_test")
    work = tmp_path / "work"
    runner = build_runner(cfg, work_dir=str(work), load_from=ckpt)
    calls = []
    add_image = runner.visualizer.add_image
    monkeypatch.setattr(
        runner.visualizer,
        "add_image",
        lambda name, image, step=0: (calls.append(name), add_image(name, image, step)),
    )
    for _ in range(2):  # interval=2: the 1st validation is drawn, the 2nd is not
        runner.val()
    assert len(calls) == 2 * k
    names = sorted(set(calls))
    assert len(names) == 2 * k and all(re.fullmatch(r"val_demo_(voc|nyu)_[\w.-]+", n)
                                       for n in names)  # fmt: skip
    saved = sorted(glob.glob(str(work / "vis/iter_0/*/*.png")))
    assert len(saved) == 2 * k
    events = glob.glob(str(work / "**/events.out.tfevents*"), recursive=True)
    assert events
    acc = EventAccumulator(os.path.dirname(events[0]), size_guidance={"images": 0})
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == names
    first = acc.Images(names[0])[0]
    png = cv2.imdecode(np.frombuffer(first.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    dataset = names[0].split("_")[2]
    img_id = names[0].split(f"val_demo_{dataset}_", 1)[1]
    on_disk = cv2.imread(str(work / f"vis/iter_0/demo_{dataset}/{img_id}.png"))
    assert png.shape == on_disk.shape and (first.height, first.width) == on_disk.shape[:2]

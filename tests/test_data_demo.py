"""The demo data: deterministic, idempotent, in the real formats, consistent ground truth."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

from multitask_vision.data import train_pipeline
from multitask_vision.data.demo import demo_nyu_dataset, demo_voc_dataset, make_demo_data
from multitask_vision.registry import DATASETS, MODELS

QUIET = dict(log=lambda *_: None)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope("mtv")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("demo"))
    make_demo_data(root, seed=0, num_train=60, num_val=16, **QUIET)
    return root


def digest(root, rel):
    return hashlib.md5(Path(root, rel).read_bytes()).hexdigest()


def test_deterministic_and_idempotent(demo, tmp_path):
    again = str(tmp_path / "again")
    make_demo_data(again, seed=0, num_train=60, num_val=16, **QUIET)
    for rel in ("VOCdevkit/VOC2012/JPEGImages/2026_000007.jpg",
                "VOCdevkit/VOC2012/Annotations/2026_000007.xml",
                "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt",
                "nyu_depth_v2/depth/0011.png", "nyu_depth_v2/test.txt"):  # fmt: skip
        assert digest(demo, rel) == digest(again, rel)
    logs = []
    manifest = make_demo_data(again, seed=0, num_train=60, num_val=16, log=logs.append)
    assert "demo data already complete" in logs[0] and manifest["complete"] is True
    other = make_demo_data(str(tmp_path / "other"), seed=1, num_train=60, num_val=16, **QUIET)
    assert other["settings"]["seed"] == 1
    assert digest(demo, "nyu_depth_v2/depth/0011.png") != digest(
        str(tmp_path / "other"), "nyu_depth_v2/depth/0011.png"
    )


def test_refuses_to_overwrite_a_foreign_tree(tmp_path):
    (tmp_path / "nyu_depth_v2").mkdir()
    with pytest.raises(FileExistsError, match="not written by the demo generator"):
        make_demo_data(str(tmp_path), num_train=4, num_val=2, **QUIET)


def test_real_loaders_read_the_demo_voc_tree(demo):
    ds = DATASETS.build(demo_voc_dataset(demo, "train"))
    groups = {k: len(v) for k, v in ds.group_indices().items()}
    assert set(groups) == {("detection",), ("detection", "segmentation")}
    assert sum(groups.values()) == 60 and min(groups.values()) >= 15
    assert ds.metainfo["seg_classes"] == ("background", "circle", "square", "triangle", "cross")
    manifest = json.loads(Path(demo, "demo_manifest.json").read_text())
    assert manifest["voc"]["truncated"] > 0
    # Every pixel of class c in a mask lies in a box of class c (VOC 1-based inclusive boxes).
    loaded = DATASETS.build(
        demo_voc_dataset(
            demo, "train", pipeline=train_pipeline((160, 160), crop=False, photometric=False)
        )
    )
    for idx in ds.group_indices()[("detection", "segmentation")][:15]:
        info = ds.get_data_info(int(idx))
        mask = np.asarray(Image.open(info["seg_map_path"]))  # palette PNG: read the indices
        assert set(np.unique(mask).tolist()) <= {0, 1, 2, 3, 4, 255}
        assert (mask == 255).any()  # the boundary band
        covered = np.zeros_like(mask, bool)
        for inst in info["instances"]:
            x1, y1, x2, y2 = (int(v) for v in inst["bbox"])
            covered[y1 : y2 + 1, x1 : x2 + 1] |= True
            box_mask = mask[y1 : y2 + 1, x1 : x2 + 1]
            if not inst["ignore_flag"]:
                assert (box_mask == inst["bbox_label"] + 1).any()
        assert not ((mask > 0) & (mask < 255) & ~covered).any()
    sample = loaded[0]["data_samples"]
    assert sample.metainfo["dataset"] == "demo_voc"


def test_real_loaders_read_the_demo_nyu_tree(demo):
    ds = DATASETS.build(
        demo_nyu_dataset(
            demo,
            "train",
            pipeline=[
                dict(type="LoadImageFromFile"),
                dict(type="LoadMultiTaskAnnotations"),
                dict(type="PackMultiTaskInputs"),
            ],
        )
    )
    test = DATASETS.build(demo_nyu_dataset(demo, "test"))
    assert len(ds) == 60 and len(test) == 16
    invalid = []
    for i in range(10):
        s = ds[i]["data_samples"]
        depth = s.gt_depth_map.data[0].numpy()
        labels = s.gt_sem_seg.data[0].numpy()
        assert depth.shape == labels.shape == (120, 160)
        valid = depth > 0
        invalid.append(1 - valid.mean())
        assert depth[valid].min() > 0.5 and depth.max() < 12.0
        # The floor recedes: along a column, floor depth decreases strictly towards the bottom.
        col = 80
        rows = np.flatnonzero((labels[:, col] == 0) & valid[:, col])
        rows = rows[rows > rows.max() - 10]
        assert (np.diff(depth[rows, col]) < 0).all()
    assert 0.001 < np.mean(invalid) < 0.05  # Kinect-like holes, about 1 %


def test_runner_builds_the_multi_dataset_loader_from_config(demo):
    pipeline = train_pipeline((160, 128))
    cfg = dict(
        batch_size=4,
        num_workers=0,
        dataset=dict(type="MultiTaskConcatDataset", datasets=[
            demo_voc_dataset(demo, "train", pipeline=pipeline),
            demo_nyu_dataset(demo, "train", pipeline=pipeline)]),
        sampler=dict(type="MultiTaskGroupSampler", strategy="ratios", ratios=[1, 1]),
        batch_sampler=dict(type="MultiTaskGroupBatchSampler"),
    )  # fmt: skip
    loader = Runner.build_dataloader(cfg, seed=0)
    pre = MODELS.build(dict(type="MultiTaskDataPreprocessor"))
    seen = set()
    for _, batch in zip(range(8), loader, strict=False):
        out = pre(batch, training=True)
        metas = [s.metainfo for s in out["data_samples"]]
        kinds = {(m["dataset"], m["tasks"]) for m in metas}
        assert len(kinds) == 1
        seen |= kinds
        assert out["inputs"].shape == (4, 3, 128, 160)
    assert ("demo_nyu", ("depth", "segmentation")) in seen
    assert {d for d, _ in seen} == {"demo_voc", "demo_nyu"}

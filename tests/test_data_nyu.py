"""NYU: the .mat converter (on a small .mat with the real structure) and both loader layouts."""

import os
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from multitask_vision.data import BadSampleError, NYUDepthDataset
from multitask_vision.data.nyu_convert import convert_nyu_labeled, main
from multitask_vision.testing import (
    write_class_mappings,
    write_depth_png,
    write_nyu_labeled_tree,
    write_nyu_mat,
    write_nyu_splits,
)

PIPELINE = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadMultiTaskAnnotations"),
    dict(type="PackMultiTaskInputs"),
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope("mtv")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A 5-frame labeled .mat (24x32), split 1,3,4 train / 2,5 test, converted once."""
    tmp = tmp_path_factory.mktemp("nyu")
    mat = str(tmp / "nyu_depth_v2_labeled.mat")
    frames = write_nyu_mat(mat, n=5, h=24, w=32)
    splits = str(tmp / "splits.mat")
    write_nyu_splits(splits, train=[1, 3, 4], test=[2, 5])
    p40, p13, map40, map13 = write_class_mappings(str(tmp))
    out = str(tmp / "nyu_depth_v2")
    stats = convert_nyu_labeled(mat, splits, out, p40, p13, log=lambda *_: None)
    return dict(tmp=tmp, mat=mat, splits=splits, out=out, frames=frames, stats=stats,
                p40=p40, p13=p13, map40=map40, map13=map13)  # fmt: skip


def test_converter_writes_the_labeled_layout(converted):
    out, frames = converted["out"], converted["frames"]
    assert converted["stats"] == dict(train=3, test=2, written=5, skipped=0)
    assert Path(out, "train.txt").read_text().split() == ["0001", "0003", "0004"]
    assert Path(out, "test.txt").read_text().split() == ["0002", "0005"]
    i = 2  # frame 0003: the .mat stores it transposed; the PNGs are H x W
    rgb = cv2.imread(osp.join(out, "rgb", "0003.png"))[..., ::-1]
    np.testing.assert_array_equal(rgb, frames["images"][i])
    depth = cv2.imread(osp.join(out, "depth", "0003.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (24, 32)
    np.testing.assert_array_equal(depth, np.round(frames["depths"][i] * 1000).astype(np.uint16))
    raw = cv2.imread(osp.join(out, "depth_raw", "0003.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(raw == 0, frames["rawDepths"][i] == 0)
    labels = frames["labels"][i].astype(np.int64)
    label40 = cv2.imread(osp.join(out, "label40", "0003.png"), cv2.IMREAD_UNCHANGED)
    expected40 = np.where(labels == 0, 255, converted["map40"][np.maximum(labels, 1) - 1] - 1)
    np.testing.assert_array_equal(label40, expected40)
    label13 = cv2.imread(osp.join(out, "label13", "0003.png"), cv2.IMREAD_UNCHANGED)
    expected13 = np.where(labels == 0, 255, converted["map13"][np.minimum(expected40, 39)] - 1)
    np.testing.assert_array_equal(label13, expected13)


def test_converter_resumes(converted):
    os.remove(osp.join(converted["out"], "rgb", "0004.png"))
    stats = convert_nyu_labeled(
        converted["mat"], converted["splits"], converted["out"], converted["p40"],
        converted["p13"], log=lambda *_: None,
    )  # fmt: skip
    assert stats == dict(train=3, test=2, written=1, skipped=4)


def test_converter_errors(converted, tmp_path, capsys):
    bogus = tmp_path / "half.mat"
    bogus.write_bytes(Path(converted["mat"]).read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"{bogus}: not an HDF5 \\(MATLAB v7.3\\) file"):
        convert_nyu_labeled(str(bogus), converted["splits"], str(tmp_path / "o"))
    splits = str(tmp_path / "splits.mat")
    write_nyu_splits(splits, train=[1, 9], test=[2])
    with pytest.raises(ValueError, match="trainNdxs holds indices 1..9 outside 1..5"):
        convert_nyu_labeled(converted["mat"], splits, str(tmp_path / "o"))
    assert main([str(bogus), converted["splits"], str(tmp_path / "o")]) == 1
    assert "not an HDF5" in capsys.readouterr().err


def test_labeled_layout_loads_metres_and_classes(converted):
    train = NYUDepthDataset(converted["out"], split="train", tasks=["depth", "segmentation"],
                            pipeline=PIPELINE)  # fmt: skip
    test = NYUDepthDataset(converted["out"], split="test")
    assert len(train) == 3 and len(test) == 2
    assert train.metainfo["seg_classes"][:3] == ("wall", "floor", "cabinet")
    assert len(train.metainfo["seg_classes"]) == 40
    assert test.metainfo["gt_key_tasks"] == {"gt_depth_map": "depth"}
    s = train[1]["data_samples"]
    assert s.metainfo["img_id"] == "0003" and s.metainfo["tasks"] == ("depth", "segmentation")
    np.testing.assert_allclose(
        s.gt_depth_map.data[0].numpy(), converted["frames"]["depths"][2], atol=1e-6
    )
    assert s.gt_sem_seg.data.shape == (1, 24, 32)
    raw = NYUDepthDataset(converted["out"], depth_dir="depth_raw", pipeline=PIPELINE)[1]
    depth = raw["data_samples"].gt_depth_map.data[0].numpy()
    np.testing.assert_array_equal(depth == 0, converted["frames"]["rawDepths"][2] == 0)
    nyu13 = NYUDepthDataset(
        converted["out"], tasks=["depth", "segmentation"], seg_map_dir="label13"
    )
    assert nyu13.metainfo["seg_classes"][:3] == ("bed", "books", "ceiling")


def bts_tree(tmp_path, lines, depth_dtype=np.uint16):
    root = tmp_path / "nyu_depth_v2"
    depth = np.zeros((20, 30), np.float32)
    depth[:, 10:] = 1.234
    for scene, k in (("kitchen_0028b", 45), ("bathroom_0001", 7)):
        folder = root / "sync" / scene
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"rgb_{k:05d}.jpg"), np.full((20, 30, 3), 90, np.uint8))
        if depth_dtype == np.uint16:
            write_depth_png(str(folder / f"sync_depth_{k:05d}.png"), depth)
        else:
            cv2.imwrite(str(folder / f"sync_depth_{k:05d}.png"), np.full((20, 30), 9, np.uint8))
    (root / "files.txt").write_text("".join(line + "\n" for line in lines))
    return str(root)


BTS_LINES = [
    "/kitchen_0028b/rgb_00045.jpg /kitchen_0028b/sync_depth_00045.png 518.8579",
    "/bathroom_0001/rgb_00007.jpg /bathroom_0001/sync_depth_00007.png 518.8579",
]


def test_bts_layout(tmp_path):
    root = bts_tree(tmp_path, BTS_LINES)
    ds = NYUDepthDataset(root, layout="bts", split_file="files.txt", img_dir="sync",
                         depth_dir="sync", pipeline=PIPELINE)  # fmt: skip
    assert len(ds) == 2 and ds.get_data_info(0)["focal"] == pytest.approx(518.8579)
    depth = ds[0]["data_samples"].gt_depth_map.data[0]
    assert depth[0, 0].item() == 0.0  # invalid stays 0
    assert depth[0, 15].item() == pytest.approx(1.234)
    assert ds[0]["data_samples"].metainfo["img_id"] == "kitchen_0028b/rgb_00045"


def test_bts_layout_bad_inputs(tmp_path):
    root = bts_tree(tmp_path, [BTS_LINES[0], "/bathroom_0001/rgb_00007.jpg None 518.8579"])
    kw = dict(layout="bts", split_file="files.txt", img_dir="sync", depth_dir="sync")
    with pytest.raises(
        BadSampleError, match=r"files.txt:2: bathroom_0001/rgb_00007.jpg has no ground-truth depth"
    ):
        NYUDepthDataset(root, **kw)  # fmt: skip
    root = bts_tree(tmp_path / "b", ["just_one_path.jpg"])
    with pytest.raises(
        BadSampleError, match=r"files.txt:1: expected 'rgb_path depth_path \[focal\]'"
    ):
        NYUDepthDataset(root, **kw)
    root = bts_tree(tmp_path / "c", BTS_LINES, depth_dtype=np.uint8)
    ds = NYUDepthDataset(root, pipeline=PIPELINE, **kw)
    with pytest.raises(
        BadSampleError,
        match=r"sync_depth_00045.png: depth map is uint8 \(8-bit\); expected a 16-bit PNG",
    ):
        ds[0]  # fmt: skip
    with pytest.raises(ValueError, match="layout='bts' has depth only"):
        NYUDepthDataset(root, layout="bts", split_file="f.txt", tasks=["depth", "segmentation"])


def test_labeled_layout_bad_inputs(tmp_path):
    depths = {
        "0001": np.full((12, 16), 2.0, np.float32),
        "0002": np.full((12, 16), 2.0, np.float32),
    }
    root = write_nyu_labeled_tree(
        str(tmp_path / "n"), depths, {"train": ["0001", "0002"], "test": []}
    )
    with pytest.raises(ValueError, match=r"test.txt: split file is empty"):
        NYUDepthDataset(root, split="test")
    with pytest.raises(
        FileNotFoundError,
        match=r"no label13/ folder under .*; the converter writes label40/ and label13/ only",
    ):
        NYUDepthDataset(root, tasks=["depth", "segmentation"], seg_map_dir="label13")  # fmt: skip
    write_depth_png(osp.join(root, "depth", "0002.png"), np.ones((10, 16), np.float32))
    ds = NYUDepthDataset(root, pipeline=PIPELINE)
    with pytest.raises(
        BadSampleError, match=r"0002.png: depth map is 16x10 but its image .*0002.png is 16x12"
    ):
        ds[1]  # fmt: skip
    os.remove(osp.join(root, "rgb", "0001.png"))
    with pytest.raises(BadSampleError, match=r"rgb/0001.png: image file not found"):
        NYUDepthDataset(root)

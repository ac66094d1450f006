"""VOCMultitaskDataset on a VOCdevkit tree written in the real format, and its bad inputs."""

import os
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import multitask_vision.data.bad_samples as bad_samples_module
import multitask_vision.data.base as base_module
from multitask_vision.data import BadSampleError, VOCMultitaskDataset
from multitask_vision.testing import VOCImage, write_voc_tree

DOG, CAT, PERSON = 11, 7, 14  # indices in VOC_CLASSES; segmentation labels are index + 1

LOAD = [dict(type="LoadImageFromFile"), dict(type="LoadMultiTaskAnnotations")]
TRAIN = [*LOAD, dict(type="PackMultiTaskInputs")]
TEST = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(120, 120), keep_ratio=True),
    dict(type="LoadMultiTaskAnnotations"),
    dict(type="PackMultiTaskInputs"),
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope("mtv")


def dog_mask():
    """60x40 mask: the dog on rows 5..24, cols 10..29, a 1-px 255 band around it."""
    mask = np.zeros((40, 60), np.uint8)
    mask[4:26, 9:31] = 255
    mask[5:25, 10:30] = DOG + 1
    mask[5, 10:30] = 255  # band inside the top edge too, as VOC's
    return mask


def images(**overrides):
    dog = dict(name="dog", xmin=11, ymin=6, xmax=30, ymax=25, truncated=1)
    cat = dict(name="cat", xmin=31, ymin=11, xmax=50, ymax=30, difficult=1)
    first = dict(img_id="2008_000001", w=60, h=40, objects=[dog, cat], mask=dog_mask())
    first.update(overrides)
    return [
        VOCImage(**first),
        VOCImage("2008_000002", 50, 50, [dict(name="person", xmin=1, ymin=1, xmax=50, ymax=50)]),
        VOCImage("2008_000003", 40, 30, [], mask=np.zeros((30, 40), np.uint8), seed=3),
        VOCImage("2008_000004", 40, 30, [dict(name="cat", xmin=2, ymin=2, xmax=9, ymax=9)],
                 mask=np.full((30, 40), CAT + 1, np.uint8), seed=4),
    ]  # fmt: skip


def make_tree(tmp_path, imgs=None, det=None, seg=None):
    root = str(tmp_path / "VOCdevkit" / "VOC2012")
    ids = ["2008_000001", "2008_000002", "2008_000004"]
    det = det if det is not None else {"train": ids}
    seg = seg if seg is not None else {"train": ["2008_000001", "2008_000003", "2008_000004"]}
    return write_voc_tree(root, imgs or images(), det, seg)


def test_index_tasks_groups_and_boxes(tmp_path):
    ds = VOCMultitaskDataset(make_tree(tmp_path), split="train")
    assert len(ds) == 4
    assert {k: v.tolist() for k, v in ds.group_indices().items()} == {
        ("detection",): [1],
        ("detection", "segmentation"): [0, 2],
        ("segmentation",): [3],  # listed for segmentation only: no boxes are read
    }
    info = ds.get_data_info(0)
    assert [i["bbox"] for i in info["instances"]] == [[10, 5, 29, 24], [30, 10, 49, 29]]
    assert [i["bbox_label"] for i in info["instances"]] == [DOG, CAT]
    assert [i["ignore_flag"] for i in info["instances"]] == [0, 1]
    assert [i["truncated"] for i in info["instances"]] == [1, 0]
    assert (info["width"], info["height"]) == (60, 40)
    assert "instances" not in ds.get_data_info(3)
    meta = ds.metainfo
    assert len(meta["classes"]) == 20 and meta["seg_classes"][0] == "background"
    assert meta["dataset_name"] == "voc" and meta["tasks"] == ("detection", "segmentation")
    assert meta["gt_key_tasks"] == {"gt_instances": "detection", "gt_sem_seg": "segmentation"}


def test_boxes_match_mmdet_voc_dataset(tmp_path):
    from mmdet.datasets import VOCDataset

    root = make_tree(tmp_path)
    ours = VOCMultitaskDataset(root, split="train", tasks=["detection"])
    theirs = VOCDataset(
        data_root=str(tmp_path / "VOCdevkit"),
        ann_file="VOC2012/ImageSets/Main/train.txt",
        data_prefix=dict(sub_data_root="VOC2012/"),
        pipeline=[],
    )
    assert len(ours) == len(theirs) == 3
    for i in range(3):
        a, b = ours.get_data_info(i)["instances"], theirs.get_data_info(i)["instances"]
        assert [x["bbox"] for x in a] == [x["bbox"] for x in b]
        assert [x["bbox_label"] for x in a] == [x["bbox_label"] for x in b]
        assert [x["ignore_flag"] for x in a] == [x["ignore_flag"] for x in b]


def test_train_sample_has_difficult_as_ignored_and_palette_mask_as_indices(tmp_path):
    ds = VOCMultitaskDataset(make_tree(tmp_path), split="train", pipeline=TRAIN)
    s = ds[0]["data_samples"]
    assert s.metainfo["tasks"] == ("detection", "segmentation")
    assert s.gt_instances.bboxes.tolist() == [[10, 5, 29, 24]]
    assert s.gt_instances.labels.tolist() == [DOG]
    assert s.ignored_instances.bboxes.tolist() == [[30, 10, 49, 29]]
    seg = s.gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(seg, dog_mask())  # indices, not palette colours; 255 kept
    assert sorted(np.unique(seg).tolist()) == [0, DOG + 1, 255]
    assert ds[1]["data_samples"].metainfo["tasks"] == ("detection",)
    assert not hasattr(ds[1]["data_samples"], "gt_sem_seg")


def test_test_pipeline_keeps_ground_truth_in_original_pixels(tmp_path):
    ds = VOCMultitaskDataset(make_tree(tmp_path), split="train", pipeline=TEST, test_mode=True)
    out = ds[0]
    s = out["data_samples"]
    assert out["inputs"].shape == (3, 80, 120)  # 60x40 resized x2 to fit 120x120
    assert s.metainfo["scale_factor"] == (2.0, 2.0) and s.metainfo["ori_shape"] == (40, 60)
    assert s.gt_instances.bboxes.tolist() == [[10, 5, 29, 24]]  # not scaled
    assert s.gt_sem_seg.data.shape == (1, 40, 60)


def test_custom_classes_define_segmentation_classes(tmp_path):
    meta = dict(classes=("dog", "cat", "person"), dataset_name="pets")
    ds = VOCMultitaskDataset(make_tree(tmp_path), tasks=["detection"], metainfo=meta)
    assert ds.metainfo["seg_classes"] == ("background", "dog", "cat", "person")
    assert [i["bbox_label"] for i in ds.get_data_info(0)["instances"]] == [0, 1]
    assert len(ds.metainfo["palette"]) == 3


# ---------------------------------------------------------------------------------- bad input
def bad_object(**box):
    return [dict(name="dog", xmin=11, ymin=6, xmax=30, ymax=25) | box]


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        (bad_object(xmax=5), r"object 0 \(dog\): degenerate box xmin=11 ymin=6 xmax=5 ymax=25"),
        (bad_object(xmax=61), r"box xmin=11 ymin=6 xmax=61 ymax=25 lies outside the 60x40 image"),
        (bad_object(ymin=0), r"lies outside the 60x40 image \(VOC boxes are 1-based"),
        (bad_object(name="dgo"), r"label 'dgo' is not in the class list \(did you mean 'dog'\?\)"),
        (bad_object(xmin="abc"), r"<bndbox> needs numeric xmin, ymin, xmax, ymax, got xmin='abc'"),
    ],
)  # fmt: skip
def test_bad_annotations_name_the_file(tmp_path, objects, message):
    root = make_tree(tmp_path, images(objects=objects))
    xml = osp.join(root, "Annotations", "2008_000001.xml")
    with pytest.raises(BadSampleError, match=f"^{xml}: .*{message}"):
        VOCMultitaskDataset(root)


def test_corrupt_xml_and_missing_files(tmp_path):
    root = make_tree(tmp_path)
    xml = osp.join(root, "Annotations", "2008_000002.xml")
    with open(xml, "w") as f:
        f.write("<annotation><size>")
    with pytest.raises(BadSampleError, match=f"^{xml}: not a valid XML annotation"):
        VOCMultitaskDataset(root)
    root = make_tree(tmp_path / "b")
    img = osp.join(root, "JPEGImages", "2008_000002.jpg")
    os.remove(img)
    with pytest.raises(BadSampleError, match=f"^{img}: image file not found"):
        VOCMultitaskDataset(root)
    root = make_tree(tmp_path / "c")
    xml = osp.join(root, "Annotations", "2008_000004.xml")
    os.remove(xml)
    with pytest.raises(BadSampleError, match=f"^{xml}: annotation file not found"):
        VOCMultitaskDataset(root)
    png = osp.join(root, "SegmentationClass", "2008_000003.png")
    os.remove(png)
    with pytest.raises(BadSampleError, match=f"^{png}: segmentation mask file not found"):
        VOCMultitaskDataset(root, tasks=["segmentation"])


def test_split_file_errors(tmp_path):
    root = make_tree(tmp_path, det={"train": [], "val": ["2008_000002"]})
    with pytest.raises(ValueError, match=r"ImageSets/Main/train.txt: split file is empty"):
        VOCMultitaskDataset(root, split="train")
    with pytest.raises(
        FileNotFoundError,
        match=r"test.txt: split file not found; split files in .*: train.txt, val.txt",
    ):
        VOCMultitaskDataset(root, split="test")
    with pytest.raises(FileNotFoundError, match=r"data_root '/nope' is not a folder; download VOC"):
        VOCMultitaskDataset("/nope")
    with pytest.raises(
        ValueError,
        match=r"unknown or unsupported task 'segmentaton' .*did you mean 'segmentation'\?",
    ):
        VOCMultitaskDataset(root, tasks=["detection", "segmentaton"])  # fmt: skip


def test_bad_masks_and_images_fail_when_read(tmp_path):
    root = make_tree(tmp_path, images(mask=np.zeros((20, 30), np.uint8)))
    ds = VOCMultitaskDataset(root, pipeline=TRAIN)
    png = osp.join(root, "SegmentationClass", "2008_000001.png")
    with pytest.raises(
        BadSampleError,
        match=f"^{png}: segmentation mask is 30x20 but its image .*2008_000001.jpg is 60x40",
    ):
        ds[0]  # fmt: skip
    root = make_tree(tmp_path / "b", images(mask=np.full((40, 60), 50, np.uint8)))
    with pytest.raises(
        BadSampleError, match=r"mask values \[50\] are neither a class index \(0..20\) nor 255"
    ):
        VOCMultitaskDataset(root, pipeline=TRAIN)[0]
    root = make_tree(tmp_path / "c")
    jpg = osp.join(root, "JPEGImages", "2008_000001.jpg")
    Path(jpg).write_bytes(Path(jpg).read_bytes()[:-300])
    with pytest.raises(BadSampleError, match=f"^{jpg}: cannot decode image .*corrupt, truncated"):
        VOCMultitaskDataset(root, pipeline=TRAIN)[0]
    root = make_tree(tmp_path / "d", images(w=64))  # XML says 64 wide, the JPEG is 64 too...
    __import__("cv2").imwrite(
        osp.join(root, "JPEGImages", "2008_000001.jpg"), np.zeros((40, 60, 3))
    )
    with pytest.raises(BadSampleError, match=r"<size> says 64x40 but the image .* is 60x40"):
        VOCMultitaskDataset(root, pipeline=TRAIN)[0]


def test_skip_mode_drops_bad_samples_with_one_summary(tmp_path, monkeypatch):
    logs = []
    monkeypatch.setattr(bad_samples_module, "print_log", lambda msg, **kw: logs.append(msg))
    imgs = images(objects=bad_object(name="dgo"))
    imgs[1]["objects"][0]["xmax"] = 99
    ds = VOCMultitaskDataset(make_tree(tmp_path, imgs), on_bad_sample="skip")
    assert [ds.get_data_info(i)["img_id"] for i in range(len(ds))] == ["2008_000004", "2008_000003"]
    assert len(logs) == 1
    assert "skipped 2 of 4 samples with bad annotations (on_bad_sample='skip')" in logs[0]
    assert "label 'dgo' is not in the class list" in logs[0] and "xmax=99" in logs[0]


def test_skip_mode_replaces_unreadable_training_sample_from_its_group(tmp_path, monkeypatch):
    logs = []
    monkeypatch.setattr(base_module, "print_log", lambda msg, **kw: logs.append(msg))
    root = make_tree(tmp_path)
    Path(root, "JPEGImages", "2008_000001.jpg").write_bytes(b"not a jpeg")
    ds = VOCMultitaskDataset(root, pipeline=TRAIN, on_bad_sample="skip")
    for _ in range(3):
        s = ds[0]["data_samples"]  # 2008_000001 (detection+segmentation) is unreadable
        assert s.metainfo["img_id"] == "2008_000004"  # the other detection+segmentation image
    assert len(logs) == 3 and "(3 skipped so far in this process" in logs[-1]
    ds = VOCMultitaskDataset(root, pipeline=TRAIN, on_bad_sample="skip", test_mode=True)
    with pytest.raises(BadSampleError, match="cannot decode image"):
        ds[0]  # evaluation never skips

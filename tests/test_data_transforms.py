"""Transforms keep image, boxes, masks and depth aligned; packing and the data preprocessor."""

import numpy as np
import pytest
import torch
from mmcv.image import rescale_size as mmcv_rescale_size
from mmengine.dataset import pseudo_collate

from multitask_vision.data import (
    MultiTaskDataPreprocessor,
    PackMultiTaskInputs,
    PhotoMetricDistortion,
    RandomCrop,
    RandomFlip,
    RandomResize,
    Resize,
)
from multitask_vision.data.transforms import _lut, crop_results, rescale_size

TASKS = ("depth", "detection", "segmentation")


def make_results(w=100, h=50):
    """A 100x50 sample; object 0 covers x in [10, 30), y in [5, 25): class 3, depth 2.5 m."""
    img = np.zeros((h, w, 3), np.uint8)
    img[5:25, 10:30] = 200
    seg = np.zeros((h, w), np.uint8)
    seg[5:25, 10:30] = 3
    seg[0, :] = 255
    depth = np.full((h, w), 4.0, np.float32)
    depth[5:25, 10:30] = 2.5
    depth[40:45, 60:70] = 0.0  # a hole: no sensor reading
    return dict(
        img=img,
        img_path="x.jpg",
        img_shape=(h, w),
        ori_shape=(h, w),
        gt_bboxes=np.array([[10, 5, 30, 25], [50, 10, 90, 40]], np.float32),
        gt_bboxes_labels=np.array([3, 1], np.int64),
        gt_ignore_flags=np.array([False, True]),
        gt_seg_map=seg,
        gt_depth_map=depth,
        tasks=TASKS,
    )


def region(mask):
    """(x1, y1, x2, y2) of the True pixels, continuous coordinates ([x1, x2) covered)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_resize_then_flip_exact_coordinates():
    r = Resize(scale=(200, 200), keep_ratio=True)(make_results())
    # keep ratio: factor min(200 / 100, 200 / 50) = 2 -> 200 x 100
    assert r["img"].shape == (100, 200, 3) and r["img_shape"] == (100, 200)
    assert r["scale_factor"] == (2.0, 2.0)
    np.testing.assert_array_equal(r["gt_bboxes"], [[20, 10, 60, 50], [100, 20, 180, 80]])
    assert region(r["gt_seg_map"] == 3) == [20, 10, 60, 50]
    assert region(r["gt_depth_map"] == 2.5) == [20, 10, 60, 50]
    assert region(r["gt_depth_map"] == 0) == [120, 80, 140, 90]
    assert region(r["img"][..., 0] > 100) == [20, 10, 60, 50]

    r = RandomFlip(prob=1.0)(r)
    assert r["flip"] is True and r["flip_direction"] == "horizontal"
    np.testing.assert_array_equal(r["gt_bboxes"], [[140, 10, 180, 50], [20, 20, 100, 80]])
    assert region(r["gt_seg_map"] == 3) == [140, 10, 180, 50]
    assert region(r["gt_depth_map"] == 2.5) == [140, 10, 180, 50]
    assert region(r["gt_depth_map"] == 0) == [60, 80, 80, 90]
    assert region(r["img"][..., 0] > 100) == [140, 10, 180, 50]
    assert (r["gt_seg_map"][:2] == 255).all()  # the ignore row followed the resize


def test_vertical_flip_boxes():
    r = RandomFlip(prob=1.0, direction="vertical")(make_results())
    np.testing.assert_array_equal(r["gt_bboxes"], [[10, 25, 30, 45], [50, 10, 90, 40]])
    assert region(r["gt_seg_map"] == 3) == [10, 25, 30, 45]


@pytest.mark.parametrize("factor", [0.37, 0.5, 1.7, 3.0])
def test_masks_and_depth_are_never_interpolated(factor):
    r = Resize(scale_factor=factor)(make_results())
    assert set(np.unique(r["gt_seg_map"]).tolist()) <= {0, 3, 255}
    # Depth values all come from the source: no blend of 2.5 m and 4 m, none across the 0 hole.
    assert set(np.unique(r["gt_depth_map"]).tolist()) <= {0.0, 2.5, 4.0}
    h, w = r["img"].shape[:2]
    assert (h, w) == (int(50 * factor + 0.5), int(100 * factor + 0.5))
    assert r["gt_seg_map"].shape == r["gt_depth_map"].shape == (h, w)


@pytest.mark.parametrize(
    ("size", "scale"),
    [
        ((500, 375), (512, 512)),
        ((353, 500), (1333, 800)),
        ((100, 50), (200, 200)),
        ((640, 480), (160, 128)),
    ],
)
def test_keep_ratio_size_matches_mmcv(size, scale):
    assert rescale_size(*size, scale) == mmcv_rescale_size(size, scale)


def test_rescale_size_numbers():
    assert rescale_size(500, 375, (512, 512)) == (512, 384)
    assert rescale_size(640, 480, (160, 128)) == (160, 120)


def test_random_resize_stays_in_ratio_range():
    np.random.seed(0)
    t = RandomResize(scale=(200, 100), ratio_range=(0.5, 1.5))
    widths = [t(make_results())["img"].shape[1] for _ in range(50)]
    assert min(widths) >= 100 and max(widths) <= 300
    assert max(widths) - min(widths) > 100  # it does vary


def test_crop_exact_boxes_and_maps():
    r = make_results()
    r["gt_bboxes"] = np.vstack([r["gt_bboxes"], [[80, 40, 95, 48]]]).astype(np.float32)
    r["gt_bboxes_labels"] = np.array([3, 1, 2])
    r["gt_ignore_flags"] = np.array([False, True, False])
    seg, depth = r["gt_seg_map"].copy(), r["gt_depth_map"].copy()
    crop_results(r, x0=20, y0=0, cw=50, ch=40)
    # box 0 is cut at the left edge, box 1 at the right, box 2 (x >= 80) falls outside: dropped.
    np.testing.assert_array_equal(r["gt_bboxes"], [[0, 5, 10, 25], [30, 10, 50, 40]])
    np.testing.assert_array_equal(r["gt_bboxes_labels"], [3, 1])
    np.testing.assert_array_equal(r["gt_ignore_flags"], [False, True])
    np.testing.assert_array_equal(r["gt_seg_map"], seg[0:40, 20:70])
    np.testing.assert_array_equal(r["gt_depth_map"], depth[0:40, 20:70])
    assert r["img_shape"] == (40, 50)
    assert region(r["gt_seg_map"] == 3) == [0, 5, 10, 25]


def test_random_crop_keeps_an_object():
    t = RandomCrop(crop_size=(50, 50), max_tries=2)
    for seed in range(30):
        np.random.seed(seed)
        r = make_results(200, 200)
        r["gt_bboxes"] = np.array([[180, 180, 195, 195]], np.float32)
        r["gt_bboxes_labels"], r["gt_ignore_flags"] = np.array([0]), np.array([False])
        r = t(r)
        assert r["img"].shape == (50, 50, 3)
        assert len(r["gt_bboxes"]) == 1
        x1, y1, x2, y2 = r["gt_bboxes"][0]
        assert 0 <= x1 < x2 <= 50 and 0 <= y1 < y2 <= 50


def test_photometric_distortion_changes_only_the_image():
    np.testing.assert_array_equal(
        _lut(np.array([[0, 100, 250]], np.uint8), 1.0, 10), [[10, 110, 255]]
    )
    np.testing.assert_array_equal(
        _lut(np.array([[0, 100, 250]], np.uint8), 0.5, -10), [[0, 40, 115]]
    )
    rng = np.random.default_rng(0)
    changed = 0
    for seed in range(8):
        np.random.seed(seed)
        r = make_results()
        r["img"] = rng.integers(0, 256, r["img"].shape, dtype=np.uint8)
        before, seg = r["img"].copy(), r["gt_seg_map"].copy()
        out = PhotoMetricDistortion()(r)
        assert out["img"].dtype == np.uint8 and out["img"].shape == before.shape
        np.testing.assert_array_equal(out["gt_seg_map"], seg)
        changed += int(not np.array_equal(out["img"], before))
    assert changed >= 6  # each op fires with p = 0.5; all four skip with p = 1/16


def test_pack_splits_ignored_boxes_and_types():
    out = PackMultiTaskInputs()(dict(make_results(), img_id="7", dataset="voc"))
    inputs, sample = out["inputs"], out["data_samples"]
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 50, 100)
    assert sample.gt_instances.bboxes.tolist() == [[10, 5, 30, 25]]
    assert sample.gt_instances.labels.tolist() == [3]
    assert sample.ignored_instances.bboxes.tolist() == [[50, 10, 90, 40]]
    assert sample.gt_instances.bboxes.dtype == torch.float32
    assert sample.gt_instances.labels.dtype == torch.int64
    assert sample.gt_sem_seg.data.shape == (1, 50, 100)
    assert sample.gt_sem_seg.data.dtype == torch.int64
    assert sample.gt_depth_map.data.dtype == torch.float32
    assert sample.gt_depth_map.data[0, 10, 15].item() == 2.5
    assert sample.metainfo["tasks"] == TASKS
    assert sample.metainfo["flip"] is False and sample.metainfo["scale_factor"] == (1.0, 1.0)
    assert sample.metainfo["dataset"] == "voc" and sample.metainfo["img_id"] == "7"


def test_pack_errors():
    r = make_results()
    del r["gt_seg_map"]
    with pytest.raises(KeyError, match="declares task 'segmentation' but has no gt_seg_map"):
        PackMultiTaskInputs()(r)
    r = make_results()
    r["img"] = r["img"].astype(np.float32)
    with pytest.raises(TypeError, match="image must be uint8 \\[H, W, 3\\] BGR, got float32"):
        PackMultiTaskInputs()(r)


def packed(w, h, tasks=TASKS, dataset="voc", value=(10, 20, 30)):
    r = make_results()
    r.update(img=np.zeros((h, w, 3), np.uint8), tasks=tasks, dataset=dataset)
    r["img"][:] = value
    r["gt_seg_map"] = np.full((h, w), 1, np.uint8)
    r["gt_depth_map"] = np.full((h, w), 3.0, np.float32)
    r["img_shape"] = (h, w)
    return PackMultiTaskInputs()(r)


def test_preprocessor_normalises_pads_and_sets_shapes():
    pre = MultiTaskDataPreprocessor()
    batch = pseudo_collate([packed(50, 40), packed(30, 64)])
    out = pre(batch, training=True)
    x, samples = out["inputs"], out["data_samples"]
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    # BGR (10, 20, 30) -> RGB (30, 20, 10), then (x - mean) / std per RGB channel.
    expected = [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375]
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), expected, rtol=1e-5)
    assert (x[0, :, 40:, :] == 0).all() and (x[0, :, :, 50:] == 0).all()  # padding: 0
    for s in samples:
        assert s.metainfo["batch_input_shape"] == (64, 64) and s.metainfo["pad_shape"] == (64, 64)
        assert s.gt_sem_seg.data.shape == (1, 64, 64)
    assert samples[0].metainfo["padding_size"] == [0, 14, 0, 24]
    seg, depth = samples[0].gt_sem_seg.data[0], samples[0].gt_depth_map.data[0]
    assert (seg[:40, :50] == 1).all() and (seg[40:] == 255).all() and (seg[:, 50:] == 255).all()
    assert (depth[:40, :50] == 3.0).all() and (depth[40:] == 0).all() and (depth[:, 50:] == 0).all()


def test_preprocessor_leaves_ground_truth_alone_outside_training():
    out = MultiTaskDataPreprocessor()(
        pseudo_collate([packed(50, 40), packed(30, 64)]), training=False
    )
    assert out["inputs"].shape == (2, 3, 64, 64)
    assert out["data_samples"][0].gt_sem_seg.data.shape == (1, 40, 50)


def test_preprocessor_pad_to_a_fixed_canvas():
    pre = MultiTaskDataPreprocessor(pad_to=(128, 96))
    out = pre(pseudo_collate([packed(50, 40)]), training=True)  # (w, h) = (50, 40)
    assert out["inputs"].shape == (1, 3, 128, 96)
    assert (out["inputs"][0, :, 40:, :] == 0).all() and (out["inputs"][0, :, :, 50:] == 0).all()
    s = out["data_samples"][0]
    assert s.metainfo["batch_input_shape"] == (128, 96) and s.metainfo["pad_shape"] == (128, 96)
    assert s.metainfo["padding_size"] == [0, 46, 0, 88]
    seg = s.gt_sem_seg.data[0]
    assert seg.shape == (128, 96) and (seg[40:] == 255).all() and (seg[:40, :50] == 1).all()
    big = pre(pseudo_collate([packed(200, 40)]), training=False)  # wider than the canvas
    assert big["inputs"].shape == (1, 3, 128, 224)
    with pytest.raises(ValueError, match=r"pad_to must be \(h, w\) > 0"):
        MultiTaskDataPreprocessor(pad_to=(0, 64))


def test_preprocessor_rejects_mixed_or_misaligned_batches():
    pre = MultiTaskDataPreprocessor()
    mixed = pseudo_collate([packed(32, 32), packed(32, 32, tasks=("detection",))])
    with pytest.raises(
        ValueError, match="mixes datasets or task sets .*MultiTaskGroupBatchSampler"
    ):
        pre(mixed, training=True)
    bad = packed(32, 32)
    bad["data_samples"].set_metainfo(dict(img_path="a.jpg"))
    bad["inputs"] = torch.zeros(3, 16, 16, dtype=torch.uint8)  # gt 32x32 but image 16x16
    with pytest.raises(
        ValueError, match="a.jpg: gt_sem_seg is \\(32, 32\\) but the image is \\(16, 16\\)"
    ):
        pre(pseudo_collate([bad]), training=True)


def test_preprocessor_matches_mmengine_img_data_preprocessor():
    from mmengine.model import ImgDataPreprocessor

    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        for h, w in ((37, 50), (64, 21), (20, 20))
    ]
    kwargs = dict(
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        bgr_to_rgb=True,
        pad_size_divisor=32,
    )
    ours = MultiTaskDataPreprocessor(**kwargs)(dict(inputs=inputs), training=False)["inputs"]
    theirs = ImgDataPreprocessor(**kwargs)(dict(inputs=inputs), training=False)["inputs"]
    assert ours.shape == theirs.shape == (3, 3, 64, 64)
    torch.testing.assert_close(ours, theirs)

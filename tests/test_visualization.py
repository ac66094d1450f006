"""Task visualizers, figures, contact sheets and the index page, from hand-made data samples.

Pixel tests draw on a plain grey image and check that exactly the expected pixels changed.
"""

import math
import re

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData

from multitask_vision.registry import TASK_VISUALIZERS, register_visualizer
from multitask_vision.structures import MultiTaskDataSample
from multitask_vision.visualization import (
    Panel,
    TaskRender,
    TaskVisualizer,
    build_visualizers,
    compose_figure,
    contact_sheet,
    get_visualizer,
    image_abs_rel,
    image_ap50,
    image_miou,
    render_sample,
    task_metas,
    write_index_html,
)
from multitask_vision.visualization.draw import IGNORE_RGB, INVALID_RGB, colorize, outline_mask
from multitask_vision.visualization.index_html import FigureEntry

GREY = 128
H, W = 64, 96
CLASSES = ("circle", "square", "triangle")
PALETTE = [(255, 0, 0), (0, 200, 0), (0, 0, 255)]
META = dict(classes=CLASSES, palette=PALETTE, tasks=("detection",))


def _grey(h=H, w=W):
    return np.full((h, w, 3), GREY, np.uint8)


def _changed(a, b):
    return (a != b).any(axis=2)


def _sample(**fields):
    s = MultiTaskDataSample(metainfo=dict(ori_shape=(H, W), img_id="img0", dataset="toy"))
    for k, v in fields.items():
        setattr(s, k, v)
    return s


def _boxes(boxes, labels, scores=None):
    d = dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
             labels=torch.tensor(labels, dtype=torch.long))  # fmt: skip
    if scores is not None:
        d["scores"] = torch.tensor(scores, dtype=torch.float32)
    return InstanceData(**d)


def _rect(shape, x1, y1, x2, y2):
    m = np.zeros(shape[:2], bool)
    m[y1 : y2 + 1, x1 : x2 + 1] = True
    return m


def _split_box_and_tag(changed, box):
    """(outline pixels, interior pixels, everything else) masks for an inclusive ``box``."""
    x1, y1, x2, y2 = box
    inside = _rect(changed.shape, x1, y1, x2, y2)
    interior = _rect(changed.shape, x1 + 1, y1 + 1, x2 - 1, y2 - 1)
    return inside & ~interior, interior, ~inside


# ---------------------------------------------------------------------------------- detection
def test_gt_box_changes_exactly_its_outline_and_a_tag_above_it():
    box = (10, 20, 40, 50)
    sample = _sample(gt_instances=_boxes([box], [1]), ignored_instances=_boxes([], []))
    render = get_visualizer("detection").render(_grey(), sample, META)
    panel = render.gt.image
    changed = _changed(panel, _grey())
    outline, interior, outside = _split_box_and_tag(changed, box)
    assert changed[outline].all()  # every outline pixel, 1 px wide on a 64 px image
    assert (panel[outline] == PALETTE[1]).all()
    assert not changed[interior].any()
    ys, xs = np.nonzero(changed & outside)  # the tag: a filled rectangle just above the box
    tag = _rect(changed.shape, xs.min(), ys.min(), xs.max(), ys.max())
    assert (changed & outside).sum() == tag.sum()
    assert (ys.max(), xs.min()) == (box[1] - 1, box[0])
    assert 8 <= ys.max() - ys.min() + 1 <= 16 and xs.max() - xs.min() + 1 <= 50
    assert render.gt.caption == "ground truth: 1 box"
    assert render.metric is None  # no prediction in this sample


def test_difficult_box_is_dashed_with_a_grey_difficult_tag():
    box = (10, 20, 40, 50)
    sample = _sample(gt_instances=_boxes([], []), ignored_instances=_boxes([box], [0]))
    panel = get_visualizer("detection").render(_grey(), sample, META).gt.image
    changed = _changed(panel, _grey())
    outline, interior, outside = _split_box_and_tag(changed, box)
    expected = outline_mask(changed.shape, box, 1, dashed=True)
    assert (changed & ~outside & ~interior == expected).all()
    assert 0.4 < expected.sum() / outline.sum() < 0.6
    assert not changed[interior].any()
    ys, xs = np.nonzero(changed & outside)
    assert ys.max() == box[1] - 1
    assert tuple(panel[ys.min(), xs.max()]) == (160, 160, 160)  # the grey tag background


def test_prediction_fills_its_box_and_skips_low_scores():
    boxes = [(10, 20, 40, 50), (50, 30, 90, 60)]
    sample = _sample(pred_instances=_boxes(boxes, [2, 0], scores=[0.9, 0.2]))
    render = get_visualizer("detection").render(_grey(), sample, META, score_thr=0.5)
    assert render.gt is None and render.metric is None
    changed = _changed(render.pred.image, _grey())
    outline, interior, outside = _split_box_and_tag(changed, boxes[0])
    assert changed[outline].all() and changed[interior].all()
    fill = round(0.75 * GREY + 0.25 * 255)  # 25 % of the class colour (0, 0, 255)
    assert tuple(render.pred.image[35, 25]) == (96, 96, fill)
    ys, _ = np.nonzero(changed & outside)
    assert ys.max() == boxes[0][1] - 1  # only the tag above the box; the 0.2 box is not drawn
    assert render.pred.caption == "prediction: 1 box, score >= 0.5"


def test_boxes_are_scaled_from_original_to_display_pixels():
    sample = _sample(gt_instances=_boxes([(10, 20, 40, 50)], [1]))
    panel = get_visualizer("detection").render(_grey(2 * H, 2 * W), sample, META).gt.image
    assert tuple(panel[40, 20]) == PALETTE[1] and tuple(panel[100, 80]) == PALETTE[1]
    assert tuple(panel[70, 50]) == (GREY,) * 3


def test_image_ap50_counts_false_positives_and_ignores_difficult():
    gt = _boxes([(10, 10, 30, 30)], [0])
    difficult = _boxes([(50, 10, 70, 30)], [0])
    # a false positive scored above the true positive: precision 0 then 1/2 at recall 1
    fp = _boxes([(10, 10, 30, 30), (40, 40, 60, 60)], [0, 0], scores=[0.9, 0.95])
    assert image_ap50(_sample(gt_instances=gt, ignored_instances=difficult,
                              pred_instances=fp), 3) == pytest.approx(0.5)  # fmt: skip
    # a detection of the difficult object is neither a true nor a false positive
    on_difficult = _boxes([(10, 10, 30, 30), (50, 10, 70, 30)], [0, 0], scores=[0.9, 0.95])
    assert image_ap50(_sample(gt_instances=gt, ignored_instances=difficult,
                              pred_instances=on_difficult), 3) == pytest.approx(1.0)  # fmt: skip
    no_gt = _sample(gt_instances=_boxes([], []), pred_instances=fp)
    assert math.isnan(image_ap50(no_gt, 3))


# ------------------------------------------------------------------------------- segmentation
SEG_META = dict(
    seg_classes=("background", "circle", "square"),
    seg_palette=[(0, 0, 0), (255, 0, 0), (0, 200, 0)],
    tasks=("segmentation",),
)


def _seg(labels):
    return PixelData(data=torch.as_tensor(labels, dtype=torch.long)[None])


def test_segmentation_overlay_changes_exactly_the_labelled_pixels():
    mask = np.zeros((H, W), np.int64)
    mask[10:30, 20:50] = 2
    mask[40:44, :] = 255
    render = get_visualizer("segmentation").render(_grey(), _sample(gt_sem_seg=_seg(mask)),
                                                   SEG_META)  # fmt: skip
    panel = render.gt.image
    changed = _changed(panel, _grey())
    assert (changed == (mask != 0)).all()  # background untouched, class and ignore blended
    assert tuple(panel[15, 25]) == (64, 164, 64)  # (128 + (0, 200, 0)) / 2
    assert tuple(panel[41, 5]) == tuple(round((GREY + c) / 2) for c in IGNORE_RGB)
    assert render.gt.legend == [("square", (0, 200, 0)), ("ignore (255)", IGNORE_RGB)]


def test_segmentation_without_background_class_draws_every_label():
    meta = dict(seg_classes=("wall", "floor"), seg_palette=[(200, 0, 0), (0, 0, 200)])
    pred = np.zeros((H, W), np.int64)
    pred[32:] = 1
    render = get_visualizer("segmentation").render(_grey(), _sample(pred_sem_seg=_seg(pred)), meta)
    assert _changed(render.pred.image, _grey()).all()
    assert render.gt is None and render.metric is None
    assert [name for name, _ in render.pred.legend] == ["wall", "floor"]


def test_image_miou_over_classes_present_in_gt_or_prediction():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 255, 255]])
    pred = np.array([[0, 0, 1, 2], [0, 1, 1, 2], [2, 2, 2, 2]])  # 255 row: not counted
    # class 0: 3 / 4; class 1: 2 / 5; class 2: 0 / 2
    assert image_miou(gt, pred) == pytest.approx((3 / 4 + 2 / 5 + 0) / 3)
    assert math.isnan(image_miou(np.full((2, 2), 255), pred[:2, :2]))


# -------------------------------------------------------------------------------------- depth
def test_depth_shares_the_colour_scale_marks_invalid_pixels_and_measures_abs_rel():
    gt = np.full((H, W), 2.0, np.float32)
    gt[:, W // 2 :] = 4.0
    gt[:8] = 0.0  # invalid
    pred = gt.copy()
    pred[:8] = 3.0
    pred[40:, : W // 2] = 3.0  # 50 % too far on part of the left half
    sample = _sample(gt_depth_map=PixelData(data=torch.from_numpy(gt)[None]),
                     pred_depth_map=PixelData(data=torch.from_numpy(pred)[None]))  # fmt: skip
    r = get_visualizer("depth").render(_grey(), sample, {})
    (err,) = r.extras
    assert r.gt.colorbar == r.pred.colorbar and (r.gt.colorbar.vmin, r.gt.colorbar.vmax) == (2, 4)
    assert (r.gt.image[:8] == INVALID_RGB).all() and (err.image[:8] == INVALID_RGB).all()
    assert (r.pred.image[:8] != INVALID_RGB).any(axis=2).all()  # predictions are all valid
    assert (r.gt.image[20, 10] == r.pred.image[20, 10]).all()  # same depth, same colour
    assert (r.gt.image[50, 10] != r.pred.image[50, 10]).any()
    assert err.colorbar.vmin == 0 and err.colorbar.vmax == pytest.approx(1.0)
    valid = gt > 0
    expected = np.mean(np.abs(pred - gt)[valid] / gt[valid])
    assert r.metric == ("AbsRel", pytest.approx(expected))
    assert expected == pytest.approx(24 * 48 * 0.5 / (56 * 96))
    assert image_abs_rel(np.zeros((2, 2)), np.ones((2, 2))) != image_abs_rel(gt, pred)


def test_colorize_maps_ends_of_the_range_to_the_ends_of_the_colour_map():
    v = np.array([[1.0, 5.0, 9.0]], np.float32)
    rgb = colorize(v, np.array([[True, True, False]]), 1.0, 5.0, "viridis")
    assert tuple(rgb[0, 0]) == (68, 1, 84) and tuple(rgb[0, 1]) == (253, 231, 37)
    assert tuple(rgb[0, 2]) == INVALID_RGB
    with pytest.raises(ValueError, match=r"colour map 'jet' is not one of"):
        colorize(v, v > 0, 0, 1, "jet")


# -------------------------------------------------------------------- registry and figures
def _full_sample(task):
    """A sample with ground truth and prediction of ``task`` (a built-in task)."""
    rng = np.random.default_rng(0)
    if task == "detection":
        return _sample(gt_instances=_boxes([(5, 5, 30, 40)], [0]), ignored_instances=_boxes([], []),
                       pred_instances=_boxes([(6, 5, 30, 41)], [0], scores=[0.8]))  # fmt: skip
    if task == "segmentation":
        labels = rng.integers(0, 3, (H, W))
        return _sample(gt_sem_seg=_seg(labels), pred_sem_seg=_seg(labels))
    depth = torch.from_numpy(rng.uniform(1, 5, (1, H, W)).astype(np.float32))
    return _sample(gt_depth_map=PixelData(data=depth), pred_depth_map=PixelData(data=depth))


BUILT_IN = ("depth", "detection", "segmentation")


@pytest.mark.parametrize("task", BUILT_IN)
def test_every_builtin_visualizer_renders_gt_and_prediction_only_samples(task):
    vis, meta = get_visualizer(task), {**META, **SEG_META}
    full = _full_sample(task)
    r = vis.render(_grey(2 * H, 2 * W), full, meta)
    panels = [r.gt, r.pred, *r.extras]
    assert r.task == task and all(p.image.shape == (2 * H, 2 * W, 3) for p in panels)
    assert all(p.image.dtype == np.uint8 for p in panels)
    assert r.metric[1] == pytest.approx(0.0 if task == "depth" else 1.0)  # prediction == truth
    pred_only = _sample(**{vis.pred_field: full.get(vis.pred_field)})
    r = vis.render(_grey(), pred_only, meta)
    assert r.gt is None and r.metric is None and r.pred.image.shape == (H, W, 3)


def test_builtin_list_covers_the_registry():
    assert sorted(TASK_VISUALIZERS.module_dict) == list(BUILT_IN)


def test_unknown_task_names_the_task_and_the_registered_visualizers():
    with pytest.raises(KeyError, match=r"no visualizer is registered for task 'normals' \(head "
                       r"'normals_head'\).*Registered visualizers: depth, detection, "
                       r"segmentation"):  # fmt: skip
        build_visualizers(["detection", "normals"], {"normals": "normals_head"})
    with pytest.raises(KeyError, match=r"task 'detecton'; did you mean 'detection'\?"):
        get_visualizer("detecton")


@pytest.fixture
def edges_task():
    """A new task registered from outside the package, removed afterwards."""

    @register_visualizer("toy_edges")
    class EdgesVisualizer(TaskVisualizer):
        gt_field, pred_field = "gt_sem_seg", "pred_sem_seg"

        def render(self, image, sample, dataset_meta, score_thr=0.3):
            out = image.copy()
            out[0] = 255
            return TaskRender(self.task, None, Panel(out, "edges"), metric=("edge", 0.25))

    yield "toy_edges"
    TASK_VISUALIZERS.module_dict.pop("toy_edges")


def test_a_new_task_plugs_in_through_the_registry(edges_task, tmp_path):
    vis = build_visualizers([edges_task, "segmentation"])
    sample = _sample(pred_sem_seg=_seg(np.zeros((H, W))))
    fig = render_sample(sample, vis, {"segmentation": SEG_META}, image=_grey(), min_side=64)
    assert fig.metrics == {"toy_edges": ("edge", 0.25)}
    assert fig.title == "toy img0 | toy_edges edge 0.250 | segmentation (no gt)"
    assert fig.image.dtype == np.uint8 and fig.image.shape[0] > 2 * H


def test_figure_layout_has_a_row_per_task_and_a_placeholder_without_ground_truth():
    img = _grey()
    panel = Panel(_grey(), "p")
    renders = [TaskRender("a", panel, panel, [panel]), TaskRender("b", None, panel)]
    fig = compose_figure(img, renders, "t")
    # 6 px margins and gaps, 16 px text lines: title, then per row a caption over a 64 px image
    assert fig.shape == (6 + 16 + 2 * (6 + 16 + H) + 6, 6 + 4 * W + 3 * 6 + 6, 3)
    row_b = 6 + 16 + (6 + 16 + H) + 6 + 16
    gt_b = fig[row_b : row_b + H, 6 + W + 6 : 6 + 2 * W + 6]
    assert (gt_b[0, 0] == (235, 235, 235)).all()  # the "no ground truth" placeholder


def test_render_sample_reads_and_enlarges_small_images(tmp_path):
    import cv2

    path = str(tmp_path / "img.png")
    cv2.imwrite(path, np.full((H, W, 3), (0, 0, 200), np.uint8))  # BGR: red
    sample = _sample(gt_instances=_boxes([(10, 20, 40, 50)], [1]),
                     pred_instances=_boxes([(10, 20, 40, 50)], [1], scores=[0.8]))  # fmt: skip
    sample.set_metainfo(dict(img_path=path))
    fig = render_sample(sample, build_visualizers(["detection"]), {"detection": META},
                        min_side=128)  # fmt: skip
    assert fig.metrics == {"detection": ("AP50", 1.0)}
    assert fig.title == "toy img0 | detection AP50 1.000"
    # input panel at 2x: 128 x 192 pixels of pure red under the title and caption
    assert (fig.image[6 + 16 + 6 + 16 : 6 + 16 + 6 + 16 + 128, 6 : 6 + 192] == (200, 0, 0)).all()


def test_task_metas_take_class_names_from_the_dataset_that_annotates_the_task():
    voc = dict(classes=("a", "b"), tasks=("detection", "segmentation"))
    nyu = dict(classes=("wall",), tasks=("depth",))
    metas = task_metas({"voc": voc, "nyu": nyu}, "nyu", ["detection", "depth"])
    assert metas["detection"]["classes"] == ("a", "b") and metas["depth"]["classes"] == ("wall",)


# -------------------------------------------------------------------- contact sheet and index
def test_contact_sheet_grid_size_and_thumbnail_placement():
    figs = [np.full((600, 800, 3), 10 * i, np.uint8) for i in range(5)]
    sheet = contact_sheet(figs, [f"f{i}" for i in range(5)], ncols=3, cell_width=200,
                          cell_height=150)  # fmt: skip
    assert sheet.shape == (2 * (150 + 16 + 8) + 8, 3 * (200 + 8) + 8, 3)
    x, y = 8 + 1 * 208, 8 + 1 * 174  # figure 4: second row, second column, shrunk to 200 x 150
    assert (sheet[y : y + 150, x : x + 200] == 40).all()
    assert (sheet[y : y + 150, x + 200 : x + 208] == 255).all()
    with pytest.raises(ValueError, match="no images"):
        contact_sheet([])


def test_index_html_links_every_figure_relative_to_the_page(tmp_path):
    (tmp_path / "voc").mkdir()
    paths = [str(tmp_path / "voc" / f"{i}.png") for i in ("a", "b<c")]
    page = write_index_html(str(tmp_path), {"voc": [FigureEntry(p, f"cap {i}")
                                                    for i, p in enumerate(paths)]},
                            {"voc": str(tmp_path / "contact_sheet_voc.png")})  # fmt: skip
    with open(page) as f:
        text = f.read()
    assert re.findall(r'<img src="([^"]+)"', text) == ["voc/a.png", "voc/b&lt;c.png"]
    assert 'href="contact_sheet_voc.png"' in text and "voc (2 samples)" in text

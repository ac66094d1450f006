"""Metric wiring: mmlab metrics through MultiTaskMetric give exact values on hand-made cases."""

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData, PixelData

from multitask_vision.evaluation import format_summary, multitask_gain
from multitask_vision.structures import MultiTaskDataSample

META = dict(
    datasets=dict(
        voc=dict(dataset_name="voc", classes=("circle", "square"), seg_classes=("bg", "fg")),
        nyu=dict(dataset_name="nyu"),
    ),
    dataset_names=["voc", "nyu"],
)


def _evaluator():
    import multitask_vision.evaluation  # noqa: F401

    ev = Evaluator(
        dict(
            type="MultiTaskMetric",
            _scope_="mtv",
            metrics=dict(
                voc=dict(detection=dict(type="mmdet.VOCMetric", eval_mode="area"),
                         segmentation=dict(type="mmseg.IoUMetric")),
                nyu=dict(depth=dict(type="mmseg.DepthMetric")),
            ),
        )
    )  # fmt: skip
    ev.dataset_meta = META
    return ev


def _voc_sample(pred_boxes, pred_scores, pred_labels, seg_pred=None, seg_gt=None):
    s = MultiTaskDataSample(metainfo=dict(dataset="voc", img_id="a", ori_shape=(8, 8),
                                          img_path="a.jpg"))  # fmt: skip
    s.gt_instances = InstanceData(bboxes=torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
                                  labels=torch.tensor([0]))  # fmt: skip
    s.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
    s.pred_instances = InstanceData(
        bboxes=torch.tensor(pred_boxes),
        scores=torch.tensor(pred_scores),
        labels=torch.tensor(pred_labels),
    )
    if seg_gt is not None:
        s.gt_sem_seg = PixelData(data=seg_gt[None])
        s.pred_sem_seg = PixelData(data=seg_pred[None])
    return s


def _nyu_sample(pred, gt):
    s = MultiTaskDataSample(metainfo=dict(dataset="nyu", img_id="n", img_path="n.png"))
    s.gt_depth_map = PixelData(data=gt[None])
    s.pred_depth_map = PixelData(data=pred[None])
    return s


def _run(samples):
    ev = _evaluator()
    ev.process([s.clone() for s in samples])
    return ev.evaluate(len(samples))


def test_perfect_predictions():
    seg = torch.zeros(8, 8, dtype=torch.long)
    seg[:, 4:] = 1
    depth = torch.full((8, 8), 2.0)
    m = _run([
        _voc_sample([[0.0, 0.0, 4.0, 4.0]], [0.9], [0], seg_pred=seg, seg_gt=seg),
        _nyu_sample(depth, depth),
    ])  # fmt: skip
    assert m["voc/detection/mAP"] == pytest.approx(1.0)
    assert m["voc/segmentation/mIoU"] == pytest.approx(100.0)
    assert m["nyu/depth/rmse"] == pytest.approx(0.0)
    assert m["nyu/depth/abs_rel"] == pytest.approx(0.0)


def test_known_imperfect_case():
    seg_gt = torch.zeros(8, 8, dtype=torch.long)
    seg_gt[:, 4:] = 1
    seg_pred = torch.zeros(8, 8, dtype=torch.long)  # class 0 everywhere
    gt_depth = torch.full((8, 8), 2.0)
    gt_depth[0, 0] = 0.0  # invalid: must not count
    pred_depth = torch.full((8, 8), 1.0)
    pred_depth[0, 0] = 100.0
    m = _run([
        # a higher-scored false positive (wrong place) then the true positive: AP = 0.5
        _voc_sample([[5.0, 5.0, 8.0, 8.0], [0.0, 0.0, 4.0, 4.0]], [0.95, 0.9], [0, 0],
                    seg_pred=seg_pred, seg_gt=seg_gt),
        _nyu_sample(pred_depth, gt_depth),
    ])  # fmt: skip
    assert m["voc/detection/mAP"] == pytest.approx(0.5)
    # class 0: IoU 32/64, class 1: IoU 0 -> mIoU 25 %
    assert m["voc/segmentation/mIoU"] == pytest.approx(25.0)
    assert m["nyu/depth/abs_rel"] == pytest.approx(0.5)
    assert m["nyu/depth/rmse"] == pytest.approx(1.0)


def test_sample_without_mask_counts_for_detection_only():
    seg = torch.zeros(8, 8, dtype=torch.long)
    with_mask = _voc_sample([[0.0, 0.0, 4.0, 4.0]], [0.9], [0], seg_pred=seg, seg_gt=seg)
    without = _voc_sample([[4.0, 4.0, 8.0, 8.0]], [0.9], [0])  # a miss and a false positive
    m = _run([with_mask, without])
    assert m["voc/detection/mAP"] == pytest.approx(0.5, abs=0.01)
    assert m["voc/segmentation/mIoU"] == pytest.approx(100.0)
    assert not any(k.startswith("nyu/") for k in m)  # no NYU sample, no NYU metric


def test_metrics_for_unknown_dataset_are_rejected():
    ev = _evaluator()
    with pytest.raises(
        KeyError,
        match=r"configured for dataset 'nyu', but the evaluated "
        r"datasets are \['voc'\]",
    ):
        ev.dataset_meta = dict(datasets=dict(voc=META["datasets"]["voc"]))


def test_multitask_gain_sign_corrected():
    baselines = {"voc/detection/mAP": 0.5, "nyu/depth/abs_rel": 0.2}
    metrics = {"voc/detection/mAP": 0.55, "nyu/depth/abs_rel": 0.22}
    # detection +10 %, depth (lower better) -10 % -> mean 0
    assert multitask_gain(metrics, baselines) == pytest.approx(0.0)
    metrics["nyu/depth/abs_rel"] = 0.18
    assert multitask_gain(metrics, baselines) == pytest.approx(10.0)
    table = format_summary({"iter 0": {}, "final": metrics}, baselines)
    assert "nyu/depth/abs_rel (lower better)" in table
    assert table.splitlines()[-1].split()[-2:] == ["-", "10.0000"]  # iter 0 has no metrics

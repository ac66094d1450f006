"""The graph model against the libraries it wraps: same losses and predictions as calling the
mmdet / mmseg heads directly, and task-selective execution."""

import copy
from types import SimpleNamespace

import pytest
import torch
from mmdet.models.utils import unpack_gt_instances
from mmengine.structures import InstanceData, PixelData
from mmseg.models.segmentors.base import BaseSegmentor

from multitask_vision.multitask_model import MultiTaskModel
from multitask_vision.structures import MultiTaskDataSample

PAD = 64
BLOCKS = [
    dict(name="backbone", type="ResNetBackbone", inputs=["image"], args=dict(depth=18)),
    dict(name="neck", type="FPN", scope="mmdet", inputs=["backbone"],
         args=dict(in_channels=[64, 128, 256, 512], out_channels=16, num_outs=4)),
    dict(name="det_head", type="FCOSHead", inputs=["neck"], task="detection",
         args=dict(num_classes=3, in_channels=16, feat_channels=16, stacked_convs=1,
                   norm_cfg=dict(type="GN", num_groups=4, requires_grad=True),
                   strides=[4, 8, 16, 32],
                   regress_ranges=((-1, 16), (16, 32), (32, 64), (64, 1e8)),
                   test_cfg=dict(nms_pre=200, score_thr=0.0, nms=dict(type="nms",
                                 iou_threshold=0.5), max_per_img=20))),
    dict(name="seg_head", type="FCNHead", scope="mmseg", inputs=["backbone.layer4"],
         task="segmentation",
         args=dict(in_channels=512, channels=16, num_convs=1, num_classes=4, dropout_ratio=0.0,
                   loss_decode=dict(type="CrossEntropyLoss", loss_weight=0.7,
                                    avg_non_ignore=True))),
    dict(name="depth_head", type="DenseDepthHead", inputs=["backbone.layer4"], task="depth",
         args=dict(in_channels=512, channels=16)),
]  # fmt: skip
LOSSES = dict(detection=dict(weight=1.0), segmentation=dict(weight=0.5), depth=dict(weight=2.0))


def _model(losses=LOSSES):
    # These tests call forward() directly, on already normalised tensors.
    return MultiTaskModel(
        copy.deepcopy(BLOCKS), losses, data_preprocessor=dict(type="BaseDataPreprocessor")
    )


def _samples(tasks, n=2, img_shape=(56, 60), ori_shape=(112, 90), seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = (img_shape[1] / ori_shape[1], img_shape[0] / ori_shape[0])  # (w, h)
    out = []
    for i in range(n):
        s = MultiTaskDataSample(
            metainfo=dict(
                img_id=f"s{i}", img_shape=img_shape, ori_shape=ori_shape, scale_factor=scale,
                pad_shape=(PAD, PAD), batch_input_shape=(PAD, PAD), tasks=tuple(sorted(tasks)),
                padding_size=[0, PAD - img_shape[1], 0, PAD - img_shape[0]],
            )
        )  # fmt: skip
        if "detection" in tasks:
            s.gt_instances = InstanceData(
                bboxes=torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 50.0, 28.0]]),
                labels=torch.tensor([1, 2]),
            )
            s.ignored_instances = InstanceData(
                bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)
            )
        if "segmentation" in tasks:
            seg = torch.randint(0, 4, (1, PAD, PAD), generator=g)
            seg[:, img_shape[0] :] = 255
            s.gt_sem_seg = PixelData(data=seg)
        if "depth" in tasks:
            depth = torch.rand(1, PAD, PAD, generator=g) * 5 + 0.5
            depth[:, img_shape[0] :] = 0
            s.gt_depth_map = PixelData(data=depth)
        out.append(s)
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = _model()
    m.init_weights()
    return m


@pytest.fixture(scope="module")
def image():
    return torch.randn(2, 3, PAD, PAD, generator=torch.Generator().manual_seed(1))


def test_state_dict_keys_are_block_names(model):
    keys = list(model.state_dict())
    assert {k.split(".")[1] for k in keys if k.startswith("blocks.")} == {
        "backbone", "neck", "det_head", "seg_head", "depth_head"
    }  # fmt: skip
    assert "blocks.det_head.conv_cls.weight" in keys


def test_fcos_loss_parity_with_mmdet(model, image):
    samples = _samples({"detection"})
    losses = model(image, samples, mode="loss")
    assert set(losses) == {
        "loss_detection_cls", "loss_detection_bbox", "loss_detection_centerness", "weight_detection"
    }  # fmt: skip

    head = model.blocks["det_head"]
    feats = model.blocks["neck"](tuple(model.blocks["backbone"](image).values()))
    gt, gt_ignore, metas = unpack_gt_instances(samples)
    ref = head.loss_by_feat(*head(feats), gt, metas, gt_ignore)
    for term in ("cls", "bbox", "centerness"):
        torch.testing.assert_close(losses[f"loss_detection_{term}"], ref[f"loss_{term}"])
    assert float(ref["loss_cls"]) > 0


def test_fcn_loss_parity_with_mmseg_and_weight(model, image):
    samples = _samples({"segmentation"})
    losses = model(image, samples, mode="loss")
    head = model.blocks["seg_head"]
    ref = head.loss_by_feat(head([model.blocks["backbone"](image)["layer4"]]), samples)
    # The configured loss_decode (weight 0.7, avg_non_ignore) is mmseg's; 0.5 is the task weight.
    torch.testing.assert_close(losses["loss_segmentation_ce"], 0.5 * ref["loss_ce"])
    torch.testing.assert_close(losses["segmentation_acc_seg"], ref["acc_seg"])
    manual = torch.nn.functional.cross_entropy(
        torch.nn.functional.interpolate(head([model.blocks["backbone"](image)["layer4"]]),
                                        size=(PAD, PAD), mode="bilinear", align_corners=False),
        torch.stack([s.gt_sem_seg.data[0] for s in samples]), ignore_index=255,
    )  # fmt: skip
    torch.testing.assert_close(losses["loss_segmentation_ce"], 0.5 * 0.7 * manual)


def test_fcos_predictions_parity_and_original_pixels(model, image):
    model.eval()
    samples = model(image, _samples({"detection"}), mode="predict")
    head = model.blocks["det_head"]
    feats = model.blocks["neck"](tuple(model.blocks["backbone"](image).values()))
    with torch.no_grad():
        ref = head.predict_by_feat(
            *head(feats), batch_img_metas=[s.metainfo for s in samples], rescale=True
        )
    for s, r in zip(samples, ref, strict=True):
        assert len(s.pred_instances) == 20  # score_thr=0 -> max_per_img boxes
        torch.testing.assert_close(s.pred_instances.bboxes, r.bboxes)
        torch.testing.assert_close(s.pred_instances.scores, r.scores)
        assert torch.equal(s.pred_instances.labels, r.labels)
    # rescaled to the original image (112 x 90), beyond the 56 x 60 network input
    boxes = torch.cat([s.pred_instances.bboxes for s in samples])
    assert boxes[:, 2].max() <= 90 + 1e-3 and boxes[:, 3].max() <= 112 + 1e-3
    assert boxes[:, 2].max() > 60 or boxes[:, 3].max() > 56


def test_fcn_predictions_parity_with_mmseg_postprocess(model, image):
    model.eval()
    samples = model(image, _samples({"segmentation"}), mode="predict")
    head = model.blocks["seg_head"]
    with torch.no_grad():
        logits = head.predict_by_feat(
            head([model.blocks["backbone"](image)["layer4"]]), [s.metainfo for s in samples]
        )
    ref = BaseSegmentor.postprocess_result(
        SimpleNamespace(align_corners=head.align_corners, decode_head=head),
        logits, _samples({"segmentation"}),
    )  # fmt: skip
    for s, r in zip(samples, ref, strict=True):
        assert s.pred_sem_seg.data.shape == (1, 112, 90)
        torch.testing.assert_close(s.seg_logits.data, r.seg_logits.data)
        assert torch.equal(s.pred_sem_seg.data, r.pred_sem_seg.data)


def test_predict_fills_every_task_at_original_size(model, image):
    model.eval()
    samples = model(image, _samples({"depth"}), mode="predict")
    for s in samples:
        assert s.pred_depth_map.data.shape == (1, 112, 90)
        assert s.pred_sem_seg.data.shape == (1, 112, 90)
        assert "pred_instances" in s


def test_depth_only_batch_runs_only_what_depth_needs(image):
    torch.manual_seed(0)
    model = _model()
    model.train()
    calls = {name: 0 for name in model.blocks.order}
    for name in calls:
        model.blocks[name].register_forward_hook(
            lambda mod, inp, out, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    losses = model(image, _samples({"depth"}), mode="loss")
    assert set(losses) == {"loss_depth_silog", "weight_depth"}
    assert float(losses["weight_depth"]) == 2.0
    assert calls == {"backbone": 1, "neck": 0, "det_head": 0, "seg_head": 0, "depth_head": 1}
    losses["loss_depth_silog"].backward()
    for name in ("neck", "det_head", "seg_head"):
        assert all(p.grad is None for p in model.blocks[name].parameters()), name
    assert all(p.grad is not None for p in model.blocks["depth_head"].parameters())


@pytest.mark.parametrize("task", ["detection", "segmentation", "depth"])
def test_backbone_learns_from_each_task(task, image):
    torch.manual_seed(0)
    model = _model()
    model.train()
    losses = model(image, _samples({task}), mode="loss")
    assert all(k.startswith(f"loss_{task}_") for k in losses if "loss" in k)
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    grad = model.blocks["backbone"].layer4[0].conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_task_weights_scale_losses(image):
    def depth_loss(weight):
        torch.manual_seed(0)
        m = _model(dict(LOSSES, depth=dict(weight=weight)))
        return m(image, _samples({"depth"}), mode="loss")["loss_depth_silog"]

    torch.testing.assert_close(depth_loss(3.0), 3.0 * depth_loss(1.0))


def test_mixed_task_batch_is_rejected(model, image):
    samples = _samples({"depth"}, n=1) + _samples({"segmentation"}, n=1)
    with pytest.raises(ValueError, match=r"mixes samples with different task sets"):
        model(image, samples, mode="loss")


def test_batch_without_any_model_task(model, image):
    samples = _samples(set(), n=2)
    for s in samples:
        s.set_metainfo(dict(tasks=("normals",)))
    with pytest.raises(ValueError, match=r"ground truth for tasks \['normals'\], none of which"):
        model(image, samples, mode="loss")


def test_missing_ground_truth_field_is_named(model, image):
    samples = _samples({"depth"})
    for s in samples:
        s.set_metainfo(dict(tasks=("detection",)))
    with pytest.raises(
        KeyError,
        match=r"blocks\[2\] 'det_head' \(task 'detection'\) needs "
        r"data_sample.gt_instances.*'gt_depth_map'",
    ):
        model(image, samples, mode="loss")

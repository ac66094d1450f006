"""Native blocks: every registered block generically, then each one's numbers."""

import math
import shutil

import pytest
import torch
import torchvision
from mmengine.structures import InstanceData, PixelData

import multitask_vision.blocks  # noqa: F401  (registers the blocks)
from multitask_vision.blocks import FPN, DenseDepthHead, FCOSLiteHead, ResNetBackbone, SegHead
from multitask_vision.blocks.base import NativeHead
from multitask_vision.blocks.fcos_head import default_regress_ranges
from multitask_vision.registry import BLOCKS
from multitask_vision.structures import MultiTaskDataSample

LN2 = math.log(2)


def _sample(
    boxes=None,
    labels=None,
    seg=None,
    depth=None,
    img_shape=(64, 64),
    pad_shape=(64, 64),
    ori_shape=None,
    scale_factor=(1.0, 1.0),
    **meta,
) -> MultiTaskDataSample:
    ori_shape = ori_shape or img_shape
    sample = MultiTaskDataSample(
        metainfo=dict(
            img_shape=img_shape,
            ori_shape=ori_shape,
            scale_factor=scale_factor,
            pad_shape=pad_shape,
            batch_input_shape=pad_shape,
            **meta,
        )
    )
    if boxes is not None:
        sample.gt_instances = InstanceData(
            bboxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.as_tensor(labels, dtype=torch.long),
        )
    if seg is not None:
        sample.gt_sem_seg = PixelData(data=seg)
    if depth is not None:
        sample.gt_depth_map = PixelData(data=depth)
    return sample


def _batch_samples() -> list[MultiTaskDataSample]:
    """Two 64x64 padded samples with every kind of ground truth; the second is 48 px high."""
    g = torch.Generator().manual_seed(0)
    seg = torch.randint(0, 3, (2, 1, 64, 64), generator=g)
    seg[1, :, 48:] = 255
    depth = torch.rand(2, 1, 64, 64, generator=g) * 5 + 0.5
    depth[:, :, :4] = 0.0
    depth[1, :, 48:] = 0.0
    return [
        _sample([[4, 6, 40, 50], [30, 2, 62, 20]], [0, 2], seg[0], depth[0]),
        _sample([[10, 10, 60, 44]], [1], seg[1], depth[1], img_shape=(48, 64)),
    ]


def _feats(*shapes):
    g = torch.Generator().manual_seed(1)
    return tuple(torch.randn(2, *s, generator=g) for s in shapes)


# Per registered class: constructor args, positional inputs (B = 2, 64x64 network input) and
# the expected output shapes (dict name -> shape, or list of shapes for tuples).
GENERIC = {
    "ResNetBackbone": (
        dict(depth=18, out_features=("stem", "layer1", "layer2", "layer3", "layer4")),
        lambda: (torch.randn(2, 3, 64, 64),),
        {
            "stem": (2, 64, 32, 32),
            "layer1": (2, 64, 16, 16),
            "layer2": (2, 128, 8, 8),
            "layer3": (2, 256, 4, 4),
            "layer4": (2, 512, 2, 2),
        },
    ),
    "FPN": (
        dict(in_channels=[8, 16, 32, 64], out_channels=16, num_outs=5),
        lambda: (
            dict(zip("abcd", _feats((8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)), strict=True)),
        ),
        [(2, 16, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2), (2, 16, 1, 1)],
    ),
    "FCOSLiteHead": (
        dict(
            num_classes=3,
            in_channels=16,
            strides=(8, 16),
            feat_channels=8,
            stacked_convs=2,
            num_groups=4,
        ),
        lambda: _feats((16, 8, 8), (16, 4, 4)),
        [[(2, 3, 8, 8), (2, 3, 4, 4)], [(2, 4, 8, 8), (2, 4, 4, 4)], [(2, 1, 8, 8), (2, 1, 4, 4)]],
    ),
    "SegHead": (
        dict(num_classes=3, in_channels=[16, 32], channels=8),
        lambda: _feats((16, 16, 16), (32, 8, 8)),
        (2, 3, 16, 16),
    ),
    "DenseDepthHead": (
        dict(in_channels=[16, 32, 64], channels=8, max_depth=8.0),
        lambda: (_feats((16, 16, 16), (32, 8, 8), (64, 4, 4)),),
        (2, 1, 16, 16),
    ),
}


def _flatten(out, expected):
    """Pair output tensors with expected shapes through dicts, tuples and lists."""
    if isinstance(expected, dict):
        assert list(out) == list(expected)
        return [p for k in expected for p in _flatten(out[k], expected[k])]
    if isinstance(expected, list):
        assert isinstance(out, tuple) and len(out) == len(expected)
        return [p for o, e in zip(out, expected, strict=True) for p in _flatten(o, e)]
    return [(out, expected)]


@pytest.mark.parametrize("name", sorted(BLOCKS.module_dict))
def test_every_registered_block(name):
    assert name in GENERIC, f"add a small config for {name} to GENERIC in {__file__}"
    args, make_inputs, expected = GENERIC[name]
    cls = BLOCKS.get(name)
    torch.manual_seed(0)
    block = cls(**args).train()
    out = block(*make_inputs())

    pairs = _flatten(out, expected)
    for tensor, shape in pairs:
        assert tuple(tensor.shape) == shape
        assert torch.isfinite(tensor).all()
    names = cls.output_names(args)
    if isinstance(out, dict):
        assert tuple(names) == tuple(out)
    elif issubclass(cls, NativeHead):
        assert names is None
        assert cls.task and cls.pred_field
    else:
        assert tuple(names) == tuple(str(i) for i in range(len(out)))

    if issubclass(cls, NativeHead):
        losses = block.loss(out, _batch_samples())
        assert losses and all(torch.isfinite(v) for v in losses.values())
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    else:
        total = sum(t.mean() for t, _ in pairs)
    total.backward()
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}.{pname} receives no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has an all-zero gradient"


# -- ResNetBackbone ----------------------------------------------------------------------------


def _tv_features(net: torchvision.models.ResNet, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_resnet_loads_local_file_and_matches_torchvision(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18().eval()
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)
    ours = ResNetBackbone(depth=18, out_features=("layer4",), pretrained=str(path)).eval()
    for k, v in ours.state_dict().items():
        assert torch.equal(v, tv.state_dict()[k]), k
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["layer4"], _tv_features(tv, x))

    # mmengine checkpoints nest the weights; DDP adds 'module.'
    wrapped = {"state_dict": {"module." + k: v for k, v in tv.state_dict().items()}}
    torch.save(wrapped, path)
    ours = ResNetBackbone(depth=18, pretrained=str(path))
    assert torch.equal(ours.conv1.weight, tv.conv1.weight)


def test_resnet_reports_missing_and_mismatched_keys(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer3.")}, path)
    with pytest.raises(RuntimeError, match=r"partial.pth does not fit: \d+ missing keys \[layer3"):
        ResNetBackbone(depth=18, pretrained=str(path))
    # layers after the last requested output are not built, so their keys are not needed
    ResNetBackbone(depth=18, out_features=("layer1", "layer2"), pretrained=str(path))

    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(RuntimeError, match="shape mismatches"):
        ResNetBackbone(depth=18, pretrained=str(path))

    torch.save({**state, "extra.weight": torch.zeros(1)}, path)
    with pytest.warns(UserWarning, match=r"ignoring 1 unexpected keys .*extra.weight"):
        ResNetBackbone(depth=18, pretrained=str(path))

    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        ResNetBackbone(depth=18, pretrained=str(tmp_path / "nope.pth"))


def test_resnet_imagenet_weights_come_from_torchvision_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as err:
        ResNetBackbone(depth=18, pretrained=True)
    assert str(target) in str(err.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in str(err.value)
    with pytest.raises(FileNotFoundError, match="resnet50-11ad3fa6.pth"):
        ResNetBackbone(depth=50, pretrained="IMAGENET1K_V2")

    target.parent.mkdir(parents=True)
    src = tmp_path / "src.pth"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    shutil.copy(src, target)
    ours = ResNetBackbone(depth=18, pretrained=True)
    assert torch.equal(ours.layer1[0].conv1.weight, torch.load(target)["layer1.0.conv1.weight"])


def test_resnet_validates_arguments_and_orders_outputs():
    with pytest.raises(ValueError, match="depth=19; valid depths: 18, 34, 50, 101"):
        ResNetBackbone(depth=19)
    with pytest.raises(ValueError, match="unknown: \\['layer5'\\]"):
        ResNetBackbone(out_features=("layer5",))
    assert ResNetBackbone.output_names(dict(out_features=("layer4", "stem"))) == ("stem", "layer4")
    assert ResNetBackbone.feature_channels(50)["layer4"] == 2048
    net = ResNetBackbone(depth=18, out_features=("layer2",))
    assert not hasattr(net, "layer3")
    assert list(net(torch.randn(1, 3, 32, 32))) == ["layer2"]


def test_resnet_frozen_stages_and_norm_eval():
    net = ResNetBackbone(depth=18, frozen_stages=1).train()
    assert not any(p.requires_grad for p in net.conv1.parameters())
    assert not any(p.requires_grad for p in net.layer1.parameters())
    assert all(p.requires_grad for p in net.layer2.parameters())
    assert not net.bn1.training and not net.layer1[0].bn1.training and net.layer2[0].bn1.training
    net = ResNetBackbone(depth=18, norm_eval=True).train()
    assert net.training and net.layer1.training and not net.layer4[1].bn2.training


# -- FPN ---------------------------------------------------------------------------------------


def test_fpn_levels_modes_and_errors():
    feats = _feats((8, 16, 16), (16, 8, 8), (32, 4, 4))
    fpn = FPN([8, 16, 32], 4, num_outs=5, start_level=1)
    assert [o.shape[-1] for o in fpn(*feats)] == [8, 4, 2, 1, 1]
    fpn = FPN([8, 16, 32], 4, num_outs=4, extra="pool")
    outs = fpn(list(feats))
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]
    assert torch.equal(outs[3], outs[2][:, :, ::2, ::2])
    assert FPN.output_names(dict(num_outs=3)) == ("0", "1", "2")
    with pytest.raises(ValueError, match="num_outs=2 is smaller than the 3 inputs"):
        FPN([8, 16, 32], 4, num_outs=2)
    with pytest.raises(ValueError, match="FPN got 2 feature maps but in_channels has 3"):
        FPN([8, 16, 32], 4, num_outs=3)(*feats[:2])


# -- FCOSLiteHead ------------------------------------------------------------------------------


def _fcos_one_level(num_classes=3) -> FCOSLiteHead:
    return FCOSLiteHead(
        num_classes, 8, strides=(8,), feat_channels=8, stacked_convs=1, num_groups=4
    )


def test_fcos_default_regress_ranges():
    assert default_regress_ranges((8, 16, 32, 64, 128)) == (
        (-1, 64),
        (64, 128),
        (128, 256),
        (256, 512),
        (512, math.inf),
    )


def test_fcos_loss_on_hand_made_target():
    # One stride-8 level on a 64x64 input: points at 4, 12, ..., 60. The box (8, 8, 40, 40) has
    # centre (24, 24); the centre region (radius 1.5 * 8 = 12) holds points x, y in {20, 28}.
    head = _fcos_one_level(num_classes=3)
    sample = _sample([[8, 8, 40, 40]], [1])
    labels, targets = head.get_targets(
        [torch.tensor([[28.0, 20.0], [36.0, 36.0]])],
        sample.gt_instances.bboxes,
        sample.gt_instances.labels,
    )
    assert labels.tolist() == [1, 3]
    assert targets[0].tolist() == [20.0, 12.0, 12.0, 20.0]

    cls = torch.zeros(1, 3, 8, 8, requires_grad=True)  # p = 0.5 everywhere
    ltrb = torch.full((1, 4, 8, 8), 8.0, requires_grad=True)  # 16x16 boxes inside the gt box
    ctr = torch.zeros(1, 1, 8, 8, requires_grad=True)
    losses = head.loss(((cls,), (ltrb,), (ctr,)), [sample])
    # focal: 4 positives (alpha 0.25) and 64 * 3 - 4 negatives (0.75), each (1 - p_t)^2 ln 2
    expected_cls = (4 * 0.25 + (64 * 3 - 4) * 0.75) * 0.25 * LN2 / 4
    assert losses["loss_cls"].item() == pytest.approx(expected_cls, rel=1e-5)
    # a 16x16 box inside a 32x32 box: IoU = GIoU = 0.25
    assert losses["loss_bbox"].item() == pytest.approx(0.75, rel=1e-5)
    # centre-ness target 12/20 = 0.6 at all four points; BCE(sigmoid(0), 0.6) = ln 2
    assert losses["loss_centerness"].item() == pytest.approx(LN2, rel=1e-5)


def test_fcos_loss_with_zero_boxes_and_samples_without_detection_ground_truth():
    torch.manual_seed(0)
    head = FCOSLiteHead(3, 8, strides=(8, 16), feat_channels=8, stacked_convs=1, num_groups=4)
    outputs = head(*_feats((8, 8, 8), (8, 4, 4)))
    empty = _sample(torch.zeros(0, 4), torch.zeros(0))
    losses = head.loss(outputs, [empty, empty])
    assert losses["loss_cls"].item() > 0 and math.isfinite(losses["loss_cls"].item())
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())

    # a depth-only sample (no gt_instances) is left out: same loss as the detection sample alone
    det = _sample([[4, 6, 40, 50]], [2])
    both = head.loss(outputs, [det, _sample()])
    alone = head.loss(tuple(tuple(t[:1] for t in level) for level in outputs), [det])
    for k in alone:
        assert both[k].item() == pytest.approx(alone[k].item(), rel=1e-6)
    nothing = head.loss(outputs, [_sample(), _sample()])
    assert all(v.item() == 0.0 and v.requires_grad for v in nothing.values())


def _fcos_crafted_outputs():
    """One stride-8 level, 8x8 cells: class 2 at cell (row 2, col 3), point (28, 20), with
    distances (l, t, r, b) = (4, 6, 8, 10), i.e. box (24, 14, 36, 30); class 0 at the same cell
    with a lower score. Everything else scores sigmoid(-10)."""
    cls = torch.full((1, 3, 8, 8), -10.0)
    cls[0, 2, 2, 3] = 10.0
    cls[0, 0, 2, 3] = 1.0
    ltrb = torch.zeros(1, 4, 8, 8)
    ltrb[0, :, 2, 3] = torch.tensor([4.0, 6.0, 8.0, 10.0])
    ctr = torch.full((1, 1, 8, 8), -10.0)
    ctr[0, 0, 2, 3] = 10.0
    return (cls,), (ltrb,), (ctr,)


@pytest.mark.parametrize(
    "meta, box",
    [
        (dict(), [24.0, 14.0, 36.0, 30.0]),
        # resized by (w 0.5, h 0.25): original 128 x 256 (w x h), boxes divided exactly
        (dict(scale_factor=(0.5, 0.25), ori_shape=(256, 128)), [48.0, 56.0, 72.0, 120.0]),
        (dict(flip=True, flip_direction="horizontal"), [28.0, 14.0, 40.0, 30.0]),
    ],
    ids=["identity", "scaled", "flipped"],
)
def test_fcos_predict_writes_boxes_in_original_pixels(meta, box):
    head = _fcos_one_level()
    sample = _sample(**meta)
    head.predict(_fcos_crafted_outputs(), [sample])
    pred = sample.pred_instances
    assert pred.labels.tolist() == [2, 0]  # class-wise NMS keeps both, best first
    assert pred.bboxes.tolist() == [box, box]
    s = torch.sigmoid(torch.tensor(10.0))
    torch.testing.assert_close(
        pred.scores, torch.stack([s * s, torch.sigmoid(torch.tensor(1.0)) * s])
    )


def test_fcos_predict_limits_and_empty_output():
    head = _fcos_one_level()
    head.max_per_img = 1
    sample = _sample()
    head.predict(_fcos_crafted_outputs(), [sample])
    assert sample.pred_instances.labels.tolist() == [2]
    head.score_thr = 0.9999999
    head.predict(_fcos_crafted_outputs(), [sample])
    assert sample.pred_instances.bboxes.shape == (0, 4)
    assert sample.pred_instances.labels.dtype == torch.long


def test_fcos_validates_arguments():
    with pytest.raises(ValueError, match="2 regress_ranges for 3 strides"):
        FCOSLiteHead(3, 8, strides=(8, 16, 32), regress_ranges=((-1, 64), (64, 1e8)))
    with pytest.raises(
        ValueError, match="divisible by num_groups, got 8 channels and num_groups=32"
    ):
        FCOSLiteHead(3, 8, feat_channels=8)
    with pytest.raises(ValueError, match="unknown loss_weights keys \\['box'\\]"):
        FCOSLiteHead(3, 8, feat_channels=8, num_groups=4, loss_weights=dict(box=2.0))


# -- SegHead -----------------------------------------------------------------------------------


def test_seg_loss_hand_computed_with_ignore():
    head = SegHead(num_classes=4, in_channels=8)
    logits = torch.zeros(2, 4, 16, 16, requires_grad=True)  # uniform: CE = ln 4 per pixel
    seg = torch.full((2, 1, 64, 64), 255)
    seg[0, :, :10] = 3
    losses = head.loss(logits, [_sample(seg=seg[0]), _sample(seg=seg[1]), _sample()])
    assert losses["loss_ce"].item() == pytest.approx(math.log(4), rel=1e-6)
    assert "acc_seg" in losses and not losses["acc_seg"].requires_grad

    all_ignored = head.loss(logits, [_sample(seg=seg[1])])["loss_ce"]
    assert all_ignored.item() == 0.0 and all_ignored.requires_grad
    seg[1, 0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"labels \[7\] are outside \[0, 4\)"):
        head.loss(logits, [_sample(seg=seg[1])])


def test_seg_predict_at_original_size():
    head = SegHead(num_classes=3, in_channels=8)
    logits = torch.zeros(1, 3, 16, 16)
    logits[:, 1, :, :8] = 5.0  # class 1 left of x = 32 input pixels, class 2 right of it
    logits[:, 2, :, 8:] = 5.0
    # resized image 64 x 48 (w x h) inside a 64 x 64 padded input; original 128 x 96
    sample = _sample(img_shape=(48, 64), ori_shape=(96, 128), scale_factor=(0.5, 0.5))
    head.predict(logits, [sample])
    pred = sample.pred_sem_seg.data
    assert pred.shape == (1, 96, 128) and pred.dtype == torch.long
    assert (pred[0, :, :60] == 1).all() and (pred[0, :, 68:] == 2).all()
    assert sample.seg_logits.data.shape == (3, 96, 128)


# -- DenseDepthHead ----------------------------------------------------------------------------


def test_depth_head_bounds_and_loss_config():
    head = DenseDepthHead(
        in_channels=8, channels=8, max_depth=5.0, min_depth=0.5, loss=dict(type="L1DepthLoss")
    )
    out = head(torch.randn(2, 8, 4, 4) * 100)
    assert out.min() >= 0.5 and out.max() <= 5.0
    gt = torch.full((1, 16, 16), 2.0)
    assert list(head.loss(out, [_sample(depth=gt)])) == ["loss_l1"]
    assert list(DenseDepthHead(8).loss(out, [_sample(depth=gt)])) == ["loss_silog"]
    with pytest.raises(ValueError, match="need 0 < min_depth < max_depth"):
        DenseDepthHead(8, max_depth=1.0, min_depth=2.0)


@pytest.mark.parametrize("loss", ["SILogLoss", "L1DepthLoss"])
def test_depth_head_loss_ignores_prediction_at_invalid_pixels(loss):
    head = DenseDepthHead(in_channels=8, loss=dict(type=loss))
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 64, 64, generator=g) * 5 + 0.5
    gt[:, :, 40:] = 0.0  # invalid rows (and the padding of a 40 px high image)
    pred = torch.rand(2, 1, 64, 64, generator=g) * 5 + 0.5
    samples = [_sample(depth=gt[0]), _sample(depth=gt[1])]
    (key,) = head.loss(pred, samples)
    base = head.loss(pred, samples)[key]
    changed = pred.clone()
    changed[:, :, 40:] = 9.0
    assert head.loss(changed, samples)[key].item() == base.item()
    changed[:, :, 39] = 9.0  # a valid row does change it
    assert head.loss(changed, samples)[key].item() != base.item()
    # no sample with depth ground truth: zero, connected
    nothing = head.loss(pred.requires_grad_(), [_sample(), _sample()])[key]
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_depth_predict_at_original_size():
    head = DenseDepthHead(in_channels=8)
    sample = _sample(img_shape=(48, 64), ori_shape=(96, 128), scale_factor=(0.5, 0.5))
    head.predict(torch.full((1, 1, 16, 16), 3.0), [sample])
    depth = sample.pred_depth_map.data
    assert depth.shape == (1, 96, 128) and depth.dtype == torch.float32
    torch.testing.assert_close(depth, torch.full((1, 96, 128), 3.0))

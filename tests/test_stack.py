"""The OpenMMLab stack on current PyTorch: compiled mmcv ops and mmdet/mmseg registries."""

import importlib.metadata

import pytest
import torch
import torchvision


def test_pinned_versions():
    assert torch.__version__.split("+")[0] == "2.14.1"
    assert torchvision.__version__.split("+")[0] == "0.29.1"
    expected = {"mmengine": "0.10.7", "mmdet": "3.3.0", "mmsegmentation": "1.2.2", "mmcv": "2.1.0"}
    found = {name: importlib.metadata.version(name) for name in expected}
    assert found == expected


def test_mmcv_has_compiled_ops():
    from mmcv.utils import ext_loader

    ext = ext_loader.load_ext("_ext", ["nms", "roi_align_forward"])
    assert callable(ext.nms)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mmcv_batched_nms_matches_torchvision(seed):
    from mmcv.ops import batched_nms

    g = torch.Generator().manual_seed(seed)
    n = 300
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 60 + 4
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=g)
    classes = torch.randint(0, 5, (n,), generator=g)

    dets, keep = batched_nms(boxes, scores, classes, dict(type="nms", iou_threshold=0.5))
    keep_tv = torchvision.ops.batched_nms(boxes, scores, classes, 0.5)

    # Some boxes must be suppressed, or the comparison proves nothing.
    assert 0 < keep_tv.numel() < n
    assert torch.equal(keep, keep_tv)
    assert torch.equal(dets[:, :4], boxes[keep_tv])
    assert torch.equal(dets[:, 4], scores[keep_tv])


def test_mmdet_and_mmseg_blocks_build_from_their_registries():
    import mmdet.models  # noqa: F401  (registers mmdet's modules)
    import mmseg.models  # noqa: F401
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as MMSEG_MODELS

    # Other tests may leave 'mtv' as the default scope; each library builds in its own.
    with DefaultScope.overwrite_default_scope("mmdet"):
        fpn = MMDET_MODELS.build(
            dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=32, num_outs=4)
        )
        head = MMDET_MODELS.build(
            ConfigDict(
                type="FCOSHead",
                num_classes=3,
                in_channels=32,
                feat_channels=32,
                stacked_convs=1,
                strides=[8, 16, 32, 64],
                regress_ranges=((-1, 64), (64, 128), (128, 256), (256, 1e8)),
            )
        )
    with DefaultScope.overwrite_default_scope("mmseg"):
        seg = MMSEG_MODELS.build(
            dict(type="FCNHead", in_channels=512, channels=32, num_convs=1, num_classes=4)
        )
    feats = [
        torch.randn(1, c, 64 // s, 64 // s)
        for c, s in zip([64, 128, 256, 512], [1, 2, 4, 8], strict=True)
    ]
    outs = fpn(feats)
    assert [o.shape[-1] for o in outs] == [64, 32, 16, 8]
    cls_scores, bbox_preds, centernesses = head(outs)
    assert [c.shape[1] for c in cls_scores] == [3] * 4
    assert seg([feats[-1]]).shape == (1, 4, 8, 8)

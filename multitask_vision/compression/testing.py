"""Helpers for the compression tests and benchmarks: tiny models, synthetic batches, a small
evaluator built directly from mmdet / mmseg metric classes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from mmengine.structures import InstanceData, PixelData

from ..structures import MultiTaskDataSample

__all__ = [
    "LOSSES",
    "MMLAB_BLOCKS",
    "NATIVE_BLOCKS",
    "build_model",
    "small_evaluate",
    "synthetic_batches",
]

#: A small mmlab model: mmdet ResNet-18 at 1/4 width, mmdet FPN + FCOSHead (GroupNorm), mmseg
#: FCNHead, native depth head.
MMLAB_BLOCKS = [
    dict(name="backbone", type="ResNet", scope="mmdet", inputs=["image"],
         args=dict(depth=18, base_channels=16, out_indices=(0, 1, 2, 3), norm_eval=False)),
    dict(name="neck", type="FPN", scope="mmdet", inputs=["backbone"],
         args=dict(in_channels=[16, 32, 64, 128], out_channels=16, num_outs=4)),
    dict(name="det_head", type="FCOSHead", inputs=["neck"], task="detection",
         args=dict(num_classes=3, in_channels=16, feat_channels=16, stacked_convs=1,
                   norm_cfg=dict(type="GN", num_groups=4, requires_grad=True),
                   strides=[4, 8, 16, 32],
                   regress_ranges=((-1, 16), (16, 32), (32, 64), (64, 1e8)),
                   test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                                 nms=dict(type="nms", iou_threshold=0.5), max_per_img=20))),
    dict(name="seg_head", type="FCNHead", scope="mmseg", inputs=["backbone.3"],
         task="segmentation",
         args=dict(in_channels=128, channels=16, num_convs=1, num_classes=4, dropout_ratio=0.0,
                   loss_decode=dict(type="CrossEntropyLoss", avg_non_ignore=True))),
    dict(name="depth_head", type="DenseDepthHead", inputs=["neck.0", "neck.1"], task="depth",
         args=dict(in_channels=[16, 16], channels=16, max_depth=10.0)),
]  # fmt: skip

#: The same tasks with native blocks only (ResNet-18, FPN, FCOSLiteHead, SegHead, depth).
NATIVE_BLOCKS = [
    dict(name="backbone", type="ResNetBackbone", inputs=["image"], args=dict(depth=18)),
    dict(name="fpn", type="FPN", scope="mtv", inputs=["backbone"],
         args=dict(in_channels=[64, 128, 256, 512], out_channels=32, num_outs=4)),
    dict(name="det_head", type="FCOSLiteHead", inputs=["fpn"], task="detection",
         args=dict(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1,
                   strides=(4, 8, 16, 32), norm="BN", score_thr=0.05, nms_pre=100,
                   max_per_img=20)),
    dict(name="seg_head", type="SegHead", inputs=["fpn.0", "fpn.1"], task="segmentation",
         args=dict(num_classes=4, in_channels=[32, 32], channels=32)),
    dict(name="depth_head", type="DenseDepthHead", inputs=["backbone.layer4"], task="depth",
         args=dict(in_channels=512, channels=32)),
]  # fmt: skip

LOSSES = dict(detection=dict(weight=1.0), segmentation=dict(weight=1.0), depth=dict(weight=1.0))


def build_model(blocks: Sequence[Mapping] = MMLAB_BLOCKS, seed: int = 0):
    """A ``MultiTaskModel`` with initialised weights, in eval mode (ImageNet normalisation)."""
    from ..multitask_model import MultiTaskModel

    torch.manual_seed(seed)
    model = MultiTaskModel(
        copy.deepcopy(list(blocks)), LOSSES,
        data_preprocessor=dict(type="MultiTaskDataPreprocessor", pad_size_divisor=32),
    )  # fmt: skip
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel("WARNING")  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.eval()


def _scene(g: torch.Generator, h: int, w: int):
    """An image Tensor[3, h, w] in [0, 255] with 1-2 bright boxes, and its ground truth."""
    img = torch.rand(3, h, w, generator=g) * 60
    seg = torch.zeros(1, h, w, dtype=torch.long)
    depth = (1.0 + 4.0 * torch.linspace(0, 1, h)[:, None].expand(h, w))[None].clone()
    boxes, labels = [], []
    for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
        bw, bh = (int(torch.randint(h // 4, h // 2, (1,), generator=g)) for _ in range(2))
        x1 = int(torch.randint(0, w - bw, (1,), generator=g))
        y1 = int(torch.randint(0, h - bh, (1,), generator=g))
        c = int(torch.randint(0, 3, (1,), generator=g))
        img[:, y1 : y1 + bh, x1 : x1 + bw] = torch.tensor([200.0, 80.0, 40.0])[[c, 1, 2]][
            :, None, None
        ]
        seg[:, y1 : y1 + bh, x1 : x1 + bw] = c + 1
        depth[:, y1 : y1 + bh, x1 : x1 + bw] = 0.8 + 0.5 * c
        boxes.append([x1, y1, x1 + bw, y1 + bh])
        labels.append(c)
    return img, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), seg, depth


def synthetic_batches(
    model, n: int = 4, batch_size: int = 2, size: int = 64, seed: int = 0, train: bool = False
) -> list[dict]:
    """Preprocessed batches of synthetic scenes with detection, segmentation and depth ground
    truth (in original pixels = input pixels: no resize), through ``model.data_preprocessor``.
    """
    g = torch.Generator().manual_seed(seed)
    batches = []
    for b in range(n):
        inputs, samples = [], []
        for i in range(batch_size):
            img, boxes, labels, seg, depth = _scene(g, size, size)
            s = MultiTaskDataSample(metainfo=dict(
                img_id=f"{b}_{i}", img_path=f"synthetic/{b}_{i}.png", img_shape=(size, size),
                ori_shape=(size, size), scale_factor=(1.0, 1.0), dataset="synthetic",
                tasks=("depth", "detection", "segmentation"), flip=False,
            ))  # fmt: skip
            s.gt_instances = InstanceData(bboxes=boxes, labels=labels)
            s.ignored_instances = InstanceData(
                bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)
            )
            s.gt_sem_seg = PixelData(data=seg)
            s.gt_depth_map = PixelData(data=depth)
            inputs.append(img.flip(0).round().to(torch.uint8))  # BGR, as datasets load it
            samples.append(s)
        with torch.no_grad():
            batches.append(
                model.data_preprocessor(dict(inputs=inputs, data_samples=samples), train)
            )
    return batches


def small_evaluate(
    batches: Sequence[Mapping], num_classes: int = 3, num_seg_classes: int = 4
) -> Callable[[Callable], dict[str, float]]:
    """``evaluate(predict_fn)`` over ``batches`` with mmdet ``VOCMetric`` (mAP@0.5, in %), mmseg
    ``IoUMetric`` (mIoU, %) and mmseg ``DepthMetric`` (abs_rel, rmse, d1 ...)."""
    from mmdet.evaluation import VOCMetric
    from mmseg.evaluation import DepthMetric, IoUMetric

    def evaluate(predict_fn: Callable) -> dict[str, float]:
        voc = VOCMetric(iou_thrs=[0.5], eval_mode="area")
        voc.dataset_meta = dict(classes=[f"c{i}" for i in range(num_classes)])
        iou = IoUMetric()
        iou.dataset_meta = dict(classes=[f"s{i}" for i in range(num_seg_classes)])
        depth = DepthMetric()
        n = 0
        for batch in batches:
            batch = dict(batch, data_samples=copy.deepcopy(batch["data_samples"]))
            samples = [s.to_dict() for s in predict_fn(batch)]
            for metric in (voc, iou, depth):
                metric.process({}, samples)
            n += len(samples)
        out = {}
        out["detection/mAP"] = 100.0 * voc.evaluate(n)["pascal_voc/mAP"]
        out["segmentation/mIoU"] = iou.evaluate(n)["mIoU"]
        out.update({f"depth/{k}": v for k, v in depth.evaluate(n).items()})
        return out

    return evaluate

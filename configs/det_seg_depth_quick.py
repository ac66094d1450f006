# The same tasks and data with our native blocks only (ResNet-18, FPN, FCOSLiteHead, SegHead,
# DenseDepthHead): no mmdet/mmseg head in the graph, BatchNorm everywhere (easy to fold and
# quantize for deployment), 384 px.
#   uv run python train.py --config configs/det_seg_depth_quick.py
_base_ = [
    "_base_/default_runtime.py",
    "_base_/datasets/voc_nyu.py",
    "_base_/schedules/iter_20k.py",
]
neck = 96
model = dict(
    type="MultiTaskModel",
    data_preprocessor=dict(type="MultiTaskDataPreprocessor", pad_size_divisor=32),
    blocks=[
        dict(
            name="backbone",
            type="ResNetBackbone",
            inputs=["image"],
            args=dict(depth=18, pretrained=True),
        ),
        dict(
            name="neck",
            type="FPN",
            scope="mtv",
            inputs=["backbone"],
            args=dict(in_channels=[64, 128, 256, 512], out_channels=neck, num_outs=5),
        ),
        dict(
            name="det_head",
            type="FCOSLiteHead",
            task="detection",
            inputs=["neck.1", "neck.2", "neck.3", "neck.4"],
            args=dict(
                num_classes=20,
                in_channels=neck,
                feat_channels=neck,
                stacked_convs=2,
                strides=(8, 16, 32, 64),
                norm="BN",
            ),
        ),
        dict(
            name="seg_head",
            type="SegHead",
            task="segmentation",
            inputs=["neck.0", "neck.1", "neck.2"],
            args=dict(num_classes=21, in_channels=[neck] * 3, channels=neck),
        ),
        dict(
            name="depth_head",
            type="DenseDepthHead",
            task="depth",
            inputs=["neck.0", "neck.1", "neck.2"],
            args=dict(
                in_channels=[neck] * 3,
                channels=neck // 2,
                max_depth=10.0,
                loss=dict(type="SILogLoss"),
            ),
        ),
    ],  # fmt: skip
    losses=dict(detection=dict(weight=1.0), segmentation=dict(weight=1.0), depth=dict(weight=1.0)),
)
default_hooks = dict(
    checkpoint=dict(interval=2000, save_best="voc/detection/mAP", rule="greater"),
)

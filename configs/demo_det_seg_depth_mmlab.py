# The main job: the mmlab model (mmdet FPN + FCOSHead, mmseg FCNHead, native depth head) trained on
# the embedded demo data (VOC-style detection + segmentation, NYU-style depth) in minutes on a CPU.
#   uv run python train.py --config configs/demo_det_seg_depth_mmlab.py
_base_ = [
    "_base_/default_runtime.py",
    "_base_/datasets/demo.py",
    "_base_/models/det_seg_depth_mmlab.py",
]
num_det_classes = 4
num_seg_classes = 5  # background + 4 shapes
neck_channels = 64
model = dict(
    # Every batch on the 128 x 128 canvas that training crops and the deployed model (static
    # 1x3x128x128 input) see: padding a 128 x 96 NYU frame only to 128 x 96 scored depth AbsRel
    # 0.159 instead of 0.114 for the same weights.
    data_preprocessor=dict(
        type="MultiTaskDataPreprocessor", pad_size_divisor=32, pad_to=(128, 128)
    ),
    blocks=[
        dict(
            name="backbone",
            type="ResNetBackbone",
            inputs=["image"],
            args=dict(depth=18, pretrained=False),
        ),
        dict(
            name="neck",
            type="FPN",
            scope="mmdet",
            inputs=["backbone"],
            args=dict(
                in_channels=[64, 128, 256, 512],
                out_channels=neck_channels,
                start_level=1,
                add_extra_convs="on_output",
                num_outs=4,
            ),
        ),
        dict(
            name="det_head",
            type="FCOSHead",
            inputs=["neck"],
            task="detection",
            args=dict(
                num_classes=num_det_classes,
                in_channels=neck_channels,
                feat_channels=neck_channels,
                stacked_convs=2,
                strides=[8, 16, 32, 64],
                regress_ranges=((-1, 48), (48, 96), (96, 192), (192, 1e8)),
                norm_cfg=dict(type="GN", num_groups=16, requires_grad=True),
                test_cfg=dict(
                    nms_pre=1000,
                    min_bbox_size=0,
                    score_thr=0.05,
                    nms=dict(type="nms", iou_threshold=0.5),
                    max_per_img=100,
                ),
            ),
        ),
        dict(
            name="seg_head",
            type="FCNHead",
            scope="mmseg",
            inputs=["neck.0"],
            task="segmentation",
            args=dict(
                in_channels=neck_channels,
                channels=neck_channels,
                num_convs=2,
                concat_input=False,
                dropout_ratio=0.0,
                num_classes=num_seg_classes,
                norm_cfg=dict(type="BN", requires_grad=True),
                align_corners=False,
                loss_decode=dict(
                    type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True
                ),
            ),
        ),
        dict(
            name="depth_head",
            type="DenseDepthHead",
            task="depth",
            inputs=["neck.0", "neck.1", "neck.2"],
            args=dict(
                in_channels=[neck_channels] * 3,
                channels=32,
                max_depth=10.0,
                loss=dict(type="SILogLoss"),
            ),
        ),
    ],  # fmt: skip
)

# VOC carries two tasks (and half its images no mask): draw it 3x as often as NYU's depth.
train_dataloader = dict(sampler=dict(strategy="ratios", ratios=[3, 1]))
max_iters = 2400
train_cfg = dict(type="MultiTaskTrainLoop", max_iters=max_iters, val_interval=600)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=max_iters, eta_min=2e-5),
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=600, save_best="demo_voc/detection/mAP", rule="greater"),
)
custom_hooks = [
    dict(
        type="MultiTaskSummaryHook",
        eval_before_train=True,
        keys=[
            "demo_voc/detection/mAP",
            "demo_voc/segmentation/mIoU",
            "demo_nyu/depth/abs_rel",
            "demo_nyu/depth/rmse",
            "demo_nyu/depth/d1",
        ],
    )
]
# What the main job must reach on the demo validation split (printed by scripts/demo_report.py).
# (metric, rule, value); mmseg's IoUMetric reports percent.
demo_targets = [
    ("demo_voc/detection/mAP", ">=", 0.6),
    ("demo_voc/segmentation/mIoU", ">=", 60.0),
    ("demo_nyu/depth/abs_rel", "<=", 0.15),
]

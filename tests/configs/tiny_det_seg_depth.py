# A tiny version of the demo config for tests: 64 px, narrow heads, no workers, deterministic.
# Run from a directory holding data/demo (tests write a small demo tree there).
_base_ = ["../../configs/demo_det_seg_depth_mmlab.py"]
img_scale = (64, 64)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadMultiTaskAnnotations"),
    dict(type="RandomResize", scale=img_scale, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type="RandomCrop", crop_size=img_scale),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackMultiTaskInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadMultiTaskAnnotations"),
    dict(type="PackMultiTaskInputs"),
]
classes = ("circle", "square", "triangle", "cross")
voc = dict(
    type="VOCMultitaskDataset",
    data_root="data/demo/VOCdevkit/VOC2012",
    tasks=("detection", "segmentation"),
    metainfo=dict(dataset_name="demo_voc", classes=classes),
)
nyu = dict(
    type="NYUDepthDataset",
    data_root="data/demo/nyu_depth_v2",
    tasks=("depth",),
    metainfo=dict(dataset_name="demo_nyu"),
)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        datasets=[
            dict(voc, split="train", pipeline=train_pipeline),
            dict(nyu, split="train", pipeline=train_pipeline),
        ]
    ),
)
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        datasets=[
            dict(voc, split="val", pipeline=test_pipeline),
            dict(nyu, split="test", pipeline=test_pipeline),
        ]
    ),
)
test_dataloader = val_dataloader
neck = 16
model = dict(
    data_preprocessor=dict(type="MultiTaskDataPreprocessor", pad_size_divisor=32, pad_to=(64, 64)),
    blocks=[
        dict(name="backbone", type="ResNetBackbone", inputs=["image"], args=dict(depth=18)),
        dict(name="neck", type="FPN", scope="mmdet", inputs=["backbone"],
             args=dict(in_channels=[64, 128, 256, 512], out_channels=neck, start_level=1,
                       add_extra_convs="on_output", num_outs=4)),
        dict(name="det_head", type="FCOSHead", inputs=["neck"], task="detection",
             args=dict(num_classes=4, in_channels=neck, feat_channels=neck, stacked_convs=1,
                       strides=[8, 16, 32, 64],
                       regress_ranges=((-1, 16), (16, 32), (32, 64), (64, 1e8)),
                       norm_cfg=dict(type="GN", num_groups=4, requires_grad=True))),
        dict(name="seg_head", type="FCNHead", scope="mmseg", inputs=["neck.0"],
             task="segmentation",
             args=dict(in_channels=neck, channels=neck, num_convs=1, concat_input=False,
                       dropout_ratio=0.0, num_classes=5,
                       loss_decode=dict(type="CrossEntropyLoss", avg_non_ignore=True))),
        dict(name="depth_head", type="DenseDepthHead", task="depth", inputs=["neck.0", "neck.1"],
             args=dict(in_channels=[neck, neck], channels=8, max_depth=10.0)),
    ],
)  # fmt: skip
max_iters = 8
train_cfg = dict(type="MultiTaskTrainLoop", max_iters=max_iters, val_interval=1000)
param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=max_iters)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, save_best=None, max_keep_ckpts=10),
)
custom_hooks = [dict(type="TaskTraceHook")]
randomness = dict(seed=0, deterministic=True)
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends, name="visualizer")

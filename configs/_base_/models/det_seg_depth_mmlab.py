# ResNet-18 (ours) -> mmdet FPN -> mmdet FCOSHead (detection), mmseg FCNHead (segmentation) and
# our DenseDepthHead (depth). Channel widths are set by the configs that use it.
num_det_classes = 20
num_seg_classes = 21
neck_channels = 128
model = dict(
    type="MultiTaskModel",
    data_preprocessor=dict(type="MultiTaskDataPreprocessor", pad_size_divisor=32),
    blocks=[
        dict(
            name="backbone",
            type="ResNetBackbone",
            inputs=["image"],
            args=dict(depth=18, pretrained=True),
        ),  # ImageNet weights (see README)
        # strides 8, 16, 32, 64: layer2..layer4 plus one extra level on top
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
                regress_ranges=((-1, 64), (64, 128), (128, 256), (256, 1e8)),
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
                dropout_ratio=0.1,
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
                channels=neck_channels // 2,
                max_depth=10.0,
                loss=dict(type="SILogLoss"),
            ),
        ),
    ],  # fmt: skip
    losses=dict(detection=dict(weight=1.0), segmentation=dict(weight=1.0), depth=dict(weight=1.0)),
)

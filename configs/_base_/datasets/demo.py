# The embedded demo data (written by `python -m multitask_vision.data.demo --root data/demo`):
# a VOC-style tree (detection + segmentation of 4 shape classes) and an NYU-style tree (depth).
data_root = "data/demo"
data_hint = "uv run python -m multitask_vision.data.demo --root data/demo"
img_scale = (128, 128)  # (w, h)
demo_classes = ("circle", "square", "triangle", "cross")

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadMultiTaskAnnotations"),
    dict(type="RandomResize", scale=img_scale, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type="RandomCrop", crop_size=img_scale),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackMultiTaskInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadMultiTaskAnnotations"),  # after Resize: ground truth in original pixels
    dict(type="PackMultiTaskInputs"),
]


def _voc(split, pipeline):
    return dict(
        type="VOCMultitaskDataset",
        data_root=f"{data_root}/VOCdevkit/VOC2012",
        split=split,
        tasks=("detection", "segmentation"),
        metainfo=dict(dataset_name="demo_voc", classes=demo_classes),
        pipeline=pipeline,
    )


def _nyu(split, pipeline):
    return dict(
        type="NYUDepthDataset",
        data_root=f"{data_root}/nyu_depth_v2",
        split=split,
        tasks=("depth",),
        metainfo=dict(dataset_name="demo_nyu"),
        pipeline=pipeline,
    )


train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="MultiTaskGroupSampler", strategy="round_robin"),
    batch_sampler=dict(type="MultiTaskGroupBatchSampler"),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="MultiTaskConcatDataset",
        datasets=[_voc("train", train_pipeline), _nyu("train", train_pipeline)],
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="MultiTaskConcatDataset",
        datasets=[_voc("val", test_pipeline), _nyu("test", test_pipeline)],
    ),
)
test_dataloader = val_dataloader
val_evaluator = [
    dict(
        type="MultiTaskMetric",
        metrics=dict(
            demo_voc=dict(
                detection=dict(type="mmdet.VOCMetric", eval_mode="area"),
                segmentation=dict(type="mmseg.IoUMetric"),
            ),
            demo_nyu=dict(depth=dict(type="mmseg.DepthMetric", max_depth_eval=10.0)),
        ),
    )
]
test_evaluator = val_evaluator

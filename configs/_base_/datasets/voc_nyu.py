# PASCAL VOC 2012 (detection + segmentation) and NYU Depth v2 (depth), in their real layouts.
# Fetch them first: bash scripts/download_data.sh voc2012 nyu
data_hint = "bash scripts/download_data.sh voc2012 nyu"
voc_root = "data/VOCdevkit/VOC2012"
nyu_root = "data/nyu_depth_v2"
img_scale = (512, 512)  # (w, h)

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadMultiTaskAnnotations"),
    dict(type="RandomResize", scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
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
voc = dict(type="VOCMultitaskDataset", data_root=voc_root, tasks=("detection", "segmentation"))
nyu = dict(type="NYUDepthDataset", data_root=nyu_root, tasks=("depth",))

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    # VOC has ~5.7k train images, NYU's labeled split 795: sample with temperature 2 so that the
    # small dataset is seen often enough without being memorised.
    sampler=dict(type="MultiTaskGroupSampler", strategy="temperature", temperature=2.0),
    batch_sampler=dict(type="MultiTaskGroupBatchSampler"),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="MultiTaskConcatDataset",
        datasets=[
            dict(voc, split="train", pipeline=train_pipeline),
            dict(nyu, split="train", pipeline=train_pipeline),
        ],
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="MultiTaskConcatDataset",
        datasets=[
            dict(voc, split="val", pipeline=test_pipeline, test_mode=True),
            dict(nyu, split="test", pipeline=test_pipeline, test_mode=True),
        ],
    ),
)
test_dataloader = val_dataloader
val_evaluator = [
    dict(
        type="MultiTaskMetric",
        metrics=dict(
            voc=dict(
                detection=dict(type="mmdet.VOCMetric", eval_mode="area"),  # VOC2012: area AP
                segmentation=dict(type="mmseg.IoUMetric"),
            ),
            # Eigen crop and 1e-3..10 m, as the depth literature evaluates NYU
            nyu=dict(depth=dict(type="mmseg.DepthMetric", min_depth_eval=1e-3,
                                max_depth_eval=10.0, crop_type="nyu_crop")),
        ),
    )
]  # fmt: skip
test_evaluator = val_evaluator

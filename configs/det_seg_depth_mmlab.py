# VOC 2012 detection + segmentation and NYU Depth v2 depth with one ResNet-18 backbone:
# mmdet FPN + FCOSHead, mmseg FCNHead, our DenseDepthHead.
#   bash scripts/download_data.sh voc2012 nyu
#   uv run python train.py --config configs/det_seg_depth_mmlab.py
_base_ = [
    "_base_/default_runtime.py",
    "_base_/datasets/voc_nyu.py",
    "_base_/schedules/iter_20k.py",
    "_base_/models/det_seg_depth_mmlab.py",
]
default_hooks = dict(
    checkpoint=dict(interval=2000, save_best="voc/detection/mAP", rule="greater"),
)
custom_hooks = [
    dict(
        type="MultiTaskSummaryHook",
        eval_before_train=False,
        keys=["voc/detection/mAP", "voc/segmentation/mIoU", "nyu/depth/abs_rel", "nyu/depth/rmse",
              "nyu/depth/d1"],
    )
]  # fmt: skip
# Single-task results of the same recipe (fill in from your own single-task runs) give Delta_m:
# baselines = {"voc/detection/mAP": ..., "voc/segmentation/mIoU": ..., "nyu/depth/abs_rel": ...}

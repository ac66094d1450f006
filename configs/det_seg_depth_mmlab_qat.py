# Quantization-aware training of det_seg_depth_mmlab: fake quantization (int8 weights per
# channel, uint8 activations, as ONNX Runtime's QLinearConv runs them) in every block, fine-tuned
# from the float model; deploy.py with quantization=dict(method='qat') converts it to int8 ONNX.
#   uv run python train.py --config configs/det_seg_depth_mmlab_qat.py \
#       --cfg-options load_from=work_dirs/det_seg_depth_mmlab/best_voc_detection_mAP_iter_20000.pth
_base_ = ["det_seg_depth_mmlab.py"]
model = dict(qat=dict(blocks="all", backend="onnxruntime", observer="moving_average_minmax"))
load_from = None  # the float checkpoint to start from (see above)
max_iters = 2000
train_cfg = dict(type="MultiTaskTrainLoop", max_iters=max_iters, val_interval=500)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, eta_min=1e-5),
]
default_hooks = dict(checkpoint=dict(interval=500))
custom_hooks = [
    dict(type="QATCheckpointHook"),  # marks checkpoints as QAT (meta['qat'])
    dict(type="MultiTaskSummaryHook", eval_before_train=True,
         keys=["voc/detection/mAP", "voc/segmentation/mIoU", "nyu/depth/abs_rel"]),
]  # fmt: skip

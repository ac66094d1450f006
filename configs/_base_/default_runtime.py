# Runtime defaults of MultitaskVision: mmengine Runner, iteration-based, TensorBoard logging.
default_scope = "mtv"
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),  # train.py switches to gloo when there is no GPU
)
vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(by_epoch=False, window_size=10)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    # max_keep_ckpts >= 2: mmengine deletes the oldest checkpoint before writing the next one.
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=500, max_keep_ckpts=2),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)

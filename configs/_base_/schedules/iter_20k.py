# 20k iterations, SGD with warm-up and cosine decay, gradient clipping.
max_iters = 20000
train_cfg = dict(type="MultiTaskTrainLoop", max_iters=max_iters, val_interval=2000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=1000, end=max_iters, eta_min=1e-4),
]

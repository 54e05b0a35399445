# Polyp-PVT / KDAS recipe: AdamW lr 1e-4, weight decay 1e-4, gradient
# values clipped to [-0.5, 0.5], constant learning rate (the reference's
# adjust_lr decays by 0.1 every 200 epochs, i.e. never within 100), 100
# epochs. With the 1,450 PraNet training images and batch 16 an epoch is
# 91 iterations. Pair with ../default_runtime.py (epoch-based logging, the
# polyp visualiser).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(type='value', clip_value=0.5))
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=True, interval=10, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='PolypVisualizationHook'))

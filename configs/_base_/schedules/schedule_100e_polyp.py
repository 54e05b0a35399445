# Polyp-PVT / KDAS recipe: AdamW lr 1e-4, weight decay 1e-4, gradient
# values clipped to [-0.5, 0.5], constant learning rate (the reference's
# adjust_lr decays by 0.1 every 200 epochs, i.e. never within the run), and
# the reference's `for epoch in range(1, 100)`: 99 epochs ("100e" in the
# config names is the scripts' nominal --epoch 100). With the 1,450 PraNet
# training images and batch 16 an epoch is 91 iterations (batches), each
# trained at the three multi-scale rates: 273 optimiser steps per epoch
# (mmseg_kdas/engine/loops.py; iterations, intervals and schedulers count
# batches). Pair with ../default_runtime.py (epoch-based logging, the polyp
# visualiser).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(type='value', clip_value=0.5))
param_scheduler = []
train_cfg = dict(
    type='MultiScaleEpochBasedTrainLoop', max_epochs=99, val_interval=10)
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

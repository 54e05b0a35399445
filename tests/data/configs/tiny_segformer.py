# A few-second CPU training run for tests of the tools: a tiny SegFormer on
# generated binary masks, every batch trained at three scales (32, 40 and 48
# px: three optimiser steps per iteration, as the polyp recipe). Set
# train_dataloader.dataset.data_root.
_base_ = ['mmseg::_base_/default_runtime.py']
from mmseg_kdas.testing import TEST_PREPROCESSOR, tiny_segformer  # noqa: E402

custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
default_scope = 'mmseg'

# the tiny SegFormer of the tests (mmseg_kdas.testing), at 32x32: the test
# preprocessor with a fixed size (instead of its size divisor) and the
# three scales
model = tiny_segformer(data_preprocessor=dict(
    TEST_PREPROCESSOR,
    type='BatchAugSegDataPreProcessor',
    size=(32, 32),
    size_divisor=None,
    batch_augments=[
        dict(
            type='BatchMultiScaleResize',
            rates=(1.0, 1.25, 1.5),
            size_divisor=8,
            mode='all')
    ]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BaseSegDataset',
        data_root='',
        metainfo=dict(classes=('background', 'polyp')),
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        img_suffix='.png',
        seg_map_suffix='.png',
        pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                        begin=0, end=6)]
train_cfg = dict(
    type='MultiScaleIterBasedTrainLoop', max_iters=6, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
randomness = dict(seed=0, deterministic=False)
log_level = 'WARNING'

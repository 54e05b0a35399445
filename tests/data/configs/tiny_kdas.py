# A few-second CPU KDAS run for the tools' tests: tiny PVTv2 + PolypPVTHead
# teacher (random weights) and student on the synthetic polyp set. Set
# train_dataloader.dataset.data_root.
_base_ = ['../../../configs/_base_/default_runtime.py']

from mmseg_kdas.testing import tiny_polyp_pvt  # noqa: E402

model = dict(
    type='KDASDistiller',
    teacher=tiny_polyp_pvt([32, 64, 128, 256], 16),
    teacher_ckpt=None,
    student=tiny_polyp_pvt([16, 32, 64, 128], 8),
    # KDAS terms at the distiller's defaults (the paper's setting)
)
# what the Runner gives a model without one: the student's
data_preprocessor = model['student']['data_preprocessor']

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='PolypDataset',
        data_root='',
        data_prefix=dict(
            img_path='TrainDataset/images',
            seg_map_path='TrainDataset/masks'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPolypAnnotations'),
            dict(type='Resize', scale=(64, 64), keep_ratio=False),
            dict(type='PackSegInputs')
        ]))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(type='value', clip_value=0.5),
    constructor='KDASOptimWrapperConstructor')
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='StudentExportHook')]
randomness = dict(seed=0)

# A few-second CPU KDAS run for the tools' tests: tiny PVTv2 + PolypPVTHead
# teacher (random weights) and student on the synthetic polyp set. Set
# train_dataloader.dataset.data_root.
_base_ = ['../../../configs/_base_/default_runtime.py']

norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32)


def polyp_pvt(dims, channels):
    return dict(
        type='EncoderDecoder',
        data_preprocessor=data_preprocessor,
        backbone=dict(
            type='PVTv2',
            arch=dict(
                embed_dims=dims,
                depths=[1, 1, 1, 1],
                num_heads=[1, 2, 4, 8],
                sr_ratios=[8, 4, 2, 1],
                mlp_ratios=[2, 2, 2, 2]),
            drop_path_rate=0.0),
        decode_head=dict(
            type='PolypPVTHead',
            in_channels=dims,
            channels=channels,
            num_classes=2,
            out_channels=1,
            threshold=0.5,
            norm_cfg=norm_cfg,
            loss_decode=dict(type='StructureLoss')),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


model = dict(
    type='KDASDistiller',
    teacher=polyp_pvt([32, 64, 128, 256], 16),
    teacher_ckpt=None,
    student=polyp_pvt([16, 32, 64, 128], 8),
    # KDAS terms at the distiller's defaults (the paper's setting)
)
del polyp_pvt

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

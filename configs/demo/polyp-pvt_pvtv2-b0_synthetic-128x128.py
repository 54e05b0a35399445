# The demo's teacher (tools/demo.sh): Polyp-PVT on PVTv2-B0, trained from
# scratch for a few CPU minutes on the synthetic polyp set that the demo
# writes to work_dirs/demo/data (PraNet layout, 128x128 images).
_base_ = [
    '../polyp_pvt/polyp-pvt_pvtv2-b0_1xb16-100e_pranet-352x352.py',
    '../_base_/datasets/kvasir_test_set.py'
]

data_root = 'work_dirs/demo/data'
img_scale = (128, 128)
meta_keys = {{_base_.meta_keys}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPolypAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow'),
    dict(type='LoadPolypAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]

# no ImageNet weights offline: random initialisation; one multi-scale rate
# per iteration in turn (a third of the reference's steps) to stay quick.
# The top-level data_preprocessor is what mmengine's Runner gives models
# that set none (the demo's KDAS distiller): it must say the same.
data_preprocessor = dict(batch_augments=[
    dict(type='BatchMultiScaleResize', rates=(0.75, 1.0, 1.25), mode='cycle')
])
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=None))

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        _base_.kvasir_test_set,
        _delete_=True,
        data_root=data_root,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(
    _delete_=True,
    type='MultiScaleIterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
# every iteration draws from (seed, iteration), as in the study
custom_hooks = [dict(type='IterationSeedHook')]

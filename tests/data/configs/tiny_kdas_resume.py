# tiny_kdas.py with the state a resumed KDAS run must restore: the warm-up
# multiplier of the distillation terms (DistillWeightWarmupHook) and the
# phase of one-rate-per-iteration multi-scale training (rates 0.5 / 1 / 1.5:
# 32, 64 and 96 px), 5 iterations, checkpoints every 2.
_base_ = ['./tiny_kdas.py']

model = dict(
    data_preprocessor=dict(
        _base_.data_preprocessor,
        type='BatchAugSegDataPreProcessor',
        batch_augments=[
            dict(
                type='BatchMultiScaleResize',
                rates=(0.5, 1.0, 1.5),
                mode='cycle')
        ]))
train_cfg = dict(
    _delete_=True,
    type='MultiScaleIterBasedTrainLoop',
    max_iters=5,
    val_interval=100)
default_hooks = dict(checkpoint=dict(interval=2))
custom_hooks = [
    dict(type='StudentExportHook'),
    dict(type='DistillWeightWarmupHook', warmup_iters=4)
]

# The demo's distillation (tools/demo.sh): the demo teacher (Polyp-PVT on
# PVTv2-B0, work_dirs/demo/teacher/iter_300.pth) teaches the Polyp-PVT
# decoder on a PVTv2 of half B0's widths and one block per stage, with the
# KDAS terms of the paper's configuration (alpha 0.3, L_AT on P1 and P2 at
# T = 2, L_SGM on P1). The student is exported alone next to each
# checkpoint (iter_300_student.pth + student_config.py).
_base_ = ['./polyp-pvt_pvtv2-b0_synthetic-128x128.py']

student_dims = [16, 32, 80, 128]
model = dict(
    _delete_=True,
    type='KDASDistiller',
    teacher=_base_.model,
    teacher_ckpt='work_dirs/demo/teacher/iter_300.pth',
    student=dict(
        _base_.model,
        backbone=dict(
            _base_.model.backbone,
            arch=dict(
                embed_dims=student_dims,
                depths=[1, 1, 1, 1],
                num_heads=[1, 2, 5, 8],
                sr_ratios=[8, 4, 2, 1],
                mlp_ratios=[8, 8, 4, 4])),
        decode_head=dict(
            _base_.model.decode_head, in_channels=student_dims)),
    # the KDAS terms at KDASDistiller's defaults, the paper's setting:
    # alpha 0.3, L_AT on P1 and P2 at T = 2, L_SGM (MSE of P + P^T) on P1
)
optim_wrapper = dict(constructor='KDASOptimWrapperConstructor')
custom_hooks = [
    dict(type='StudentExportHook'),
    dict(type='IterationSeedHook')
]

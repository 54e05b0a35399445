# KDAS from the toy teacher to the toy student (the paper's setting), with
# the distillers' schedule and runtime (the KDAS optimiser constructor, the
# student's export).
_base_ = ['../../../../configs/_base_/kdas_100e.py']
from mmseg_kdas.testing import tiny_polyp_pvt  # noqa: E402

_preprocessor = dict(
    type='BatchAugSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32,
    test_cfg=dict(size_divisor=32))
model = dict(
    type='KDASDistiller',
    teacher=tiny_polyp_pvt([32, 64, 128, 256], 16,
                           data_preprocessor=_preprocessor),
    teacher_ckpt=None,
    student=tiny_polyp_pvt([16, 32, 64, 128], 8,
                           data_preprocessor=_preprocessor),
    alpha=0.3,
    at_pairs=[dict(student=0, teacher=0),
              dict(student=1, teacher=1)],
    loss_at=dict(type='AttentionSupervisionLoss', temperature=2.0),
    sgm_pairs=[
        dict(
            student=0,
            teacher=0,
            neck=dict(type='SGMNeck', embedding='transpose'))
    ],
    loss_sgm=dict(type='SymmetricKDLoss', loss_type='mse'))

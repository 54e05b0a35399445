# KDAS beyond Polyp-PVT: a SegFormer MiT-B2 teacher teaches a MiT-B0 student
# (mmseg's MixVisionTransformer + SegformerHead, two-class softmax logits at
# 1/4 of the input size). Distilled: the logits (attention supervision over
# classes x pixels; SGM as P + P^T per class) and the last backbone stage
# (SGM covariance embedding, a 1x1 adapter from 256 to 512 channels).
# The teacher: ../segformer/segformer_mit-b2_1xb16-100e_pranet-352x352.py
#   --cfg-options model.teacher_ckpt=work_dirs/.../epoch_99.pth
_base_ = ['../segformer/segformer_mit-b2_1xb16-100e_pranet-352x352.py']

student_checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b0_20220624-7e0fe6dd.pth'  # noqa
model = dict(
    _delete_=True,
    type='KDASDistiller',
    teacher=_base_.model,
    teacher_ckpt='work_dirs/segformer_mit-b2_1xb16-100e_pranet-352x352/'
    'epoch_99.pth',
    student=dict(
        _base_.model,
        backbone=dict(
            _base_.model.backbone,
            embed_dims=32,
            num_layers=[2, 2, 2, 2],
            init_cfg=dict(type='Pretrained', checkpoint=student_checkpoint)),
        decode_head=dict(
            _base_.model.decode_head, in_channels=[32, 64, 160, 256])),
    alpha=0.3,
    at_weight=1.0,
    sgm_weight=1.0,
    at_pairs=[dict(student=0, teacher=0)],
    loss_at=dict(type='AttentionSupervisionLoss', temperature=2.0),
    sgm_pairs=[
        dict(
            student=0,
            teacher=0,
            neck=dict(type='SGMNeck', embedding='transpose')),
        dict(
            student='backbone:3',
            teacher='backbone:3',
            neck=dict(
                type='SGMNeck',
                embedding='covariance',
                student_channels=256,
                teacher_channels=512)),
    ],
    loss_sgm=dict(type='SymmetricKDLoss', loss_type='mse'))

optim_wrapper = dict(constructor='KDASOptimWrapperConstructor')
custom_hooks = [dict(type='StudentExportHook')]

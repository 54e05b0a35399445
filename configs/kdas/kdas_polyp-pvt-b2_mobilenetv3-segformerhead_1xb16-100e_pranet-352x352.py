# KDAS with a student from another toolbox: the Polyp-PVT B2 teacher teaches
# a MobileNetV3-Large backbone from mmpretrain (type 'mmpretrain.MobileNetV3',
# ImageNet weights) with mmseg's all-MLP SegformerHead predicting one polyp
# logit map at 1/4 of the input size (trained with the structure loss). Its
# map is supervised by the attention of both teacher outputs P1 and P2 and
# guided by P1 through the SGM; it is resized to the teacher's size for both.
_base_ = ['./kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py']
custom_imports = dict(
    imports=['mmseg_kdas', 'mmpretrain.models'], allow_failed_imports=False)

student_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/mobilenet_v3/mobilenet-v3-large_8xb128_in1k_20221114-0ed9ed9a.pth'  # noqa
model = dict(
    student=dict(
        _delete_=True,
        type='EncoderDecoder',
        data_preprocessor=_base_.data_preprocessor,
        backbone=dict(
            type='mmpretrain.MobileNetV3',
            arch='large',
            # strides 4, 8, 16 and 32: 24, 40, 112 and 960 channels
            out_indices=(3, 6, 12, 16),
            init_cfg=dict(
                type='Pretrained',
                checkpoint=student_checkpoint,
                prefix='backbone.')),
        decode_head=dict(
            type='SegformerHead',
            in_channels=[24, 40, 112, 960],
            in_index=[0, 1, 2, 3],
            channels=128,
            dropout_ratio=0.1,
            num_classes=2,
            out_channels=1,
            threshold=0.5,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='StructureLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole')),
    at_pairs=[dict(student=0, teacher=0),
              dict(student=0, teacher=1)],
    sgm_pairs=[
        dict(
            student=0,
            teacher=0,
            neck=dict(type='SGMNeck', embedding='transpose'))
    ])

# Polyp-PVT (Dong et al., CAAI AIR 2023): PVTv2-B2 backbone + PolypPVTHead.
# The head outputs two 1-channel logit maps [P1, P2]; the prediction is
# sigmoid(P1 + P2) > threshold. Needs custom_imports of mmseg_kdas.
norm_cfg = dict(type='BN', requires_grad=True)
# The reference trains every batch at the rates 0.75, 1 and 1.25 (256, 352
# and 448 px), one optimiser step each: mode='all', with the train loops of
# mmseg_kdas (../schedules/schedule_100e_polyp.py). mode='cycle' takes one
# rate per iteration in turn instead (a third of the steps and the time).
data_preprocessor = dict(
    type='BatchAugSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # the decoder needs sides that are multiples of 32 (pipelines resize
    # to 352x352; padding, labelled 255, only applies to other sizes)
    size_divisor=32,
    test_cfg=dict(size_divisor=32),
    batch_augments=[
        dict(type='BatchMultiScaleResize', rates=(0.75, 1.0, 1.25),
             mode='all')
    ])
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='PVTv2',
        arch='b2',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # the official ImageNet file, loaded as it is (head dropped)
        init_cfg=dict(type='Pretrained',
                      checkpoint='pretrain/pvt_v2_b2.pth')),
    decode_head=dict(
        type='PolypPVTHead',
        in_channels=[64, 128, 320, 512],
        channels=32,
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='StructureLoss', loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

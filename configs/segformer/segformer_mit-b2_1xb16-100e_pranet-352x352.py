# SegFormer MiT-B2 (mmseg's own backbone and head) on the PraNet polyp split
# with two classes (softmax cross-entropy): the teacher of
# kdas_segformer-mit-b2_segformer-mit-b0_1xb16-100e_pranet-352x352.py.
# Train it first:
#   python tools/train.py \
#       configs/segformer/segformer_mit-b2_1xb16-100e_pranet-352x352.py
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/pranet_polyp.py',
    '../_base_/polyp_100e.py',
]

checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b2_20220624-66e8bf70.pth'  # noqa
# multi-scale training as the Polyp-PVT recipe (rates 0.75, 1, 1.25), also
# as the top-level variable, which mmengine's Runner gives models that set
# none (the KDAS distiller of this teacher)
data_preprocessor = dict(
    type='BatchAugSegDataPreProcessor',
    size_divisor=32,
    test_cfg=dict(size_divisor=32),
    batch_augments=[
        dict(
            type='BatchMultiScaleResize',
            rates=(0.75, 1.0, 1.25),
            mode='all')
    ])
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        embed_dims=64,
        num_heads=[1, 2, 5, 8],
        num_layers=[3, 4, 6, 3],
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(
        in_channels=[64, 128, 320, 512],
        num_classes=2,
        norm_cfg=dict(type='BN', requires_grad=True)))
# softmax cross-entropy needs label maps: binarised training masks
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.train_pipeline_binary}}))

# Student baseline of KDAS: the Polyp-PVT decoder on PVTv2-B0 (3,650,740
# parameters) trained without distillation, same recipe as the teacher.
# Put the official ImageNet file at pretrain/pvt_v2_b0.pth.
_base_ = [
    '../_base_/models/polyp_pvt_pvtv2-b2.py',
    '../_base_/datasets/pranet_polyp.py',
    '../_base_/schedules/schedule_100e_polyp.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        arch='b0',
        init_cfg=dict(type='Pretrained',
                      checkpoint='pretrain/pvt_v2_b0.pth')),
    decode_head=dict(in_channels=[32, 64, 160, 256]))
train_dataloader = dict(batch_size=16)

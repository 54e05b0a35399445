# Polyp-PVT on PVTv2-B0 (3,650,740 parameters): ./polyp_pvt_pvtv2-b2.py
# with the B0 backbone, from the official ImageNet file
# pretrain/pvt_v2_b0.pth, and the head's inputs of its widths.
_base_ = ['./polyp_pvt_pvtv2-b2.py']

model = dict(
    backbone=dict(
        arch='b0',
        init_cfg=dict(type='Pretrained',
                      checkpoint='pretrain/pvt_v2_b0.pth')),
    decode_head=dict(in_channels=[32, 64, 160, 256]))

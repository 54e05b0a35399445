# Student baseline of KDAS: the Polyp-PVT decoder on PVTv2-B0 (3,650,740
# parameters) trained without distillation, same recipe as the teacher.
# Put the official ImageNet file at pretrain/pvt_v2_b0.pth.
_base_ = [
    '../_base_/models/polyp_pvt_pvtv2-b0.py',
    '../_base_/datasets/pranet_polyp.py',
    '../_base_/polyp_100e.py',
]
train_dataloader = dict(batch_size=16)

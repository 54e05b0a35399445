# Your own data, step 2: the student baseline, Polyp-PVT on PVTv2-B0 (from
# the ImageNet file pretrain/pvt_v2_b0.pth) without distillation, same
# recipe and data as the teacher config of this folder: what KDAS has to
# beat. Writes to work_dirs/<data>/student.
#   python tools/train.py \
#       configs/own_data/polyp-pvt_pvtv2-b0_1xb16-100e_own-data-352x352.py
_base_ = [
    '../_base_/models/polyp_pvt_pvtv2-b2.py',
    './_base_/dataset.py',
    '../_base_/schedules/schedule_100e_polyp.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
default_scope = 'mmseg'

model = dict(
    backbone=dict(
        arch='b0',
        init_cfg=dict(type='Pretrained',
                      checkpoint='pretrain/pvt_v2_b0.pth')),
    decode_head=dict(in_channels=[32, 64, 160, 256]))
work_dir = _base_.work_root + '/student'

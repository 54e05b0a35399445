# Your own data, step 2: the student baseline, Polyp-PVT on PVTv2-B0 (from
# the ImageNet file pretrain/pvt_v2_b0.pth) without distillation, same
# recipe and data as the teacher config of this folder: what KDAS has to
# beat. Writes to work_dirs/<data>/student.
#   python tools/train.py \
#       configs/own_data/polyp-pvt_pvtv2-b0_1xb16-100e_own-data-352x352.py
_base_ = [
    '../_base_/models/polyp_pvt_pvtv2-b0.py',
    './_base_/dataset.py',
    '../_base_/polyp_100e.py',
]

work_dir = _base_.work_root + '/student'

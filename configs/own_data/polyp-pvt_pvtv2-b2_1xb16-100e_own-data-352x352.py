# Your own data, step 1: the teacher, Polyp-PVT on PVTv2-B2 (from the
# ImageNet file pretrain/pvt_v2_b2.pth), the reference recipe (352x352,
# batch 16, 99 epochs, AdamW 1e-4), trained on TrainDataset minus val.txt,
# validated on val.txt every 10 epochs, tested on the test sets of
# ./_base_/dataset.py. Writes to work_dirs/<data>/teacher; the KDAS config
# of this folder distils from its last checkpoint (epoch_99.pth).
#   python tools/train.py \
#       configs/own_data/polyp-pvt_pvtv2-b2_1xb16-100e_own-data-352x352.py
_base_ = [
    '../_base_/models/polyp_pvt_pvtv2-b2.py',
    './_base_/dataset.py',
    '../_base_/polyp_100e.py',
]

work_dir = _base_.work_root + '/teacher'

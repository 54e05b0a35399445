# KDAS, Polyp-PVT PVTv2-B2 teacher -> PVTv2-B0 student (the design card's
# run): trained on the PraNet split, validated and tested on the 100 Kvasir
# test images only (../_base_/datasets/pranet_polyp_kvasir.py). Everything
# else as in kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py
# (five test sets), e.g.
#   python tools/train.py configs/kdas/kdas_pvtb2_to_b0_kvasir.py
# with the teacher at pretrain/PolypPVT.pth (or
# --cfg-options model.teacher_ckpt=path/to/teacher.pth).
_base_ = [
    '../_base_/models/kdas_polyp-pvt-b2_polyp-pvt-b0.py',
    '../_base_/datasets/pranet_polyp_kvasir.py',
    '../_base_/kdas_100e.py',
]

# KDAS, Polyp-PVT PVTv2-B2 teacher -> PVTv2-B0 student (the design card's
# run): trained on the PraNet split, validated and tested on the 100 Kvasir
# test images only. Everything else as in
# kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py (five test
# sets), e.g.
#   python tools/train.py configs/kdas/kdas_pvtb2_to_b0_kvasir.py \
#       --cfg-options model.teacher_ckpt=pretrain/PolypPVT.pth
_base_ = [
    './kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py',
    '../_base_/datasets/kvasir_test_set.py'
]

val_dataloader = dict(
    dataset=dict(
        _base_.kvasir_test_set,
        _delete_=True,
        data_root=_base_.data_root,
        pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

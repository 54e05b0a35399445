# Polyp-PVT teacher of KDAS: PVTv2-B2 + Polyp-PVT decoder (25,107,604
# parameters), PraNet split at 352x352, 99 epochs (the reference's
# range(1, 100)), batch 16 on 1 GPU.
# Put the official ImageNet file at pretrain/pvt_v2_b2.pth; to evaluate the
# authors' PolypPVT.pth, convert it with
# tools/model_converters/polyp_pvt2mmseg.py and pass it as the checkpoint.
_base_ = [
    '../_base_/models/polyp_pvt_pvtv2-b2.py',
    '../_base_/datasets/pranet_polyp.py',
    '../_base_/polyp_100e.py',
]
train_dataloader = dict(batch_size=16)

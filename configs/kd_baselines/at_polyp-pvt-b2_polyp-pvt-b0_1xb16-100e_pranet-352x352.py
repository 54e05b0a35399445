# Baseline for KDAS: attention transfer (Zagoruyko & Komodakis, ICLR 2017)
# on the four PVTv2 stages (B0: 32-256 channels, B2: 64-512; the attention
# maps pool the channels away, so no adapter is needed), with the paper's
# weight beta / 2 = 500, through the KDAS distiller in place of its L_AT and
# without L_SGM:
#   L = (1 - 0.3) * L_seg + 0.3 * 500 * sum_i AT(stage_i)
# Same teacher, student, data and schedule as the KDAS config it inherits.
_base_ = [
    '../kdas/kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
]

model = dict(
    at_weight=1.0,
    at_pairs=[
        dict(student=f'backbone:{i}', teacher=f'backbone:{i}')
        for i in range(4)
    ],
    loss_at=dict(
        _delete_=True, type='AttentionTransferLoss', p=2.0,
        loss_weight=500.0),
    sgm_weight=0.0,
    sgm_pairs=[])

# Baseline for KDAS: channel-wise distillation (CWD, Shu et al., ICCV 2021)
# on the logits P1 and P2, with mmrazor's segmentation setting (T = 1, loss
# weight 3), through the KDAS distiller in place of its L_AT and without
# L_SGM:
#   L = (1 - 0.3) * L_seg + 0.3 * 3 * (CWD(P1) + CWD(P2))
# On 1-channel logits CWD is the KL between the spatial softmaxes of the two
# maps: L_AT with the teacher's logits in place of its self-attention map.
# Same teacher, student, data and schedule as the KDAS config it inherits.
_base_ = [
    '../kdas/kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
]

model = dict(
    at_weight=1.0,
    at_pairs=[dict(student=0, teacher=0),
              dict(student=1, teacher=1)],
    loss_at=dict(
        _delete_=True,
        type='ChannelWiseDivergence',
        temperature=1.0,
        loss_weight=3.0),
    sgm_weight=0.0,
    sgm_pairs=[])

# Baseline for KDAS: pixel-wise KD (Hinton et al. 2015, per pixel; for the
# 1-channel sigmoid logits of Polyp-PVT the Bernoulli KL between the tempered
# teacher and student probabilities, times T^2) on P1 and P2, through the
# KDAS distiller in place of its L_AT and without L_SGM:
#   L = (1 - 0.3) * L_seg + 0.3 * (PKD(P1) + PKD(P2)),  T = 2
# Same teacher, student, data and schedule as the KDAS config it inherits.
_base_ = [
    '../kdas/kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
]

model = dict(
    at_weight=1.0,
    at_pairs=[dict(student=0, teacher=0),
              dict(student=1, teacher=1)],
    loss_at=dict(_delete_=True, type='PixelKDLoss', temperature=2.0),
    sgm_weight=0.0,
    sgm_pairs=[])

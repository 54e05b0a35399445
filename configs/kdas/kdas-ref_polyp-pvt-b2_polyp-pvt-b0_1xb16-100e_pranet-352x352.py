# What the authors' KDAS script effectively optimises (for ablation): its KL
# term is NaN-valued and sends no gradient (docs: KDAS_SPEC.md section 3), so
# only the structure loss and the symmetric MSE remain:
#   L = (1 - 0.3) * (L_seg(P1) + L_seg(P2))
#       + 0.3 * MSE(P1_s + P1_s^T, P1_t + P1_t^T)
# on raw logits of P1 (the reference's pooling to the teacher's width is the
# identity), with L_seg the structure loss as the script computes it: its
# `reduce='none'` makes the BCE an unweighted mean (weighted_bce=False).
# Compare with the intended objective of
# kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py.
_base_ = ['./kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py']

model = dict(
    student=dict(
        decode_head=dict(
            loss_decode=dict(
                type='StructureLoss', loss_weight=1.0, weighted_bce=False))),
    alpha=0.3,
    at_weight=0.0,
    at_pairs=[],
    sgm_weight=1.0,
    sgm_pairs=[
        dict(
            student=0,
            teacher=0,
            neck=dict(type='SGMNeck', embedding='transpose', size=None))
    ],
    loss_sgm=dict(type='SymmetricKDLoss', loss_type='mse'))

# Baseline for KDAS: channel-wise distillation (CWD, Shu et al., ICCV 2021)
# on the logits P1 and P2 at T = 4, loss weight 1, through the KDAS
# distiller in place of its L_AT and without L_SGM:
#   L = (1 - 0.3) * L_seg + 0.3 * 1 * (CWD(P1) + CWD(P2))
# T = 4, weight 1 is the setting the CPU-scale study chose on its
# validation split (docs/en/study.md; at T = 1 CWD fell below the plain
# student there, its target being too peaked). The published settings:
# mmrazor's Cityscapes config
# (cwd_logits_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k.py)
# has T = 1 and weight 5, the CWD authors' script (irfanICMLL/TorchDistiller,
# `exp_cwd.sh channel kl 3 4`) T = 4 and weight 3, both against L_seg at
# weight 1; e.g. the authors'
#   --cfg-options model.loss_at.temperature=4.0 model.loss_at.loss_weight=3.0
# On 1-channel logits CWD is the KL between the spatial softmaxes of the two
# maps: L_AT with the teacher's logits in place of its self-attention map.
# The pixel-KD config's pairs (P1 and P2, no SGM) with the CWD loss; same
# teacher, student, data and schedule as the KDAS config.
_base_ = ['./pkd_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py']

model = dict(
    loss_at=dict(
        _delete_=True,
        type='ChannelWiseDivergence',
        temperature=4.0,
        loss_weight=1.0))

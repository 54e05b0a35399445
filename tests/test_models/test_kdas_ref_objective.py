"""The kdas-ref preset computes exactly the authors' script's objective."""
import os.path as osp

import torch
import torch.nn.functional as F
from conftest import ROOT
from kdas_helpers import make_batch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmseg.registry import MODELS

NAME = 'kdas-ref_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'


def script_structure_loss(pred, mask):
    """``structure_loss`` of the authors' Train.py, written out.

    ``F.binary_cross_entropy_with_logits(pred, mask, reduce='none')`` is
    read by PyTorch as the legacy ``reduce=True``: a scalar mean, so the
    ``weit``-weighted average of it is that mean.
    """
    weit = 1 + 5 * torch.abs(
        F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)
    bce = F.binary_cross_entropy_with_logits(pred, mask)
    wbce = (weit * bce).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    prob = torch.sigmoid(pred)
    inter = (prob * mask * weit).sum(dim=(2, 3))
    union = ((prob + mask) * weit).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def test_reference_preset_is_the_scripts_objective():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'kdas', NAME))
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.teacher_ckpt = None
    cfg.model.student.backbone.init_cfg = None
    cfg.model.student.backbone.drop_path_rate = 0.0  # one student pass
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    data = model.data_preprocessor(make_batch(2, (64, 64), seed=3), False)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model.loss(inputs, samples)
    total, _ = model.parse_losses(losses)

    # the script, independently: P1 and P2 of both models at the input size
    torch.manual_seed(0)
    p1_s, p2_s = model.student._forward(inputs)
    with torch.no_grad():
        p1_t, _ = model.teacher._forward(inputs)
    mask = torch.stack([s.gt_sem_seg.data for s in samples]).float()
    seg = script_structure_loss(p1_s, mask) + script_structure_loss(
        p2_s, mask)

    def sym(p):
        return p + p.transpose(-2, -1)

    expected = 0.7 * seg + 0.3 * F.mse_loss(sym(p1_s), sym(p1_t))
    assert abs(total.item() - expected.item()) < 1e-6, (total, expected)
    # and it is not the intended (boundary-weighted BCE) structure loss
    assert model.student.decode_head.loss_decode.weighted_bce is False

"""The standard KD baselines: values on hand-computed cases and configs."""
import math
import os.path as osp

import pytest
import torch
from conftest import ROOT
from kdas_helpers import make_batch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmseg.registry import MODELS

from mmseg_kdas.models.losses.kd_baselines import (attention_transfer_loss,
                                                   attention_transfer_map,
                                                   channel_wise_divergence,
                                                   pixel_kd_loss)
from mmseg_kdas.models.losses.kd_losses import kl_distillation_loss

LN3 = math.log(3)


def _map(values, channels=1):
    """A (1, C, 2, 2) float64 map, every channel the 2x2 ``values``."""
    x = torch.tensor(values, dtype=torch.float64).view(1, 1, 2, 2)
    return x.repeat(1, channels, 1, 1)


def test_pixel_kd_bernoulli_by_hand():
    # T = 2: teacher logit 0 -> p_t = 1/2; student logit 2 ln 3 -> p_s = 3/4.
    # KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3); times T^2 = 2 ln(4/3) on
    # that pixel, 0 on the three identical ones: mean ln(4/3) / 2.
    teacher = _map([0., 1., -1., 5.])
    student = _map([2 * LN3, 1., -1., 5.])
    loss = pixel_kd_loss(student, teacher, temperature=2.0)
    assert loss.item() == pytest.approx(2 * math.log(4 / 3) / 4, rel=1e-12)
    assert pixel_kd_loss(teacher, teacher, 2.0).item() == pytest.approx(
        0, abs=1e-12)


def test_pixel_kd_sigmoid_equals_two_class_softmax():
    torch.manual_seed(0)
    s, t = torch.randn(2, 1, 5, 6), torch.randn(2, 1, 5, 6)
    zeros = torch.zeros_like(s)
    two_class = pixel_kd_loss(
        torch.cat([zeros, s], 1), torch.cat([zeros, t], 1), 3.0)
    assert two_class.item() == pytest.approx(
        pixel_kd_loss(s, t, 3.0).item(), rel=1e-5)
    # softmax KL summed over channels, averaged over pixels, by hand
    s3, t3 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    p_t = (t3 / 2).softmax(1)
    expected = (p_t * (p_t.log() - (s3 / 2).log_softmax(1))).sum(1).mean()
    assert pixel_kd_loss(s3, t3, 2.0).item() == pytest.approx(
        4 * expected.item(), rel=1e-5)


def test_cwd_by_hand():
    # T = 2: a uniform teacher channel, a student channel whose spatial
    # softmax is (1, 1, 1, 3) / 6; KL = 3/4 ln(3/2) + 1/4 ln(1/2), times
    # T^2 = 4, over B * C = 2 channels of which the second is identical.
    teacher = torch.cat([_map([0., 0., 0., 0.]), _map([1., 2., 3., 4.])], 1)
    student = torch.cat([_map([0., 0., 0., 2 * LN3]),
                         _map([1., 2., 3., 4.])], 1)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    loss = channel_wise_divergence(student, teacher, temperature=2.0)
    assert loss.item() == pytest.approx(kl * 4 / 2, rel=1e-12)


def test_cwd_on_one_channel_is_the_spatial_kl():
    torch.manual_seed(1)
    s, t = torch.randn(3, 1, 6, 6), torch.randn(3, 1, 6, 6)
    assert channel_wise_divergence(s, t, 2.0).item() == pytest.approx(
        kl_distillation_loss(s, t, 2.0).item(), rel=1e-5)
    assert channel_wise_divergence(t, t, 1.0).abs().item() < 1e-6


def test_attention_transfer_by_hand():
    # student: 1 channel (1, 0; 0, 0) -> Q_s = (1, 0, 0, 0); teacher: 3
    # channels of ones -> Q_t = (1, 1, 1, 1) / 2. Mean of the squared
    # difference: ((1 - 1/2)^2 + 3 * (1/2)^2) / 4 = 1/4.
    student = _map([1., 0., 0., 0.])
    teacher = _map([1., 1., 1., 1.], channels=3)
    assert attention_transfer_map(teacher).flatten().tolist() == \
        pytest.approx([0.5] * 4)
    loss = attention_transfer_loss(student, teacher)
    assert loss.item() == pytest.approx(0.25, rel=1e-12)
    # sign- and channel-count-free: -x with 5 copies has the same attention
    assert attention_transfer_loss(-student.repeat(1, 5, 1, 1),
                                   student).item() == pytest.approx(
                                       0, abs=1e-12)


def test_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r'\(1, 2, 4, 4\).*\(1, 1, 4, 4\)'):
        channel_wise_divergence(torch.zeros(1, 2, 4, 4),
                                torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match='spatial size'):
        attention_transfer_loss(torch.zeros(1, 2, 4, 4),
                                torch.zeros(1, 8, 2, 2))
    with pytest.raises(ValueError, match='temperature'):
        pixel_kd_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 0)


@pytest.mark.parametrize('cfg, fn', [
    (dict(type='PixelKDLoss', temperature=2.0, loss_weight=0.5),
     lambda s, t: 0.5 * pixel_kd_loss(s, t, 2.0)),
    (dict(type='ChannelWiseDivergence', temperature=1.0, loss_weight=3.0),
     lambda s, t: 3.0 * channel_wise_divergence(s, t, 1.0)),
    (dict(type='AttentionTransferLoss', loss_weight=500.0),
     lambda s, t: 500.0 * attention_transfer_loss(s, t)),
])
def test_registered_modules_weight_and_align(cfg, fn):
    loss = MODELS.build(cfg)
    assert 'loss' in loss.loss_name
    torch.manual_seed(2)
    s, t = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 8, 8)
    up = torch.nn.functional.interpolate(
        s, size=(8, 8), mode='bilinear', align_corners=False)
    assert loss(s, t).item() == pytest.approx(fn(up, t).item(), rel=1e-6)


@pytest.mark.parametrize('cfg', [
    dict(type='PixelKDLoss'),
    dict(type='ChannelWiseDivergence'),
    dict(type='AttentionTransferLoss'),
])
def test_registered_modules_detach_the_teacher(cfg):
    # the teacher's map is a target: even one that requires grad gets none
    loss = MODELS.build(cfg)
    torch.manual_seed(3)
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


BASELINES = {
    'pkd': ('loss_pkd', 2, lambda s, t: 0.3 * pixel_kd_loss(s, t, 2.0)),
    # T = 4, weight 1: the setting the study chose on validation
    'cwd': ('loss_cwd', 2,
            lambda s, t: 0.3 * 1.0 * channel_wise_divergence(s, t, 4.0)),
    'at': ('loss_atf', 4,
           lambda s, t: 0.3 * 500.0 * attention_transfer_loss(s, t)),
}


@pytest.mark.parametrize('method', sorted(BASELINES))
def test_baseline_configs_compute_their_formula(method):
    name, num_terms, formula = BASELINES[method]
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'kd_baselines',
                 f'{method}_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-'
                 '352x352.py'))
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.teacher_ckpt = None
    cfg.model.student.backbone.init_cfg = None
    cfg.model.student.backbone.drop_path_rate = 0.0
    model = MODELS.build(cfg.model)
    model.train()
    data = model.data_preprocessor(make_batch(1, (64, 64)), False)
    inputs = data['inputs']
    losses = model.loss(inputs, data['data_samples'])
    kd = {k for k in losses if 'loss' in k and not k.startswith('seg.')}
    assert kd == {f'{name}_{i}' for i in range(num_terms)}
    if method == 'at':
        student = model.student.extract_feat(inputs)
        teacher = model.teacher.extract_feat(inputs)
    else:
        student = model.student._forward(inputs)
        teacher = model.teacher._forward(inputs)
    for i in range(num_terms):
        assert losses[f'{name}_{i}'].item() == pytest.approx(
            formula(student[i], teacher[i]).item(), rel=1e-4)

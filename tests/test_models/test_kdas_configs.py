"""The KDAS configs build, and compute the losses they describe."""
import glob
import os.path as osp

import pytest
import torch
from conftest import ROOT
from kdas_helpers import make_batch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmseg.registry import MODELS

from mmseg_kdas.models.losses.kd_losses import attention_supervision_loss

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'kdas', 'kdas*.py')))
B0_PARAMS, B2_PARAMS = 3_650_740, 25_107_604


def _build(name: str, deterministic: bool = False):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'kdas', name))
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.teacher_ckpt = None  # no weights files in tests
    cfg.model.student.backbone.init_cfg = None
    if deterministic:  # no drop-path: two student passes agree
        cfg.model.student.backbone.drop_path_rate = 0.0
    return cfg, MODELS.build(cfg.model)


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def test_every_kdas_config_is_covered():
    names = {osp.basename(c) for c in CONFIGS}
    assert names == {
        'kdas_pvtb2_to_b0_kvasir.py',
        'kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py',
        'kdas-ref_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py',
        'kdas-t4_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py',
        'kdas_segformer-mit-b2_segformer-mit-b0_1xb16-100e_pranet-352x352.py',
        'kdas_polyp-pvt-b2_mobilenetv3-segformerhead_1xb16-100e_pranet-'
        '352x352.py',
    }


def test_the_t4_config_supervises_attention_at_t4():
    # the paper's config with T = 4, in the loss values: 0.3 L_AT at T 4
    name = 'kdas-t4_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
    cfg, model = _build(name, deterministic=True)
    paper = Config.fromfile(osp.join(
        ROOT, 'configs', 'kdas',
        'kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'))
    assert cfg.model.alpha == paper.model.alpha == 0.3
    model.train()
    data = model.data_preprocessor(make_batch(1, (64, 64)), False)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model.loss(inputs, samples)
    student = model.student._forward(inputs)
    teacher = model.teacher._forward(inputs)
    for i in range(2):
        at_t4 = attention_supervision_loss(student[i], teacher[i],
                                           temperature=4.0)
        at_t2 = attention_supervision_loss(student[i], teacher[i],
                                           temperature=2.0)
        assert torch.allclose(losses[f'loss_at_{i}'], 0.3 * at_t4,
                              rtol=1e-5)
        assert not torch.allclose(at_t4, at_t2, rtol=1e-3)


def test_design_card_config_is_the_paper_pair():
    cfg, model = _build('kdas_pvtb2_to_b0_kvasir.py', deterministic=True)
    assert Config.fromfile(
        osp.join(ROOT, 'configs', 'kdas',
                 'kdas_pvtb2_to_b0_kvasir.py')).model.teacher_ckpt == (
                     'pretrain/PolypPVT.pth')
    # the parameter counts of the authors' models
    assert _num_params(model.teacher) == B2_PARAMS
    assert _num_params(model.student) == B0_PARAMS
    assert cfg.val_dataloader.dataset.test_set == 'Kvasir'
    assert cfg.optim_wrapper.constructor == 'KDASOptimWrapperConstructor'
    assert [h.type for h in cfg.custom_hooks] == ['StudentExportHook']

    # the paper's objective, in the loss values (not in attributes that
    # equal the constructor's defaults anyway):
    # (1 - 0.3) L_seg + 0.3 (L_AT(P1) + L_AT(P2) at T = 2 + MSE(P1 + P1^T))
    model.train()
    data = model.data_preprocessor(make_batch(1, (64, 64)), False)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model.loss(inputs, samples)
    assert {k for k in losses if 'loss' in k and not k.startswith('seg.')
            } == {'loss_at_0', 'loss_at_1', 'loss_sgm_0'}
    student = model.student._forward(inputs)
    teacher = model.teacher._forward(inputs)
    for i in range(2):
        expected = 0.3 * attention_supervision_loss(student[i], teacher[i],
                                                    temperature=2.0)
        assert torch.allclose(losses[f'loss_at_{i}'], expected, rtol=1e-5)
    s, t = student[0].squeeze(1), teacher[0].squeeze(1)
    mse = ((s + s.transpose(1, 2)) - (t + t.transpose(1, 2))).pow(2).mean()
    assert torch.allclose(losses['loss_sgm_0'], 0.3 * mse, rtol=1e-5)
    for key, value in model.student.loss(inputs, samples).items():
        if 'loss' in key:
            assert torch.allclose(losses[f'seg.{key}'], 0.7 * value)


def test_reference_preset_optimises_seg_plus_symmetric_mse():
    name = 'kdas-ref_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
    _, model = _build(name, deterministic=True)
    model.train()
    data = model.data_preprocessor(make_batch(1, (64, 64)), False)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model.loss(inputs, samples)
    assert {k for k in losses if 'loss' in k and not k.startswith('seg.')
            } == {'loss_sgm_0'}
    # (1 - 0.3) * L_seg + 0.3 * MSE(P1_s + P1_s^T, P1_t + P1_t^T)
    student = model.student._forward(inputs)[0].squeeze(1)
    teacher = model.teacher._forward(inputs)[0].squeeze(1)
    mse = ((student + student.transpose(1, 2)) -
           (teacher + teacher.transpose(1, 2))).pow(2).mean()
    assert torch.allclose(losses['loss_sgm_0'], 0.3 * mse, rtol=1e-5)
    seg = model.student.loss(inputs, samples)
    for key, value in seg.items():
        if 'loss' in key:
            assert torch.allclose(losses[f'seg.{key}'], 0.7 * value)


@pytest.mark.parametrize('name', [
    'kdas_segformer-mit-b2_segformer-mit-b0_1xb16-100e_pranet-352x352.py',
    'kdas_polyp-pvt-b2_mobilenetv3-segformerhead_1xb16-100e_pranet-'
    '352x352.py'
])
def test_other_pairs_train_the_student(name):
    _, model = _build(name)
    model.train()
    data = model.data_preprocessor(make_batch(1, (64, 64)), False)
    losses = model.loss(data['inputs'], data['data_samples'])
    total, _ = model.parse_losses(losses)
    total.backward()
    assert sum(p.grad.abs().sum().item()
               for p in model.student.backbone.parameters()
               if p.grad is not None) > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    if 'mobilenetv3' in name:
        assert type(model.student.backbone).__module__.startswith(
            'mmpretrain')
    else:
        assert model.sgm_necks[1].adapter.weight.grad.abs().sum() > 0

import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from mmseg_kdas.models.losses.kd_losses import (AttentionSupervisionLoss,
                                                SymmetricKDLoss,
                                                attention_supervision_loss,
                                                kl_distillation_loss,
                                                self_attention_map,
                                                symmetric_kd_loss)
from mmseg_kdas.models.necks import SGMNeck
from mmseg_kdas.models.utils import in_float32


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# Teacher logits of the hand-computed case: rows r1 = (0, 0), r2 = (0, c)
# with c**2 = sqrt(2) * ln 3, so that the attention scores r_i . r_j / sqrt(W)
# (W = 2) are [[0, 0], [0, ln 3]]: row 1 attends (1/2, 1/2) and row 2
# (1/4, 3/4), giving A_t = [[0, c/2], [0, 3c/4]].
C = math.sqrt(math.sqrt(2) * math.log(3))
TEACHER = torch.tensor([[[[0., 0.], [0., C]]]], dtype=torch.float64)
TEACHER_ATTENTION = [0., C / 2, 0., 3 * C / 4]


def test_self_attention_map_by_hand_and_against_sdpa():
    attention = self_attention_map(TEACHER)
    assert attention.flatten().tolist() == pytest.approx(TEACHER_ATTENTION)
    x = torch.randn(2, 3, 5, 4)
    assert torch.allclose(
        self_attention_map(x),
        F.scaled_dot_product_attention(x, x, x),
        atol=1e-6)


def test_attention_supervision_hand_computed_2x2():
    temperature = 2.0
    p_teacher = _softmax([a / temperature for a in TEACHER_ATTENTION])
    # p_teacher = (0.2016, 0.2752, 0.2016, 0.3217)
    assert p_teacher == pytest.approx([0.20155, 0.27524, 0.20155, 0.32166],
                                      abs=1e-4)

    # A uniform student: KL = sum p log p + log 4, times T**2 = 4.
    student = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    expected = _kl(p_teacher, [0.25] * 4) * temperature**2
    assert expected == pytest.approx(0.0828, abs=1e-4)
    loss = attention_supervision_loss(student, TEACHER, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-9)

    # A student favouring the bottom-right pixel: 2 ln 3 / T = ln 3 gives
    # probabilities (1, 1, 1, 3) / 6.
    student = torch.tensor([[[[0., 0.], [0., 2 * math.log(3)]]]],
                           dtype=torch.float64)
    expected = _kl(p_teacher, [1 / 6, 1 / 6, 1 / 6, 1 / 2]) * temperature**2
    loss = attention_supervision_loss(student, TEACHER, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_kl_of_identical_distributions_is_zero():
    x = torch.randn(3, 2, 6, 5)
    assert kl_distillation_loss(x, x, 2.0).abs().item() < 1e-6
    # shifting logits by a constant leaves the softmax unchanged
    assert kl_distillation_loss(x + 3.0, x, 2.0).abs().item() < 1e-5


def test_losses_are_non_negative():
    torch.manual_seed(0)
    for _ in range(20):
        student, teacher = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
        assert kl_distillation_loss(student, teacher, 2.0).item() >= 0
        assert attention_supervision_loss(student, teacher).item() >= 0


def test_temperature_squared_scaling():
    # Scaling both maps by T and dividing by T inside the softmax gives the
    # same distributions, so the loss is exactly T**2 times the T=1 loss.
    torch.manual_seed(1)
    student = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    teacher = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    base = kl_distillation_loss(student, teacher, 1.0)
    for temperature in (0.5, 2.0, 4.0):
        scaled = kl_distillation_loss(student * temperature,
                                      teacher * temperature, temperature)
        assert scaled.item() == pytest.approx(
            temperature**2 * base.item(), rel=1e-9)


def test_batch_mean_reduction():
    torch.manual_seed(2)
    student, teacher = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    per_sample = [
        kl_distillation_loss(student[i:i + 1], teacher[i:i + 1]).item()
        for i in range(3)
    ]
    assert kl_distillation_loss(student, teacher).item() == pytest.approx(
        sum(per_sample) / 3, rel=1e-5)


@pytest.mark.parametrize('loss', [
    AttentionSupervisionLoss(temperature=2.0),
    SymmetricKDLoss(loss_type='mse')
])
def test_gradient_reaches_student_only(loss):
    # the teacher's map is a target: even one that requires grad gets none
    student = torch.randn(2, 1, 8, 8, requires_grad=True)
    teacher = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss(student, teacher).backward()
    assert student.grad is not None
    assert student.grad.abs().sum().item() > 0
    assert torch.isfinite(student.grad).all()
    assert teacher.grad is None


def test_module_resizes_student_to_teacher_and_weights():
    torch.manual_seed(3)
    student, teacher = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 8, 8)
    module = AttentionSupervisionLoss(temperature=2.0, loss_weight=0.5)
    resized = F.interpolate(
        student, size=(8, 8), mode='bilinear', align_corners=False)
    expected = 0.5 * attention_supervision_loss(resized, teacher, 2.0)
    assert torch.allclose(module(student, teacher), expected)
    assert module.loss_name == 'loss_at'

    to_student = AttentionSupervisionLoss(align_to='student')
    teacher_small = F.interpolate(
        teacher, size=(4, 4), mode='bilinear', align_corners=False)
    assert torch.allclose(
        to_student(student, teacher),
        attention_supervision_loss(student, teacher_small, 2.0))


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='temperature'):
        AttentionSupervisionLoss(temperature=0)
    with pytest.raises(ValueError, match='align_to'):
        AttentionSupervisionLoss(align_to='middle')
    with pytest.raises(ValueError, match='one shape'):
        kl_distillation_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match='loss_type'):
        SymmetricKDLoss(loss_type='huber')
    # a logged key without 'loss' would not be back-propagated
    with pytest.raises(ValueError, match='loss_name'):
        AttentionSupervisionLoss(loss_name='at')


def test_registered_names_are_unique_to_the_plugin():
    assert MODELS.get('AttentionSupervisionLoss') is AttentionSupervisionLoss
    assert MODELS.get('SymmetricKDLoss') is SymmetricKDLoss
    # mmseg's own (broken) KL loss is registered only when its module is
    # imported (mmseg 1.2.2's losses package leaves it out). Imported after
    # the plugin, it registers: a plugin loss under that name would make
    # the import fail, or (force=True) take the name
    from mmseg.models.losses.kldiv_loss import KLDivLoss
    assert MODELS.get('KLDivLoss') is KLDivLoss
    plugin = {
        name: cls
        for name, cls in MODELS.module_dict.items()
        if cls.__module__.startswith('mmseg_kdas.')
    }
    assert {'AttentionSupervisionLoss', 'SymmetricKDLoss'} <= set(plugin)
    # each under its own class name
    assert all(name == cls.__name__ for name, cls in plugin.items())


# Logits of a confident teacher: background at -30 and below, the polyp
# at +30, on an 88x88 map (352x352 input, stride 4): P @ P.T sums 88
# squares of 30 = 79,200, over float16's maximum of 65,504.
def _confident_logits(seed=0, size=88, magnitude=30.0):
    gen = torch.Generator().manual_seed(seed)
    logits = -magnitude - 5 * torch.rand(2, 1, size, size, generator=gen)
    logits[:, :, 30:60, 20:50] *= -1
    return logits


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('magnitude', [30.0, 60.0])
def test_terms_under_autocast_equal_float32(dtype, magnitude):
    teacher = _confident_logits(0, magnitude=magnitude)
    student = torch.randn(2, 1, 88, 88, generator=torch.Generator().
                          manual_seed(1), requires_grad=True)
    terms = {
        'at': AttentionSupervisionLoss(temperature=2.0),
        'sgm': lambda s, t: SymmetricKDLoss()(*SGMNeck()(s, t)),
    }
    for name, term in terms.items():
        # maps as the network gives them under autocast, and their float32
        # loss
        s, t = student.to(dtype), teacher.to(dtype)
        expected = term(s.float(), t.float())
        with torch.autocast('cpu', dtype=dtype):
            got = in_float32(term, s, t)
        assert got.dtype == torch.float32
        assert torch.isfinite(got), name
        assert got.item() == pytest.approx(expected.item(), rel=1e-3), name
        got.backward()
        assert torch.isfinite(student.grad).all()
        student.grad = None


def test_in_float32_keeps_float64_and_turns_autocast_off():
    x = torch.ones(2, 2, dtype=torch.float64)
    seen = []

    def term(a, b):
        seen.append((a.dtype, (a.float() @ b.float()).dtype))
        return a

    with torch.autocast('cpu', dtype=torch.bfloat16):
        in_float32(term, x, torch.ones(2, 2, dtype=torch.float16))
    assert seen == [(torch.float64, torch.float32)]


def test_symmetric_kd_loss_hand_values():
    student = torch.tensor([[[[1., 2.], [3., 4.]]]])
    zeros = torch.zeros_like(student)
    assert symmetric_kd_loss(student, zeros, 'mse').item() == pytest.approx(
        (1 + 4 + 9 + 16) / 4)
    assert symmetric_kd_loss(student, zeros, 'l1').item() == pytest.approx(
        (1 + 2 + 3 + 4) / 4)
    # parallel embeddings: cosine distance 0; orthogonal ones: 1
    assert symmetric_kd_loss(student, 3 * student,
                             'cosine').item() == pytest.approx(0, abs=1e-6)
    ortho = torch.tensor([[[[2., -1.], [0., 0.]]]])
    assert symmetric_kd_loss(student, ortho, 'cosine').item() == pytest.approx(
        1.0)
    module = SymmetricKDLoss(loss_type='l1', loss_weight=2.0)
    assert module(student, zeros).item() == pytest.approx(5.0)
    assert module.loss_name == 'loss_sgm'


def test_sgm_default_matches_the_reference_mse_term():
    # The reference script: P.squeeze() -> P + P^T (per sample), pooled to
    # the teacher's width (the identity here), nn.MSELoss().
    torch.manual_seed(4)
    student, teacher = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    s, t = student.squeeze(), teacher.squeeze()
    reference = torch.nn.MSELoss()(s + s.transpose(1, 2),
                                   t + t.transpose(1, 2))
    ours = SymmetricKDLoss()(*SGMNeck()(student, teacher))
    assert torch.allclose(ours, reference)

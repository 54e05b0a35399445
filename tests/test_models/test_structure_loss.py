"""Structure loss: hand-computed values, ignore handling, module API."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from mmseg_kdas.models.losses import StructureLoss, structure_loss
from mmseg_kdas.models.losses.structure_loss import boundary_weight


def _two_pixels():
    """A 1x2 image: pixel 0 is polyp, pixel 1 background."""
    return torch.tensor([[[1, 0]]])  # B x H x W = 1 x 1 x 2


def test_boundary_weight_two_pixels():
    # 31x31 window, zero padding counted: each window holds one polyp
    # pixel among 961 cells, so avgpool = 1/961 at both pixels.
    mask = torch.tensor([[[[1., 0.]]]])
    w = boundary_weight(mask)
    expected = torch.tensor([[[[1 + 5 * 960 / 961, 1 + 5 / 961]]]])
    torch.testing.assert_close(w, expected)
    # uniform background far from any edge: weight exactly 1
    assert torch.equal(boundary_weight(torch.zeros(1, 1, 5, 5)),
                       torch.ones(1, 1, 5, 5))


def test_two_pixels_zero_logits():
    w0, w1 = 1 + 5 * 960 / 961, 1 + 5 / 961
    # bce = log 2 at both pixels, so the weighted mean is log 2;
    # p = 0.5: inter = 0.5 w0, union = 1.5 w0 + 0.5 w1
    wiou = 1 - (0.5 * w0 + 1) / (1.5 * w0 + 0.5 * w1 - 0.5 * w0 + 1)
    loss = structure_loss(torch.zeros(1, 1, 1, 2), _two_pixels())
    assert loss.item() == pytest.approx(math.log(2) + wiou, abs=1e-6)


def test_two_pixels_weighted_bce_by_hand():
    logits = torch.tensor([[[[0.3, -1.2]]]])
    w0, w1 = 1 + 5 * 960 / 961, 1 + 5 / 961
    bce0 = math.log(1 + math.exp(-0.3))  # target 1
    bce1 = math.log(1 + math.exp(-1.2))  # target 0: softplus(-1.2)
    p0, p1 = 1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(1.2))
    wbce = (w0 * bce0 + w1 * bce1) / (w0 + w1)
    inter = w0 * p0
    union = w0 * (p0 + 1) + w1 * p1
    wiou = 1 - (inter + 1) / (union - inter + 1)
    loss = structure_loss(logits, _two_pixels())
    assert loss.item() == pytest.approx(wbce + wiou, abs=1e-6)
    # reference-effective variant: plain mean BCE over the pixels
    plain = structure_loss(logits, _two_pixels(), weighted_bce=False)
    assert plain.item() == pytest.approx((bce0 + bce1) / 2 + wiou, abs=1e-6)


def _disk(size=16):
    yy, xx = torch.meshgrid(
        torch.arange(size), torch.arange(size), indexing='ij')
    return (((yy - 8)**2 + (xx - 7)**2) < 20).long()[None]


def test_perfect_prediction_is_zero():
    target = _disk()
    logits = (target.float() * 2 - 1)[:, None] * 30
    # bce ~ e^-30 and inter = sum(w m) = union - inter: wiou = 0
    assert structure_loss(logits, target).item() == pytest.approx(
        0, abs=1e-6)


def test_all_wrong_prediction():
    target = _disk()
    mask = target.float()[:, None]
    logits = (1 - 2 * mask) * 30
    w = boundary_weight(mask)
    # bce = softplus(30) per pixel; p = 1 - m so inter = 0 and
    # union = sum(w): wiou = 1 - 1 / (sum(w) + 1)
    expected = F.softplus(torch.tensor(30.)).item() + 1 - 1 / (
        w.sum().item() + 1)
    loss = structure_loss(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_batch_mean_and_soft_target():
    target = torch.cat([_disk(), 1 - _disk()])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 16, 16, generator=gen)
    both = structure_loss(logits, target)
    each = [structure_loss(logits[i:i + 1], target[i:i + 1]) for i in (0, 1)]
    assert both.item() == pytest.approx(sum(each).item() / 2, rel=1e-6)
    # a float mask in [0, 1] gives the same loss as the label map
    soft = structure_loss(logits, target.float()[:, None])
    assert soft.item() == pytest.approx(both.item(), rel=1e-6)


def test_ignored_pixels_have_no_effect():
    gen = torch.Generator().manual_seed(1)
    target = _disk().clone()
    target[:, :3, :] = 255
    logits = torch.randn(1, 1, 16, 16, generator=gen, requires_grad=True)
    loss = structure_loss(logits, target)
    loss.backward()
    assert torch.all(logits.grad[0, 0, :3] == 0)
    assert logits.grad[0, 0, 3:].abs().sum() > 0
    changed = logits.detach().clone()
    changed[0, 0, :3] = 50.
    assert structure_loss(changed, target).item() == pytest.approx(
        loss.item(), rel=1e-6)
    # same value as computing the sums by hand without the ignored rows;
    # inside the weight window ignored pixels count as background
    mask = torch.where(target == 255, 0, target).float()[:, None]
    w = boundary_weight(mask)[..., 3:, :]
    m, x = mask[..., 3:, :], logits.detach()[..., 3:, :]
    bce = F.binary_cross_entropy_with_logits(x, m, reduction='none')
    p = x.sigmoid()
    inter, union = (p * m * w).sum(), ((p + m) * w).sum()
    expected = (w * bce).sum() / w.sum() + 1 - (inter + 1) / (
        union - inter + 1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_fully_ignored_image_is_left_out():
    target = torch.cat([_disk(), torch.full((1, 16, 16), 255)])
    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    loss = structure_loss(logits, target)
    assert loss.item() == pytest.approx(
        structure_loss(logits[:1], target[:1]).item(), rel=1e-6)
    empty = structure_loss(logits, torch.full((2, 16, 16), 255))
    assert empty.item() == 0 and empty.requires_grad


@pytest.mark.parametrize('bad', [
    torch.full((1, 16, 16), 2),
    torch.zeros(1, 8, 8, dtype=torch.long),
    torch.full((1, 1, 16, 16), 1.5),
])
def test_bad_targets_raise(bad):
    with pytest.raises(ValueError, match='structure_loss'):
        structure_loss(torch.zeros(1, 1, 16, 16), bad)


def test_module_weight_name_and_registry():
    loss = MODELS.build(
        dict(type='StructureLoss', loss_weight=0.5, loss_name='loss_s'))
    assert isinstance(loss, StructureLoss) and loss.loss_name == 'loss_s'
    logits = torch.zeros(1, 1, 1, 2)
    value = loss(logits, _two_pixels(), ignore_index=255)
    assert value.item() == pytest.approx(
        0.5 * structure_loss(logits, _two_pixels()).item(), rel=1e-6)
    with pytest.raises(ValueError, match='pixel weight'):
        loss(logits, _two_pixels(), weight=torch.ones(1, 1, 2))
    with pytest.raises(ValueError, match='loss_name'):
        StructureLoss(loss_name='structure')


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_module_is_float32_under_autocast(dtype):
    # 352x352 logits of magnitude 30: the sums of the weighted IoU over
    # 123,904 pixels (weights up to 6) pass float16's maximum of 65,504
    gen = torch.Generator().manual_seed(0)
    pred = (30 * torch.randn(1, 1, 352, 352, generator=gen)).to(dtype)
    labels = (torch.rand(1, 352, 352, generator=gen) > 0.7).long()
    expected = StructureLoss()(pred.float(), labels)
    with torch.autocast('cpu', dtype=dtype):
        got = StructureLoss()(pred, labels)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    assert got.item() == pytest.approx(expected.item(), rel=1e-3)

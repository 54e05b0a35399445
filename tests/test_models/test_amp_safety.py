"""Every registered loss and neck of the plugin is float32 under autocast on
its own: built from the registry and called outside ``KDASDistiller`` (as
in another distiller or training loop), under float16 and bfloat16
autocast, on logits of magnitude 30 and 60, it equals its float32 value."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_kdas  # noqa: F401  (registers the plugin)

SIZE = 88  # a 352 x 352 input at stride 4


def _logits(seed, magnitude, channels=1, size=SIZE):
    """A confident map: background at about -magnitude, a polyp at +."""
    gen = torch.Generator().manual_seed(seed)
    logits = -magnitude - 5 * torch.rand(2, channels, size, size,
                                         generator=gen)
    logits[:, :, 30:60, 20:50] *= -1
    return logits


def _student(magnitude, channels=1, size=SIZE):
    gen = torch.Generator().manual_seed(1)
    return magnitude / 3 * torch.randn(2, channels, size, size, generator=gen)


def _mask(size=SIZE):
    mask = torch.zeros(2, size, size, dtype=torch.long)
    mask[:, 30:60, 20:50] = 1
    return mask


# registered type -> [(config, inputs(magnitude)), ...]; the inputs are
# (student, teacher) maps, or (logits, labels) for the structure loss
CASES = {
    'AttentionSupervisionLoss': [(dict(), lambda m: (_student(m),
                                                     _logits(0, m)))],
    'SymmetricKDLoss': [(dict(), lambda m: (_student(m), _logits(0, m)))],
    'StructureLoss': [(dict(), lambda m: (_logits(0, m), _mask()))],
    'PixelKDLoss': [
        (dict(), lambda m: (_student(m), _logits(0, m))),
        (dict(temperature=2.0), lambda m:
         (_student(m, 2), _logits(0, m, 2))),
    ],
    'ChannelWiseDivergence': [(dict(temperature=1.0), lambda m:
                               (_student(m, 2), _logits(0, m, 2)))],
    'AttentionTransferLoss': [(dict(), lambda m:
                               (_student(m, 16, 44), _logits(0, m, 16, 44)))],
    'SGMNeck': [
        (dict(), lambda m: (_student(m, 1, 44), _logits(0, m))),
        (dict(embedding='gram'), lambda m:
         (_student(m, 16, 44), _logits(0, m, 16, 44))),
        (dict(embedding='covariance', student_channels=8,
              teacher_channels=16), lambda m:
         (_student(m, 8, 44), _logits(0, m, 16, 22))),
    ],
}


def _plugin_losses_and_necks():
    return sorted(
        name for name, cls in MODELS.module_dict.items()
        if cls.__module__.startswith(('mmseg_kdas.models.losses',
                                      'mmseg_kdas.models.necks')))


def test_every_registered_loss_and_neck_is_covered():
    assert _plugin_losses_and_necks() == sorted(CASES)


def _params():
    for name, cases in CASES.items():
        for i, (cfg, inputs) in enumerate(cases):
            yield pytest.param(name, cfg, inputs, id=f'{name}-{i}')


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('magnitude', [30.0, 60.0])
@pytest.mark.parametrize('name,cfg,inputs', list(_params()))
def test_float32_on_its_own_under_autocast(name, cfg, inputs, dtype,
                                           magnitude):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    module = MODELS.build(dict(type=name, **cfg))
    first, second = inputs(magnitude)
    # the maps as a network gives them under autocast
    first = first.to(dtype).requires_grad_()
    if second.is_floating_point():
        second = second.to(dtype)
    expected = _flat(module(first.float(), second.float()
                            if second.is_floating_point() else second))
    with torch.autocast('cpu', dtype=dtype):
        got = _flat(module(first, second))
    for value, ref in zip(got, expected):
        assert value.dtype == torch.float32
        assert torch.isfinite(value).all()
        torch.testing.assert_close(
            value,
            ref,
            rtol=1e-3,
            atol=1e-3 * float(ref.detach().abs().max()) + 1e-6)
    sum(v.sum() for v in got).backward()
    assert torch.isfinite(first.grad).all()

"""NonFiniteLossHook: the first NaN or infinite loss term stops training."""
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmseg.registry import HOOKS

from mmseg_kdas.engine.hooks import NonFiniteLossHook, non_finite_terms


def _runner(iteration, last_ckpt=None):
    hub = MessageHub.get_instance(f'non_finite_{iteration}_{last_ckpt}')
    if last_ckpt is not None:
        hub.update_info('last_ckpt', last_ckpt)
    return SimpleNamespace(iter=iteration, message_hub=hub)


def test_finite_terms_pass():
    hook = HOOKS.build(dict(type='NonFiniteLossHook'))
    assert isinstance(hook, NonFiniteLossHook)
    outputs = {
        'loss': torch.tensor(1.5),
        'seg.decode.loss_structure_p1': torch.tensor(1.0),
        'loss_at_0': torch.tensor(0.5),
        'seg.decode.acc_seg': torch.tensor(float('nan')),  # not a loss
    }
    hook.after_train_iter(_runner(0), 0, outputs=outputs)
    assert non_finite_terms(outputs) == {}


def test_a_non_finite_term_is_named_with_the_last_checkpoint():
    hook = NonFiniteLossHook()
    outputs = {
        'loss': torch.tensor(float('inf')),
        'seg.decode.loss_structure_p1': torch.tensor(float('inf')),
        'seg.decode.loss_structure_p2': torch.tensor(0.7),
        'loss_at_0': torch.tensor(0.3),
        'loss_sgm_0': [torch.tensor(0.1), torch.tensor(float('nan'))],
    }
    with pytest.raises(FloatingPointError) as err:
        hook.after_train_iter(
            _runner(41, 'work_dirs/run/iter_40.pth'), 0, outputs=outputs)
    assert str(err.value) == (
        'non-finite loss at iteration 42: '
        'seg.decode.loss_structure_p1 = inf, loss_sgm_0 = nan '
        '(total loss = inf). Training stopped; the last checkpoint written '
        'is work_dirs/run/iter_40.pth.')
    with pytest.raises(FloatingPointError, match='none was written yet'):
        hook.after_train_iter(
            _runner(0), 0, outputs={'loss': torch.tensor(math.nan)})

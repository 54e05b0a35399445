from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmseg.registry import HOOKS

from mmseg_kdas.engine.hooks import DistillWeightWarmupHook, warmup_multiplier


def test_warmup_multiplier_values():
    assert [warmup_multiplier(i, 4) for i in range(7)] == [
        0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0
    ]
    with pytest.raises(ValueError, match='warmup_iters'):
        warmup_multiplier(0, 0)


class _Distiller(nn.Module):

    def __init__(self):
        super().__init__()
        self.kd_multiplier = 1.0


class _Wrapper(nn.Module):
    """Stands in for a DDP wrapper: the model is ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_hook_ramps_the_multiplier(monkeypatch):
    hook = HOOKS.build(dict(type='DistillWeightWarmupHook', warmup_iters=4))
    assert isinstance(hook, DistillWeightWarmupHook)
    model = _Distiller()
    runner = SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)
    seen = []
    for it in range(6):
        runner.iter = it
        hook.before_train_iter(runner, batch_idx=it)
        seen.append(model.kd_multiplier)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

    # a resumed run continues the ramp from its global iteration
    runner.iter = 2
    hook.before_train_iter(runner, batch_idx=0)
    assert model.kd_multiplier == 0.5
    hook.after_train(runner)
    assert model.kd_multiplier == 1.0

    # through a model wrapper
    import mmseg_kdas.engine.hooks.distill_weight_warmup_hook as module
    monkeypatch.setattr(module, 'is_model_wrapper',
                        lambda m: isinstance(m, _Wrapper))
    wrapped = SimpleNamespace(model=_Wrapper(model), iter=1)
    hook.before_train_iter(wrapped, batch_idx=0)
    assert model.kd_multiplier == 0.25


def test_hook_rejects_bad_settings_and_models():
    with pytest.raises(ValueError, match='positive int'):
        DistillWeightWarmupHook(warmup_iters=0)
    with pytest.raises(ValueError, match='positive int'):
        DistillWeightWarmupHook(warmup_iters=2.5)
    hook = DistillWeightWarmupHook(warmup_iters=2)
    with pytest.raises(TypeError, match='kd_multiplier'):
        hook.before_train(SimpleNamespace(model=nn.Linear(1, 1), iter=0))

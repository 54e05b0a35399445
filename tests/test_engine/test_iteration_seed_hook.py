"""IterationSeedHook: a resumed run draws what the uninterrupted one did."""
import os.path as osp
import random
import types

import numpy as np
import pytest
import torch
from conftest import CONFIGS
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.engine.hooks import IterationSeedHook, iteration_seed


def _draws():
    return (torch.rand(3).tolist(), float(np.random.rand()),
            random.random())


def test_each_iteration_draws_from_its_seed_alone():
    hook = IterationSeedHook()
    runner = types.SimpleNamespace(seed=7, iter=3)
    hook.before_train_iter(runner, batch_idx=0)
    first = _draws()
    torch.rand(100), np.random.rand(100), random.random()  # anything else
    hook.before_train_iter(runner, batch_idx=0)
    assert _draws() == first
    runner.iter = 4
    hook.before_train_iter(runner, batch_idx=0)
    assert _draws() != first
    torch.manual_seed(iteration_seed(7, 3))  # what it seeds with
    assert torch.rand(3).tolist() == first[0]
    assert IterationSeedHook(seed=1).seed == 1
    assert iteration_seed(0, 0) != iteration_seed(1, 0) != \
        iteration_seed(0, 1)
    assert 0 <= iteration_seed(10**12, 10**9) < 2**32


@pytest.fixture(scope='module')
def polyp_root(tmp_path_factory):
    return make_synthetic_polyp_dataset(
        str(tmp_path_factory.mktemp('polyp')), num_train=4, num_test=0,
        size=(64, 64))


def _runner(work_dir, polyp_root, resume_from=None):
    """The tiny distiller, 4 iterations at random rates, saved at 2."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'tiny_kdas.py'))
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = polyp_root
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.model.data_preprocessor = dict(
        cfg.model.student.data_preprocessor,
        type='BatchAugSegDataPreProcessor',
        batch_augments=[
            dict(type='BatchMultiScaleResize', rates=(0.5, 1.0, 1.5),
                 mode='random')
        ])
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.custom_hooks = [
        dict(type='PlainCheckpointHook'),
        dict(type='IterationSeedHook')
    ]
    cfg.randomness = dict(seed=3)
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    return Runner.from_cfg(cfg)


def _sides(runner):
    seen = []
    runner.model.student.backbone.register_forward_pre_hook(
        lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    return seen


def test_a_resumed_run_trains_to_the_same_weights(tmp_path, polyp_root):
    straight = _runner(tmp_path / 'straight', polyp_root)
    sides = _sides(straight)
    straight.train()
    ckpt = str(tmp_path / 'straight' / 'iter_2.pth')
    resumed = _runner(tmp_path / 'resumed', polyp_root, resume_from=ckpt)
    torch.rand(10)  # whatever the generator went through before
    resumed_sides = _sides(resumed)
    resumed.train()
    assert len(set(sides)) > 1  # random rates were drawn
    assert resumed_sides == sides[2:]
    expected = straight.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name

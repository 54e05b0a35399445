"""The reference's optimiser steps: three per batch, at the three sides."""
import copy
import os.path as osp

import pytest
import torch
from conftest import CONFIGS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.engine import find_multiscale_augment

RATES = (0.5, 1.0, 1.5)  # at 64 px: sides 32, 64 and 96


@pytest.fixture(scope='module')
def polyp_root(tmp_path_factory):
    return make_synthetic_polyp_dataset(
        str(tmp_path_factory.mktemp('polyp')), num_train=4, num_test=0,
        size=(80, 80))  # resized to 64: soft edges


def _runner(tmp_path, polyp_root, mode, loop='MultiScaleEpochBasedTrainLoop',
            soft=False):
    cfg = Config.fromfile(osp.join(CONFIGS, 'tiny_kdas.py'))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.data_root = polyp_root
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    if soft:
        pipeline = cfg.train_dataloader.dataset.pipeline
        pipeline[2].type = 'SoftMaskResize'
        pipeline[3].type = 'PackPolypInputs'
    pre = dict(
        cfg.model.student.data_preprocessor,
        type='BatchAugSegDataPreProcessor',
        batch_augments=[
            dict(type='BatchMultiScaleResize', rates=RATES, mode=mode)
        ])
    cfg.model.data_preprocessor = pre
    cfg.train_cfg = dict(type=loop, max_epochs=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.custom_hooks = []
    return Runner.from_cfg(cfg)


def _record(runner):
    """Count optimiser steps; keep the inputs of both backbones."""
    model = runner.model
    seen = dict(student=[], teacher=[], targets=[], steps=0)
    for role in ('student', 'teacher'):
        getattr(model, role).backbone.register_forward_pre_hook(
            lambda m, args, role=role: seen[role].append(args[0].clone()))
    head = model.student.decode_head
    loss_by_feat = head.loss_by_feat

    def record_targets(seg_logits, samples):
        seen['targets'].append(
            torch.stack([s.gt_sem_seg.data for s in samples]))
        return loss_by_feat(seg_logits, samples)

    head.loss_by_feat = record_targets
    runner.register_hook(_CountSteps(seen))
    return seen


class _CountSteps(Hook):
    """Count the optimiser's steps (it exists from ``before_train`` on)."""

    def __init__(self, seen):
        self.seen = seen

    def before_train(self, runner):
        optimizer = runner.optim_wrapper.optimizer
        step = optimizer.step

        def counting_step(*args, **kwargs):
            self.seen['steps'] += 1
            return step(*args, **kwargs)

        optimizer.step = counting_step


def test_all_mode_takes_three_steps_per_batch(tmp_path, polyp_root):
    runner = _runner(tmp_path, polyp_root, 'all')
    seen = _record(runner)
    runner.train()
    # 4 images, batch 2: one epoch is 2 iterations (batches) ...
    assert runner.iter == 2
    # ... of 3 optimiser steps each, at the 3 sides in the order of RATES
    assert seen['steps'] == 6
    sides = [tuple(x.shape[-2:]) for x in seen['student']]
    assert sides == [(32, 32), (64, 64), (96, 96)] * 2
    # the teacher is fed exactly the student's tensors at every step
    assert len(seen['teacher']) == 6
    for student, teacher in zip(seen['student'], seen['teacher']):
        assert torch.equal(student, teacher)
    # every step starts from the batch as loaded: the 1.0 step sees the
    # unresized images, and the 0.5 step is their bilinear resize
    # (align_corners=True, as the reference)
    for i in (0, 3):
        expected = torch.nn.functional.interpolate(
            seen['student'][i + 1], size=(32, 32), mode='bilinear',
            align_corners=True)
        torch.testing.assert_close(seen['student'][i], expected)
    # AdamW counted 6 steps
    state = runner.optim_wrapper.optimizer.state
    assert {int(s['step']) for s in state.values()} == {6}


def test_cycle_mode_follows_the_iteration(tmp_path, polyp_root):
    runner = _runner(tmp_path, polyp_root, 'cycle')
    seen = _record(runner)
    augment = find_multiscale_augment(runner.model)
    augment._calls = 5  # a stale counter must not matter under the loop
    runner.train()
    assert seen['steps'] == 2
    sides = [tuple(x.shape[-2:]) for x in seen['student']]
    assert sides == [(32, 32), (64, 64)]


def test_soft_masks_are_resized_bilinearly(tmp_path, polyp_root):
    runner = _runner(tmp_path, polyp_root, 'all', soft=True)
    seen = _record(runner)
    runner.train()
    targets = seen['targets']
    sides = [tuple(t.shape[-2:]) for t in targets]
    assert sides == [(32, 32), (64, 64), (96, 96)] * 2
    for target in targets:
        assert target.is_floating_point()
        assert 0 <= target.min() and target.max() <= 1
        # soft edges: values strictly between 0 and 1
        assert ((target > 0.01) & (target < 0.99)).any()
    # the 1.5 step's mask is the bilinear resize of the 1.0 step's
    expected = torch.nn.functional.interpolate(
        targets[1], size=(96, 96), mode='bilinear', align_corners=True)
    torch.testing.assert_close(targets[2], expected)


def test_all_mode_needs_the_multiscale_loops(tmp_path, polyp_root):
    runner = _runner(tmp_path, polyp_root, 'all', loop='EpochBasedTrainLoop')
    with pytest.raises(RuntimeError, match='MultiScaleEpochBasedTrainLoop'):
        runner.train()


def test_mean_of_the_logged_losses(tmp_path, polyp_root):
    from mmseg_kdas.engine.loops import _mean_outputs
    outputs = [dict(loss=torch.tensor(1.0), acc=2.0),
               dict(loss=torch.tensor(2.0), acc=4.0),
               dict(loss=torch.tensor(6.0), acc=0.0)]
    merged = _mean_outputs(copy.deepcopy(outputs))
    assert merged['loss'].item() == pytest.approx(3.0)
    assert merged['acc'] == pytest.approx(2.0)

"""The KD experiment tool: its protocol and its statistics."""
import importlib.util
import os
import os.path as osp

import pytest
from conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location(
        'polyp_experiment',
        osp.join(ROOT, 'tools', 'analysis_tools', 'polyp_experiment.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()


def _record(mdice):
    return dict(metrics={'Kvasir/mDice': mdice}, minutes=1.0, curves={})


def test_summarize_by_hand():
    results = {
        'student': {0: _record(0.60), 1: _record(0.64), 2: _record(0.62)},
        'KDAS': {0: _record(0.66), 1: _record(0.65), 2: _record(0.70)},
    }
    stats = tool.summarize(results, _record(0.82), 'Kvasir/mDice')
    assert stats['mean']['student'] == pytest.approx(0.62)
    assert stats['std']['student'] == pytest.approx(0.02)  # sample std
    assert stats['mean']['KDAS'] == pytest.approx(0.67)
    assert stats['std']['KDAS'] == pytest.approx(
        ((0.01**2 + 0.02**2 + 0.03**2) / 2)**0.5)
    assert stats['paired']['KDAS'] == pytest.approx({
        0: 0.06,
        1: 0.01,
        2: 0.08
    })
    # (0.67 - 0.62) / (0.82 - 0.62)
    assert stats['gap_closed']['KDAS'] == pytest.approx(0.25)
    assert 'student' not in stats['paired']


def test_one_seed_has_zero_std_and_no_student_no_pairs():
    stats = tool.summarize({'KDAS': {0: _record(0.7)}}, _record(0.8),
                           'Kvasir/mDice')
    assert stats['std']['KDAS'] == 0
    assert stats['paired'] == {} and stats['gap_closed'] == {}


def test_test_sets_are_found(tmp_path):
    for name in ('Kvasir', 'ETIS'):
        for sub in ('images', 'masks'):
            os.makedirs(tmp_path / 'TestDataset' / name / sub)
    os.makedirs(tmp_path / 'TestDataset' / 'empty')
    assert tool.find_test_sets(str(tmp_path)) == ['ETIS', 'Kvasir']
    with pytest.raises(FileNotFoundError, match='no test set in'):
        tool.find_test_sets(str(tmp_path / 'nowhere'))


def test_every_method_trains_under_one_protocol(tmp_path):
    args = tool.parse_args([str(tmp_path), '--size', '96'])
    for name, base in list(tool.METHODS.items()) + [('teacher',
                                                     tool.TEACHER)]:
        cfg = tool.protocol_config(base, args, ['ETIS', 'Kvasir'], 60, 30,
                                   seed=2, teacher_ckpt='t.pth')
        assert cfg.train_cfg.type == 'MultiScaleIterBasedTrainLoop'
        assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (60,
                                                                         30)
        assert cfg.randomness.seed == 2
        assert cfg.optim_wrapper.optimizer.lr == args.lr
        assert cfg.train_dataloader.batch_size == args.batch_size
        pipeline = cfg.train_dataloader.dataset.pipeline
        assert [t['type'] for t in pipeline] == [
            'LoadImageFromFile', 'LoadPolypAnnotations', 'Resize',
            'PackSegInputs'
        ]
        assert pipeline[2]['scale'] == (96, 96)
        augments = cfg.model.data_preprocessor.batch_augments
        assert [(a['rates'], a['mode']) for a in augments] == [
            (tool.RATES, 'cycle')
        ]
        sets = [d.test_set for d in cfg.test_dataloader.dataset.datasets]
        assert sets == ['ETIS', 'Kvasir']
        if cfg.model.type == 'KDASDistiller':
            assert name != 'student'
            assert cfg.model.teacher_ckpt == 't.pth'
            assert cfg.model.teacher.backbone.arch == 'b2'
            assert cfg.model.student.backbone.arch == 'b0'
            assert cfg.model.student.backbone.init_cfg is None
        else:
            assert name in ('student', 'teacher')
            assert cfg.model.backbone.arch == ('b2' if name == 'teacher'
                                               else 'b0')
            assert cfg.model.backbone.init_cfg is None


def test_a_killed_attempt_is_counted_to_its_last_write(tmp_path):
    run_dir = str(tmp_path)
    assert tool.account_interrupted_attempt(run_dir) is None  # none ran
    start = 1_000_000.0
    (tmp_path / tool.STARTED).write_text(f'{start}\n')
    (tmp_path / 'train_minutes.txt').write_text('2.00\n')  # a finished one
    log = tmp_path / 'attempt' / 'run.log'
    log.parent.mkdir()
    log.write_text('iteration 50\n')
    os.utime(log, (start + 450, start + 450))  # its last write: 7.5 min in
    assert tool.account_interrupted_attempt(run_dir) == pytest.approx(7.5)
    assert (tmp_path / 'train_minutes.txt').read_text() == '2.00\n7.50\n'
    assert not (tmp_path / tool.STARTED).exists()
    assert tool.account_interrupted_attempt(run_dir) is None  # counted once

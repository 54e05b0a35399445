"""The study tool: its plan and its steps (no training).

The whole protocol runs with a fake command runner that writes what
``tools/train.py``, ``tools/test.py`` and ``tools/cache_teacher.py`` would
(logs, checkpoint names, metrics), so that the order of the steps, what is
chosen, the stops and the skipping of finished steps are checked in
seconds, on the README's study config (``configs/kd_study/polyp-cpu-128.py``)
with the seconds per step given. The rules on fake records:
``tests/test_study/test_rules.py``; a whole study at toy size through the
real tools: ``tests/test_study/test_toy_study.py``.
"""
import json
import math
import os
import os.path as osp
import shutil
import sys

import pytest
import torch
from conftest import load_tool
from mmengine.config import Config

from mmseg_kdas import study
from mmseg_kdas.models.distillers.export import with_one_test_pipeline
from mmseg_kdas.utils.checkpoint_file import weights_digest
from mmseg_kdas.utils.config_text import config_text

tool = load_tool('tools/kd_study.py')

PRESET = osp.join(study.ROOT, 'configs/kd_study/polyp-cpu-128.py')
#: Seconds per step and image of the plan (the previous engine's figures
#: of a 2-core machine of this class at 128 px, batch 8).
SPEED = dict(
    student=0.49,
    kd_cached=0.54,
    kd_online=0.75,
    teacher=1.25,
    eval_student=0.15,
    eval_teacher=0.25,
    cache_per_image_rate=0.06)
#: Those measured by the study (``speed.json``) on 2 cores of an AVX-512
#: "AMD EPYC" (family 26, model 2), rounded.
SPEED_AVX512 = dict(
    student=0.18,
    kd_cached=0.20,
    kd_online=0.33,
    teacher=0.66,
    eval_student=0.11,
    eval_teacher=0.13,
    cache_per_image_rate=0.019)
VAL_KEY = 'PraNet-val/mDice'


def study_config(tmp_path, base=PRESET, speed=SPEED) -> str:
    """A study config: ``base`` with the seconds per step given (nothing
    measured)."""
    path = tmp_path / 'study_config.py'
    path.write_text(f'_base_ = [{base!r}]\n'
                    f'speed = dict(_delete_=True, **{speed!r})\n')
    return str(path)


def load(tmp_path, data_root='data', speed=SPEED, **options):
    """The study's settings, as the tool has them."""
    return study.load_study(
        study_config(tmp_path, speed=speed), options, data_root=data_root,
        work_dir=str(tmp_path / 'work'), ledger=None, dry_run=False,
        rerun=None, accept_teacher_disagreement=False)


def test_every_method_trains_under_one_protocol(tmp_path):
    args = load(tmp_path, iters=60, val_interval=30)
    args.split_file = 'val.txt'
    runs = [('teacher', args.teacher)] + list(args.families.items())
    for name, base in runs:
        kd = name not in ('student', 'teacher')
        cfg = study.protocol_config(
            args, base, ['ETIS', 'Kvasir'], seed=2,
            teacher=name == 'teacher', teacher_ckpt='t.pth',
            teacher_cache='cache' if kd else None)
        iters = (args.teacher_iters, args.teacher_val_interval) if (
            name == 'teacher') else (60, 30)
        assert cfg.train_cfg.type == 'MultiScaleIterBasedTrainLoop'
        assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == iters
        [sched] = cfg.param_scheduler
        assert (sched['type'], sched['T_max'], sched['end'],
                sched['eta_min'], sched['by_epoch']) == (
                    'CosineAnnealingLR', iters[0], iters[0], 0.0, False)
        assert cfg.default_hooks.checkpoint.interval == iters[1]
        assert cfg.randomness.seed == 2
        assert [h.type for h in cfg.custom_hooks].count(
            'IterationSeedHook') == 1
        assert cfg.optim_wrapper.optimizer.lr == 5e-4
        train = cfg.train_dataloader
        assert train.batch_size == 8
        assert train.dataset.split == 'train-minus-val'
        assert train.dataset.data_root == 'data'
        val = cfg.val_dataloader.dataset
        assert (val.split, val.test_set) == ('val', 'PraNet-val')
        assert train.dataset.split_file == val.split_file == 'val.txt'
        pipeline = train.dataset.pipeline
        assert [t['type'] for t in pipeline] == [
            'LoadImageFromFile', 'LoadPolypAnnotations', 'Resize',
            'PackSegInputs'
        ]
        assert pipeline[2]['scale'] == (128, 128)
        augments = cfg.model.data_preprocessor.batch_augments
        assert [(a['rates'], a['mode']) for a in augments] == [
            ((0.75, 1.0, 1.25), 'cycle')
        ]
        sets = [(d.test_set, d.data_prefix.img_path)
                for d in cfg.test_dataloader.dataset.datasets]
        assert sets == [('ETIS', 'TestDataset/ETIS/images'),
                        ('Kvasir', 'TestDataset/Kvasir/images')]
        if cfg.model.type == 'KDASDistiller':
            assert kd
            assert cfg.model.teacher_ckpt == 't.pth'
            assert cfg.model.teacher_cache == 'cache'
            assert cfg.model.teacher.backbone.arch == 'b2'
            assert cfg.model.student.backbone.arch == 'b0'
            assert cfg.model.student.backbone.init_cfg is None
        else:
            assert not kd
            assert cfg.model.backbone.arch == ('b2' if name == 'teacher'
                                               else 'b0')
            assert cfg.model.backbone.init_cfg is None
    cfg = study.protocol_config(args, args.families['CWD'], ['Kvasir'], 0,
                                teacher_ckpt='t.pth',
                                setting=args.grids['CWD'][1])
    assert cfg.model.loss_at.temperature == 4.0
    assert cfg.model.loss_at.loss_weight == 3.0
    assert 'teacher_cache' not in cfg.model
    methods = study.final_methods(
        args.methods, {f: g[0] for f, g in args.grids.items()})
    cfg = study.protocol_config(args, args.families['KDAS'], ['Kvasir'], 0,
                                teacher_ckpt='t.pth',
                                setting=methods['L_SGM alone'].setting)
    assert (cfg.model.alpha, cfg.model.at_weight,
            cfg.model.sgm_weight) == (0.3, 0.0, 1.0)
    with pytest.raises(ValueError, match='not a distiller'):
        study.protocol_config(args, args.families['student'], ['Kvasir'], 0,
                              setting=(('alpha', 0.5), ))
    cfg = study.protocol_config(args, args.teacher, ['Kvasir'], 0,
                                teacher=True)
    assert cfg.default_hooks.checkpoint.save_best == 'PraNet-val/mDice'
    # the size is one key: the scale of each pipeline's resize
    args = load(tmp_path, size=96)
    args.split_file = 'val.txt'
    cfg = study.protocol_config(args, args.teacher, ['Kvasir'], 0,
                                teacher=True)
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        [resize] = [t for t in loader.dataset.pipeline if 'scale' in t]
        assert resize.scale == (96, 96)
    assert cfg.default_hooks.checkpoint.rule == 'greater'


def test_the_default_plan_fits_eight_hours(tmp_path):
    # five seeds of nine methods: 45 final runs, 6 of them the grid's (or
    # the gate's) seed-0 runs; every one and the teacher tested
    args = load(tmp_path, speed=SPEED_AVX512)
    steps = study.plan_steps(args, num_val=150, num_test=480,
                             num_train=1450)
    counts = {}
    for step in steps:
        counts[step.stage] = counts.get(step.stage, 0) + 1
    assert counts == {
        '1 teacher': 1,
        '2 gate': 1,
        '3 caches': 2,
        '4 grid': 15,
        '5 agreement': 1,
        '6 final': 39,
        '7 tests': 46
    }
    total = sum(s.minutes for s in steps)
    assert 240 < total <= 480, total  # the study's plan said 280
    assert 'over' not in study.format_plan(steps, 480)
    # on the slower 2-core machines of the previous engine's figures it
    # needs more than the 8-hour budget, and the plan says so
    slow = study.plan_steps(load(tmp_path), 150, 480, 1450)
    assert 480 < sum(s.minutes for s in slow) < 660
    assert 'WARNING: over the budget' in study.format_plan(slow, 480)
    # the teacher online costs more, and has no caches to fill
    online = study.plan_steps(
        load(tmp_path, speed=SPEED_AVX512, teacher_cache=False), 150, 480,
        1450)
    assert not any(s.stage == '3 caches' for s in online)
    assert sum(s.minutes for s in online) > total


def test_bad_study_keys_are_named(tmp_path, capsys):
    data = str(tmp_path)
    cfg = study_config(tmp_path)
    for options, message in (
        (['iters=801'], 'iters must be a multiple of its validation'),
        (['seeds=[1,2]'], 'seeds must include 0'),
        (['device=tpu'], "device must be 'cpu' or 'cuda'"),
        (['gpus=2'], "more than one needs device 'cuda'"),
        (['teacher_iters=abc'], 'teacher_iters must be a int'),
        (['families.student=configs/none.py'], 'no config configs/none.py'),
    ):
        argv = [cfg, data, '--work-dir', data, '--dry-run', '--cfg-options',
                *options]
        assert tool.main(argv) == 2, options
        assert message in capsys.readouterr().err, options
    assert tool.main([str(tmp_path / 'none.py'), data, '--work-dir',
                      data]) == 2
    assert 'no study config' in capsys.readouterr().err


def test_test_sets_are_found(tmp_path):
    for name in ('Kvasir', 'ETIS'):
        for sub in ('images', 'masks'):
            os.makedirs(tmp_path / 'TestDataset' / name / sub)
    os.makedirs(tmp_path / 'TestDataset' / 'empty')
    assert study.find_test_sets(str(tmp_path)) == ['ETIS', 'Kvasir']
    with pytest.raises(FileNotFoundError, match='no test set in'):
        study.find_test_sets(str(tmp_path / 'nowhere'))


def test_a_killed_attempt_is_counted_to_its_last_write(tmp_path):
    run_dir = str(tmp_path)
    assert study.account_interrupted_attempt(run_dir) is None  # none ran
    start = 1_000_000.0
    (tmp_path / study.STARTED).write_text(f'{start}\n')
    (tmp_path / 'train_minutes.txt').write_text('2.00\n')  # a finished one
    log = tmp_path / 'attempt' / 'run.log'
    log.parent.mkdir()
    log.write_text('iteration 50\n')
    os.utime(log, (start + 450, start + 450))  # its last write: 7.5 min in
    assert study.account_interrupted_attempt(run_dir) == pytest.approx(7.5)
    assert (tmp_path / 'train_minutes.txt').read_text() == '2.00\n7.50\n'
    assert not (tmp_path / study.STARTED).exists()
    assert study.account_interrupted_attempt(run_dir) is None  # counted once


# The whole protocol with a fake runner


def student_score(model: dict) -> float:
    """Validation mDice the fake gives a student run, from its config."""
    if model['type'] != 'KDASDistiller':
        return 0.70
    at = model['loss_at']
    kind = at['type']
    if kind == 'AttentionSupervisionLoss':
        if model['sgm_weight'] == 0 or model['at_weight'] == 0:
            return 0.71
        # the grid's last KDAS setting (alpha 0.5, T 4) is the best
        return 0.72 + 0.01 * (model['alpha'] == 0.5) + 0.005 * (
            at['temperature'] == 4.0)
    if kind == 'PixelKDLoss':
        return 0.70  # a tie: the first setting wins
    if kind == 'ChannelWiseDivergence':
        return 0.60 + 0.1 * (at['temperature'] == 4.0) - 0.01 * (
            at['loss_weight'] > 1)  # T 4, weight 1 wins
    if kind == 'AttentionTransferLoss':
        return 0.69 + 0.001 * at['loss_weight'] / 100  # 2500 would win ...
    return 0.705  # KDAS-ref


class FakeRunner:
    """Does what the commands would, on the files the tool reads."""

    def __init__(self, teacher_curves=None, fail_at=None, machine=0.0):
        self.calls = []
        self.teacher_curves = teacher_curves or {
            0: [0.70, 0.78],
            1: [0.71, 0.79]
        }
        self.fail_at = fail_at  # the n-th training call fails
        self.machine = machine  # another machine: other last bits

    def weights(self, path, value):
        """A checkpoint whose weights depend on the run, not its folder."""
        torch.save({'state_dict': {'w': torch.tensor([value]) +
                                   self.machine},
                    'meta': {'path': path}}, path)

    def __call__(self, cmd, log_file):
        self.calls.append(cmd)
        tool_name = cmd[1]
        if tool_name == 'tools/cache_teacher.py':
            os.makedirs(cmd[cmd.index('--out') + 1])
        elif tool_name == 'tools/train.py':
            self.train(cmd[2], cmd[4], log_file)
        elif tool_name == 'tools/test.py':
            self.test(cmd[2], cmd[-1])
        else:
            raise AssertionError(cmd)

    def train(self, cfg_file, work_dir, log_file):
        trains = sum(c[1] == 'tools/train.py' for c in self.calls)
        if trains == self.fail_at:
            raise RuntimeError('killed')
        cfg = Config.fromfile(cfg_file, import_custom_modules=False)
        model = cfg.model
        iters = cfg.train_cfg.max_iters
        interval = cfg.train_cfg.val_interval
        steps = list(range(interval, iters + 1, interval))
        if model.type == 'KDASDistiller' and \
                model.loss_at.type == 'AttentionTransferLoss' and \
                model.loss_at.loss_weight == 2500:
            with open(log_file, 'a') as f:
                f.write('FloatingPointError: non-finite loss at iteration 1:'
                        ' loss_at_0 = nan\n')
            raise RuntimeError('diverged')
        if model.type == 'KDASDistiller' or model.backbone.arch == 'b0':
            values = [student_score(model)] * len(steps)
        else:
            values = self.teacher_curves[cfg.randomness.seed]
        logs = osp.join(work_dir, '20260101_000000', 'vis_data')
        os.makedirs(logs, exist_ok=True)
        with open(osp.join(logs, 'scalars.json'), 'w') as f:
            for step, value in zip(steps, values):
                f.write(json.dumps({'step': step, VAL_KEY: value}) +
                        '\n')
        identity = values[-1] + cfg.randomness.seed
        if model.type == 'KDASDistiller':
            identity += sum(
                v for k, v in model.items() if isinstance(v, float))
            identity += sum(
                v for term in ('loss_at', 'loss_sgm')
                for v in (model.get(term) or {}).values()
                if isinstance(v, float))
        self.weights(osp.join(work_dir, f'iter_{iters}.pth'), identity)
        if cfg.default_hooks.checkpoint.get('save_best'):
            best = steps[values.index(max(values))]
            self.weights(
                osp.join(work_dir, f'best_PraNet-val_mDice_iter_{best}.pth'),
                identity)
        if model.type == 'KDASDistiller':
            open(osp.join(work_dir, f'iter_{iters}_student.pth'), 'w').close()
            # as StudentExportHook writes it: the test sets in one wrapper
            # with their pipeline
            with open(osp.join(work_dir, 'student_config.py'), 'w') as f:
                f.write(config_text(with_one_test_pipeline(cfg)))

    def test(self, cfg_file, test_dir):
        """Metrics of the test sets of the config, from the run's."""
        run_dir = osp.dirname(cfg_file)
        dataset = Config.fromfile(
            cfg_file, import_custom_modules=False).test_dataloader.dataset
        wrapper_pipeline = None
        while 'dataset' in dataset:  # the student's export wraps them
            assert 'data_prefix' not in dataset, cfg_file  # not a test set
            wrapper_pipeline = dataset.pipeline
            dataset = dataset.dataset
        leaves = dataset.get('datasets', [dataset])
        # what tools/test.py builds: one PolypDataset per test set, with
        # the pipeline (or the wrapper's)
        assert all(d.type == 'PolypDataset' and (
            d.get('pipeline') or wrapper_pipeline) for d in leaves), cfg_file
        sets = [d.test_set for d in leaves]
        if osp.basename(osp.dirname(run_dir)) == 'teacher':
            dice = {'Kvasir': 0.80, 'ETIS': 0.50}
        else:
            cfg = Config.fromfile(
                osp.join(run_dir, osp.basename(osp.dirname(osp.dirname(
                    run_dir))) + '.py'),
                import_custom_modules=False)
            seed = int(osp.basename(run_dir)[4:])
            base = student_score(cfg.model) - 0.05 + 0.001 * seed
            dice = {'Kvasir': base, 'ETIS': base - 0.1}
        metrics = {
            f'{ts}/{m}': dice[ts]
            for ts in sets for m in study.MEASURES
        }
        # what tools/test.py logs beside them: seconds, other every time
        metrics.update(time=0.1 + 0.01 * len(self.calls),
                       data_time=0.001 * len(self.calls))
        out = osp.join(test_dir, '20260101_000001')
        os.makedirs(out, exist_ok=True)
        with open(osp.join(out, '20260101_000001.json'), 'w') as f:
            json.dump(metrics, f)


def _data_root(tmp_path):
    for name in ('Kvasir', 'ETIS'):
        for sub in ('images', 'masks'):
            os.makedirs(tmp_path / 'data' / 'TestDataset' / name / sub,
                        exist_ok=True)
    return str(tmp_path / 'data')


#: Options of the previous tool, now keys of the study config.
_KEYS = {
    '--seeds', '--teacher-seeds', '--iters', '--teacher-iters',
    '--val-interval', '--teacher-val-interval', '--teacher-tolerance',
    '--gate-margin', '--threads', '--budget-minutes'
}
_LISTS = {'--seeds', '--teacher-seeds'}


def _argv(tmp_path, *extra):
    """The tool's arguments at toy size; ``extra`` may set keys of the
    study config as options (``'--iters', '4'``)."""
    options = [
        'teacher_iters=4', 'teacher_val_interval=2', 'iters=2',
        'val_interval=2', 'seeds=[0,1,2]'  # the preset's five: slower
    ]
    rest, extra = [], list(extra)
    while extra:
        flag = extra.pop(0)
        if flag == '--no-teacher-cache':
            options.append('teacher_cache=False')
        elif flag in _KEYS:
            values = []
            while extra and not extra[0].startswith('--'):
                values.append(extra.pop(0))
            value = (f'[{",".join(values)}]'
                     if flag in _LISTS else values[0])
            options.append(f'{flag[2:].replace("-", "_")}={value}')
        else:
            rest.append(flag)
    return [
        study_config(tmp_path),
        _data_root(tmp_path), '--work-dir',
        str(tmp_path / 'work'), *rest, '--cfg-options', *options
    ]


def _args(argv):
    """The settings the tool runs the study with."""
    return tool.study_args(argv)


def _kinds(calls):
    kinds = {}
    for cmd in calls:
        kinds[cmd[1]] = kinds.get(cmd[1], 0) + 1
    return kinds


def test_the_protocol_end_to_end_and_rerun_skips_everything(tmp_path,
                                                            capsys):
    runner = FakeRunner(fail_at=10)
    with pytest.raises(RuntimeError, match='killed'):  # interrupted
        tool.main(_argv(tmp_path), runner)
    assert tool.main(_argv(tmp_path), runner) == 0  # resumed
    # 2 teachers, the gate's student, 15 grid runs (AT 2500 diverges), 21
    # final runs; the killed attempt is the one run twice
    assert _kinds(runner.calls) == {
        'tools/train.py': 39 + 1,
        'tools/cache_teacher.py': 2,
        'tools/test.py': 9 * 3 + 1
    }
    work = tmp_path / 'work'
    selection = json.loads((work / 'selection.json').read_text())
    assert selection['selected'] == {
        'KDAS': 'α = 0.5, T = 4',
        'PixelKD': 'T = 2, weight = 1',
        'CWD': 'T = 4, weight = 1',
        'AT': 'weight = 500',
    }
    assert selection['teacher']['seed'] == 0
    assert selection['teacher']['iter'] == 4
    assert selection['teacher']['ckpt'].endswith(
        'teacher/seed0/best_PraNet-val_mDice_iter_4.pth')
    assert selection['teacher_runs'] == {
        '0': dict(iter=4, value=0.78), '1': dict(iter=4, value=0.79)}
    grid = {g['setting']: g['score'] for g in selection['grid']['AT']}
    assert math.isnan(grid['weight = 2500'])
    # every KD run trains from the cache of its maps
    for name, cache in (('KDAS/a0.5_T4/seed2/KDAS.py', 'head0-head1'),
                        ('KDAS-ref/default/seed1/KDAS-ref.py',
                         'head0-head1'),
                        ('AT/w500/seed2/AT.py',
                         'backbone0-backbone1-backbone2-backbone3')):
        cfg = Config.fromfile(str(work / 'runs' / name),
                              import_custom_modules=False)
        assert cfg.model.teacher_cache == str(work / 'teacher_cache' / cache)
        assert cfg.model.teacher_ckpt == selection['teacher']['ckpt']
    report = (work / 'results.md').read_text()
    for method in ('KDAS (paper)', 'KDAS (tuned)', 'KDAS-ref', 'L_AT alone',
                   'L_SGM alone', 'CWD (tuned)', 'AT (tuned)',
                   'PixelKD (tuned)'):
        assert f'| {method} | 3 |' in report
    # ETIS: teacher 0.50 vs plain student 0.551, no share; Kvasir: 0.80 vs
    # 0.651, KDAS (tuned) 0.686: (0.686 - 0.651) / (0.80 - 0.651) = 23.5 %
    etis = report[report.index('| model | seeds | ETIS mDice'):
                  report.index('| model | seeds | Kvasir mDice')]
    kvasir = report[report.index('| model | seeds | Kvasir mDice'):]
    assert 'not at least 0.01 ahead' in etis and 'gap closed' not in etis
    assert 'not at least 0.01 ahead' not in kvasir
    assert '| KDAS (tuned) | +0.0350, +0.0350, +0.0350 | +0.0350 | - | - | ' \
        '23.5% |' in kvasir  # equal differences: no t, no p
    # head to head (the study config's head_to_head): KDAS (tuned) 0.686
    # against KDAS (paper) 0.671 and AT (tuned) 0.646, paired by seed
    head = kvasir[kvasir.index('Kvasir mean Dice of KDAS (tuned) minus'):]
    assert '| KDAS (paper) | +0.0150, +0.0150, +0.0150 | +0.0150 | - | - |' \
        in head
    assert '| AT (tuned) | +0.0400, +0.0400, +0.0400 | +0.0400 | - | - |' \
        in head
    assert '| student |' not in head.split('\n\n')[1]
    # the students ranked on each set side by side
    assert '| rank | ETIS | Kvasir |' in report
    assert ('| 1 | KDAS (tuned) (0.5860) | KDAS (tuned) (0.6860) |' in
            report)
    assert '| 9 | AT (tuned) (0.5460) | AT (tuned) (0.6460) |' in report
    assert '**weight = 500**' in report and '| AT | weight = 2500 | ' \
        'diverged |' in report
    assert (work / 'results_Kvasir.png').is_file()
    assert (work / 'results_ETIS.png').is_file()

    rerun = FakeRunner()
    assert tool.main(_argv(tmp_path), rerun) == 0
    assert rerun.calls == []  # every step was done
    assert (work / 'results.md').read_text() == report
    out = capsys.readouterr().out
    assert 'Plan (estimated minutes' in out and 'total:' in out


def test_the_gate_stops_before_any_student_is_distilled(tmp_path, capsys):
    runner = FakeRunner(teacher_curves={0: [0.70, 0.73], 1: [0.71, 0.74]})
    assert tool.main(_argv(tmp_path), runner) == 2
    err = capsys.readouterr().err
    assert 'teacher 0.7300' in err and 'plain student (seed 0) 0.7000' in err
    # the teacher (seed 0) and the plain student only
    assert _kinds(runner.calls) == {'tools/train.py': 2}


def test_disagreeing_teachers_stop_the_protocol(tmp_path, capsys):
    runner = FakeRunner(teacher_curves={0: [0.70, 0.78], 1: [0.71, 0.81]})
    assert tool.main(_argv(tmp_path), runner) == 2
    err = capsys.readouterr().err
    assert 'seed 0: 0.7800' in err and 'seed 1: 0.8100' in err
    # checked after the grid, before the final stage
    assert _kinds(runner.calls) == {
        'tools/train.py': 1 + 1 + 15 + 1,
        'tools/cache_teacher.py': 2
    }


def test_an_accepted_disagreement_continues_and_is_reported(tmp_path):
    curves = {0: [0.70, 0.78], 1: [0.71, 0.81]}
    runner = FakeRunner(teacher_curves=curves)
    assert tool.main(_argv(tmp_path), runner) == 2
    # the same work dir goes on: nothing is trained again
    runner = FakeRunner(teacher_curves=curves)
    assert tool.main(_argv(tmp_path, '--accept-teacher-disagreement'),
                     runner) == 0
    trained = [c[4] for c in runner.calls if c[1] == 'tools/train.py']
    assert not any('teacher' in t for t in trained)
    report = (tmp_path / 'work' / 'results.md').read_text()
    assert ('**The agreement check failed**: spread 0.0300, more than the '
            'tolerance 0.02') in report
    assert '- seed 0: 0.7800 at iteration 4' in report
    results = json.loads((tmp_path / 'work' / 'results.json').read_text())
    assert results['teacher']['agreed'] is False
    assert results['teacher']['spread'] == pytest.approx(0.03)


def test_a_work_dir_of_another_protocol_is_refused(tmp_path, capsys):
    runner = FakeRunner(teacher_curves={0: [0.70, 0.73], 1: [0.71, 0.74]})
    tool.main(_argv(tmp_path), runner)
    argv = _argv(tmp_path, '--iters', '4')
    assert tool.main(argv, FakeRunner()) == 2
    assert 'iters' in capsys.readouterr().err


def test_dry_run_prints_the_plan_only(tmp_path, capsys):
    runner = FakeRunner()
    assert tool.main([
        study_config(tmp_path),
        str(tmp_path / 'none'), '--work-dir',
        str(tmp_path / 'work'), '--dry-run'
    ], runner) == 0
    out = capsys.readouterr().out
    assert ('validation split: 150 of 0 training images (the list '
            'pranet_val.txt)') in out
    assert 'seconds per step from the study config' in out
    assert '4 grid: 15 step(s)' in out and 'total:' in out
    assert runner.calls == []


# A test set added to the data root after the run, or removed


def _records(work):
    return {
        str(p): json.loads(p.read_text())
        for p in sorted(work.rglob('record.json'))
    }


def _without(records, test_set):
    """The records with the figures of ``test_set`` taken out."""
    return {
        path: dict(r, test={
            k: v
            for k, v in r['test'].items() if not k.startswith(f'{test_set}/')
        }) if 'test' in r else r
        for path, r in records.items()
    }


def test_a_test_set_added_after_the_run_is_tested_alone(tmp_path, capsys):
    argv = _argv(tmp_path)
    etis = osp.join(argv[1], 'TestDataset', 'ETIS')
    shutil.rmtree(etis)  # a study finished on Kvasir alone
    assert tool.main(argv, FakeRunner()) == 0
    work = tmp_path / 'work'
    before = _records(work)
    assert 'ETIS' not in (work / 'results.md').read_text()

    _data_root(tmp_path)  # ETIS is added
    capsys.readouterr()
    assert tool.main(argv + ['--dry-run'], FakeRunner()) == 0
    plan = capsys.readouterr().out
    # the 28 test steps are left, on ETIS only; nothing trains again
    assert 'recorded: 41 of 69 steps; left: 28 step(s)' in plan
    assert ('test set ETIS: not in the recorded tests (added to the data '
            'root after them): 28 tested run(s) to test on it alone'
            ) in plan
    assert 'trained again' not in plan
    runner = FakeRunner()
    assert tool.main(argv, runner) == 0
    # the chosen models (9 methods x 3 seeds) and the teacher, on ETIS only
    assert _kinds(runner.calls) == {'tools/test.py': 9 * 3 + 1}
    for cmd in runner.calls:
        assert osp.basename(cmd[2]) == 'test_ETIS.py'
        cfg = Config.fromfile(cmd[2], import_custom_modules=False)
        assert cfg.test_dataloader.dataset.test_set == 'ETIS'
        assert cfg.test_dataloader.dataset.data_root == argv[1]
    after = _records(work)
    assert _without(after, 'ETIS') == before  # the figures recorded stay
    tested = [r for r in after.values() if 'test' in r]
    assert len(tested) == 28
    assert all(study.tested_sets(r) == ['ETIS', 'Kvasir'] for r in tested)
    report = (work / 'results.md').read_text()
    etis_table = report[report.index('| model | seeds | ETIS mDice'):
                        report.index('| model | seeds | Kvasir mDice')]
    assert '| teacher | 1 | 0.5000 |' in etis_table
    assert '| KDAS (tuned) | 3 | 0.5860 ± 0.0010 |' in etis_table
    results = json.loads((work / 'results.json').read_text())
    assert results['test_sets'] == ['ETIS', 'Kvasir']
    assert 'test_set_notes' not in results
    assert (work / 'results_ETIS.png').is_file()

    shutil.rmtree(etis)  # removed again: reported, not a crash
    capsys.readouterr()
    runner = FakeRunner()
    assert tool.main(argv, runner) == 0
    assert runner.calls == []
    out = capsys.readouterr().out
    assert ('test set ETIS: recorded, not in the data root (neither '
            'tested nor reported)') in out
    report = (work / 'results.md').read_text()
    assert ('Test set ETIS: recorded, not in the data root (not reported; '
            'its figures stay in the records).') in report
    assert 'ETIS mDice' not in report and 'Kvasir mDice' in report
    assert json.loads((work / 'results.json').read_text())[
        'test_sets'] == ['Kvasir']
    assert _records(work) == after


def test_a_report_names_the_runs_that_lack_a_test_set():
    def record(*sets):
        return dict(test={f'{ts}/{m}': 0.5 for ts in sets
                          for m in study.MEASURES})

    results = {'student': {0: record('A', 'B'), 1: record('A')},
               'KDAS': {0: record('A', 'B', 'C')}}
    shown, notes = study.reported_sets(['A', 'B'], record('A', 'B'),
                                       results)
    assert shown == ['A']
    assert notes == [
        'Test set B: not reported, no figures of it for student seed 1.',
        'Test set C: recorded, not in the data root (not reported; its '
        'figures stay in the records).'
    ]


# The ledger: a run carried over to another machine


def _ledger_argv(tmp_path, work, *extra):
    argv = _argv(tmp_path, '--ledger', str(tmp_path / 'ledger'), *extra)
    argv[argv.index('--work-dir') + 1] = str(tmp_path / work)
    return argv


def _trained(calls, tmp_path):
    """The work dirs of the training commands, relative to ``tmp_path``."""
    return [osp.relpath(c[4], tmp_path) for c in calls
            if c[1] == 'tools/train.py']


def test_a_ledger_carries_the_run_to_a_fresh_work_dir(tmp_path, capsys):
    first = FakeRunner(fail_at=12)  # killed in the grid, on "machine 1"
    with pytest.raises(RuntimeError, match='killed'):
        tool.main(_ledger_argv(tmp_path, 'machine1'), first)
    ledger = tmp_path / 'ledger'
    done = sorted(
        osp.relpath(osp.dirname(p), ledger)
        for p in map(str, ledger.rglob('record.json')))
    assert len(done) == 1 + 1 + 9  # the teacher, the gate, 9 grid runs
    assert 'teacher/seed1' not in done  # its run comes after the grid
    assert (ledger / 'protocol.json').is_file()

    # a fresh work dir: only the ledger is there; the plan names the runs
    # that are trained again for their files
    capsys.readouterr()
    assert tool.main(_ledger_argv(tmp_path, 'machine2', '--dry-run'),
                     FakeRunner()) == 0
    plan = capsys.readouterr().out
    assert 'recorded: 11 of 69 steps; left: 58 step(s)' in plan
    again = plan.split('trained again here for their files')[1]
    # the teacher, for the caches and KD runs; the seed-0 runs of the
    # final stage that machine 1 trained, for their tests (before the
    # grid's end, the plan counts the last setting of each grid as chosen)
    assert ('5 run(s), 3 min (teacher/seed0, runs/student/default/seed0, '
            'runs/KDAS/a0.3_T2/seed0, runs/KDAS/a0.5_T4/seed0, '
            'runs/PixelKD/T2_w3/seed0)') in again
    second = FakeRunner()
    assert tool.main(_ledger_argv(tmp_path, 'machine2'), second) == 0
    trained = _trained(second.calls, tmp_path)
    # the teacher (seed 0) once more, for its checkpoint, and seed 1 for
    # the first time; the gate and the 9 grid runs are not trained again,
    # except the ones tested at the end: the plain student's and the
    # chosen settings' seed-0 runs that machine 1 had trained
    assert trained.count('machine2/teacher/seed0') == 1
    assert trained.count('machine2/teacher/seed1') == 1
    assert trained.index('machine2/teacher/seed0') < trained.index(
        'machine2/teacher/seed1')
    assert trained.count('machine2/runs/student/default/seed0') == 1
    assert len(trained) == len(set(trained))
    teacher = json.loads((ledger / 'teacher/seed0/record.json').read_text())
    assert len(teacher['reproductions']) == 1
    assert teacher['weights'] == weights_digest(
        str(tmp_path / 'machine2/teacher/seed0/iter_4.pth'))
    assert 'reproductions' not in json.loads(
        (ledger / 'teacher/seed1/record.json').read_text())
    # the same figures as a run on one machine
    alone = FakeRunner()
    assert tool.main(_argv(tmp_path), alone) == 0
    report = (tmp_path / 'machine2' / 'results.md').read_text()
    assert report == (tmp_path / 'work' / 'results.md').read_text()

    third = FakeRunner()  # everything, tests included, is in the ledger
    capsys.readouterr()
    assert tool.main(_ledger_argv(tmp_path, 'machine3'), third) == 0
    assert third.calls == []
    # nothing is left: the caches (files, not records) are read by no
    # step left, and every test is recorded
    plan = capsys.readouterr().out
    assert 'recorded: 67 of 69 steps; left: 0 step(s), 0 min' in plan
    assert 'trained again' not in plan
    assert (tmp_path / 'machine3' / 'results.md').read_text() == report


def test_a_test_set_added_after_a_ledger_run_is_tested_elsewhere(
        tmp_path, capsys):
    argv = _ledger_argv(tmp_path, 'machine1')
    etis = osp.join(argv[1], 'TestDataset', 'ETIS')
    shutil.rmtree(etis)
    assert tool.main(argv, FakeRunner()) == 0
    ledger = tmp_path / 'ledger'
    before = _records(ledger)

    _data_root(tmp_path)  # ETIS is added; machine 2 has the ledger only
    capsys.readouterr()
    assert tool.main(_ledger_argv(tmp_path, 'machine2', '--dry-run'),
                     FakeRunner()) == 0
    plan = capsys.readouterr().out
    # the 28 tests and the 2 caches
    assert 'recorded: 39 of 69 steps; left: 30 step(s)' in plan
    # every tested run, for its checkpoint: the teacher and 27 students
    assert 'trained again here for their files (recorded, not in this ' \
        'work dir): 28 run(s)' in plan
    assert '28 tested run(s) to test on it alone' in plan
    second = FakeRunner()
    assert tool.main(_ledger_argv(tmp_path, 'machine2'), second) == 0
    assert _kinds(second.calls) == {
        'tools/train.py': 28,
        'tools/cache_teacher.py': 2,
        'tools/test.py': 28
    }
    assert all(osp.basename(c[2]) == 'test_ETIS.py' for c in second.calls
               if c[1] == 'tools/test.py')
    after = _records(ledger)
    # each reproduction is added, the Kvasir figures stay as they were
    assert {
        p: {k: v for k, v in r.items() if k != 'reproductions'}
        for p, r in _without(after, 'ETIS').items()
    } == {
        p: {k: v for k, v in r.items() if k != 'reproductions'}
        for p, r in before.items()
    }
    assert sum('reproductions' in r for r in after.values()) == 28
    report = (tmp_path / 'machine2' / 'results.md').read_text()
    assert '| model | seeds | ETIS mDice' in report


def test_a_run_that_does_not_reproduce_stops_and_keeps_the_ledger(
        tmp_path, capsys):
    with pytest.raises(RuntimeError, match='killed'):
        tool.main(_ledger_argv(tmp_path, 'machine1'),
                  FakeRunner(fail_at=5))  # after 1 grid run
    ledger = tmp_path / 'ledger' / 'teacher' / 'seed0' / 'record.json'
    before = ledger.read_bytes()
    other = FakeRunner(machine=1e-6)  # other last bits
    assert tool.main(_ledger_argv(tmp_path, 'machine2'), other) == 2
    err = capsys.readouterr().err
    assert 'machine2/teacher/seed0 was trained again' in err
    assert 'other weights' in err and 'validation mean Dice 0.7800' in err
    assert 'trained in one attempt' in err
    assert _trained(other.calls, tmp_path) == ['machine2/teacher/seed0']
    assert ledger.read_bytes() == before
    # a rerun stops again, without training, and still keeps the ledger
    again = FakeRunner(machine=1e-6)
    assert tool.main(_ledger_argv(tmp_path, 'machine2'), again) == 2
    assert _trained(again.calls, tmp_path) == []
    assert ledger.read_bytes() == before


def test_a_ledger_of_another_protocol_is_refused(tmp_path, capsys):
    runner = FakeRunner(teacher_curves={0: [0.70, 0.73], 1: [0.71, 0.74]})
    tool.main(_ledger_argv(tmp_path, 'machine1'), runner)  # gate stops
    argv = _ledger_argv(tmp_path, 'machine2', '--threads', '4')
    assert tool.main(argv, FakeRunner()) == 2
    err = capsys.readouterr().err
    assert 'ledger/protocol.json was written by another protocol' in err
    assert 'cpu_env' in err


def test_weights_digest_reads_only_the_weights(tmp_path):
    def save(name, value, meta):
        path = str(tmp_path / name)
        torch.save({'state_dict': {'a': torch.tensor([1.0, value]),
                                   'b': torch.zeros(0)}, 'meta': meta},
                   path)
        return weights_digest(path)

    first = save('x.pth', 2.0, {'time': 1})
    assert save('y.pth', 2.0, {'time': 2}) == first
    assert save('z.pth', 2.0 + 2**-20, {}) != save('x.pth', 2.0, {})


def test_commands_run_on_pinned_cpu_code_paths(tmp_path):
    log = str(tmp_path / 'log.txt')
    study.run([
        sys.executable, '-c', 'import os; print(*(os.environ[k] for k in '
        '("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")))'
    ], log, threads=3)
    assert open(log).read().split() == ['AVX2,STRICT', 'avx2', '3']


def test_what_another_machine_added_to_the_ledger_is_kept(tmp_path):
    args = _args(_ledger_argv(tmp_path, 'machine1'))
    experiment = study.Experiment(args, [], FakeRunner())
    run_dir = osp.join(experiment.work, 'runs', 'student', 'default', 'seed0')
    os.makedirs(run_dir)
    local = dict(iters=2, val_last=0.7, weights='abc', distilled=False)
    study.write_json(osp.join(run_dir, 'record.json'), local)
    ledger_file = experiment._ledger_file(run_dir)
    os.makedirs(osp.dirname(ledger_file))
    study.write_json(ledger_file, dict(local, test={'Kvasir/mDice': 0.6},
                                       reproductions=[dict(minutes=1.0)]))
    record = experiment.record(run_dir)
    assert record['test'] == {'Kvasir/mDice': 0.6}
    assert record['reproductions'] == [dict(minutes=1.0)]
    assert json.loads(open(ledger_file).read()) == record
    # a record of another run (other weights) is refused, naming both
    study.write_json(ledger_file, dict(local, weights='xyz'))
    with pytest.raises(study.ProtocolError, match='abc and xyz'):
        experiment.record(run_dir)


def test_the_machine_is_told_apart_by_family_model_and_isa(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nvendor_id\t: AuthenticAMD\n'
                    'cpu family\t: 25\nmodel\t\t: 17\n'
                    'model name\t: AMD EPYC\n'
                    'flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n'
                    'processor\t: 1\nmodel name\t: other\n')
    text = study.machine_description(str(info))
    assert f'{os.cpu_count()} cores of an "AMD EPYC" CPU (family 25, ' \
        'model 17, AVX-512), torch ' in text
    info.write_text('model name\t: AMD EPYC\nflags\t\t: sse2 avx2\n')
    assert '"AMD EPYC" CPU (AVX2), torch' in study.machine_description(
        str(info))


def test_results_name_the_machines_the_runs_trained_on():
    records = [dict(machine='A'), dict(machine='B'), dict(machine='B'), {}]
    assert study.trained_on(records) == (
        'B (2 runs); A (1 run); a machine not recorded (1 run)')


def test_a_rerun_from_scratch_is_compared_figure_by_figure(
        tmp_path, capsys):
    assert tool.main(_ledger_argv(tmp_path, 'machine1'), FakeRunner()) == 0
    # another machine, a fresh work dir: the protocol is all in the
    # ledger; the rerun trains its runs again under rerun/, from the
    # teacher trained again here (checked against the ledger)
    second = FakeRunner()
    argv = _ledger_argv(tmp_path, 'machine2', '--rerun',
                        'runs/KDAS/a0.5_T4/seed*', 'runs/student/*/seed1',
                        'teacher/seed0')
    capsys.readouterr()
    assert tool.main(argv, second) == 0
    trained = _trained(second.calls, tmp_path)
    assert trained == [  # the teachers first, then seed by seed
        'machine2/rerun/teacher/seed0',
        'machine2/teacher/seed0',  # for its checkpoint: a reproduction
        'machine2/rerun/runs/KDAS/a0.5_T4/seed0',
        'machine2/rerun/runs/student/default/seed1',
        'machine2/rerun/runs/KDAS/a0.5_T4/seed1',
        'machine2/rerun/runs/KDAS/a0.5_T4/seed2',
    ]
    tested = [osp.relpath(c[-1], tmp_path) for c in second.calls
              if c[1] == 'tools/test.py']
    assert 'machine2/rerun/teacher/seed0/test' in tested
    assert len(tested) == 5
    out = capsys.readouterr().out
    assert '| runs/KDAS/a0.5_T4/seed2 | the same bits | 0.7350, 0.7350 | ' \
        '12 | 0 | 0 |' in out
    assert '5 of 5 rerun(s) ended with the first run\'s weights; the ' \
        'largest difference of any figure is 0.' in out
    rows = json.loads((tmp_path / 'machine2' / 'rerun.json').read_text())
    teacher = rows['runs'][0]
    assert teacher['run'] == 'teacher/seed0'
    assert teacher['figures']['val@4'] == [0.78, 0.78, 0.0]
    assert teacher['figures']['Kvasir/mDice'] == [0.80, 0.80, 0.0]
    assert (tmp_path / 'ledger' / 'rerun' / 'runs' / 'KDAS' / 'a0.5_T4' /
            'seed1' / 'record.json').is_file()
    # the test's timings are not figures of the model: not compared
    assert not any(name.endswith('time') for row in rows['runs']
                   for name in row['figures'])
    # finished reruns are skipped, on any machine: a fresh work dir trains
    # nothing, not even the teacher the KD runs' configs name
    third = FakeRunner()
    assert tool.main(_ledger_argv(tmp_path, 'machine3', '--rerun',
                                  'runs/KDAS/a0.5_T4/seed*',
                                  'runs/student/*/seed1', 'teacher/seed0'),
                     third) == 0
    assert third.calls == []
    assert (tmp_path / 'machine3' / 'rerun.md').read_text() == (
        tmp_path / 'machine2' / 'rerun.md').read_text()

    # a rerun that ends with other bits is reported with its differences
    other = FakeRunner(machine=1e-6)
    one = study.Experiment(_args(_argv(tmp_path)), ['Kvasir'],
                           other)
    assert tool.main(_argv(tmp_path), FakeRunner()) == 0
    one()
    one.runner = other
    report = one.rerun(['runs/student/default/seed2'])
    assert '| runs/student/default/seed2 | different |' in report
    assert '0 of 1 rerun(s)' in report
    # a pattern that matches no run is refused, naming examples
    with pytest.raises(study.ProtocolError, match='no run of the protocol'):
        one.rerun(['runs/KDAS/a9*'])

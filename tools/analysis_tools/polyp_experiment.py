"""CPU-scale KD experiment on real polyp images: does distillation help?

    python tools/analysis_tools/polyp_experiment.py DATA_ROOT
        [--work-dir work_dirs/polyp_experiment]
        [--methods student KDAS CWD] [--seeds 0 1 2]
        [--size 128] [--batch-size 8] [--lr 5e-4]
        [--teacher-iters 3600] [--iters 1200] [--val-interval 300]
        [--teacher-val-interval 900]

Trains from scratch (no pretrained weights; none are reachable offline), on
``DATA_ROOT`` in the PraNet layout (``TrainDataset/{images,masks}``,
``TestDataset/<set>/{images,masks}``):

1. the teacher, Polyp-PVT on PVTv2-B2, once, for ``--teacher-iters``
   (a longer schedule than the students', so that it is worth learning
   from), seed 0;
2. for every seed of ``--seeds`` and every method of ``--methods``, a
   Polyp-PVT PVTv2-B0 student for ``--iters``: ``student`` alone, or
   distilled from (1) by ``KDAS`` (the paper's terms), ``KDAS-ref`` (what
   the authors' script effectively optimises) or the standard baselines
   ``PixelKD``, ``CWD`` and ``AT`` (``configs/kd_baselines/``).

All runs share one protocol: ``--size`` x ``--size`` images, multi-scale
0.75 / 1 / 1.25 taking one rate per iteration in turn, binarised masks,
batch ``--batch-size``, AdamW at ``--lr`` with the recipe's weight decay and
gradient clipping, validation every ``--val-interval`` iterations
(``--teacher-val-interval`` for the teacher: the learning curves). Every
model is evaluated at its last iteration with ``tools/test.py`` and
:class:`PolypMetric` on every test set found under ``TestDataset/``, the
distilled students as exported, alone.

Writes to the work dir the configs it ran, ``results.md`` (mean +- std over
seeds per method and test set, per-seed paired differences to the plain
student, the share of the teacher-student gap closed) and ``results.png``
(mean Dice per method with every seed, validation curves). Finished steps
are skipped when the command is run again, and an interrupted training run
resumes from its last checkpoint, so the experiment may span sessions (the
reported training time adds up every attempt, killed ones included).
Subprocesses run this checkout's code (``PYTHONPATH``), whatever is
installed.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config, ConfigDict

from mmseg_kdas.utils.atomic import atomic_write_text

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
from summarize_tests import latest_metrics  # noqa: E402

TEACHER = ('configs/polyp_pvt/'
           'polyp-pvt_pvtv2-b2_1xb16-100e_pranet-352x352.py')
_PAIR = 'polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
METHODS = {
    'student': 'configs/polyp_pvt/'
    'polyp-pvt_pvtv2-b0_1xb16-100e_pranet-352x352.py',
    'KDAS': f'configs/kdas/kdas_{_PAIR}',
    'KDAS-ref': f'configs/kdas/kdas-ref_{_PAIR}',
    'PixelKD': f'configs/kd_baselines/pkd_{_PAIR}',
    'CWD': f'configs/kd_baselines/cwd_{_PAIR}',
    'AT': f'configs/kd_baselines/at_{_PAIR}',
}
MEASURES = ['mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'MAE']
RATES = (0.75, 1.0, 1.25)
STARTED = 'train_started.txt'  # present while a training attempt runs
MINUTES = 'train_minutes.txt'  # one line per training attempt
TRAINED = 'train_done.txt'  # written (atomically) once training succeeded


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='PraNet-layout data folder')
    parser.add_argument(
        '--work-dir', default='work_dirs/polyp_experiment')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['student', 'KDAS', 'CWD'],
        choices=list(METHODS),
        help='students to train, each for every seed')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--lr', type=float, default=5e-4)
    parser.add_argument('--teacher-iters', type=int, default=3600)
    parser.add_argument('--iters', type=int, default=1200)
    parser.add_argument(
        '--val-interval',
        type=int,
        default=300,
        help='validation (learning curve) and checkpoint interval of the '
        'students')
    parser.add_argument(
        '--teacher-val-interval',
        type=int,
        default=900,
        help='the same for the teacher')
    parser.add_argument('--num-workers', type=int, default=2)
    args = parser.parse_args(argv)
    for key in ('teacher_iters', 'iters', 'val_interval',
                'teacher_val_interval', 'size', 'batch_size'):
        if getattr(args, key) <= 0:
            parser.error(f'--{key.replace("_", "-")} must be > 0')
    return args


def find_test_sets(data_root: str) -> List[str]:
    """The test sets under ``TestDataset/``: folders with images and masks.

    Raises:
        FileNotFoundError: If there is none, naming the folder.
    """
    test_root = osp.join(data_root, 'TestDataset')
    sets = sorted(
        name for name in (os.listdir(test_root) if osp.isdir(test_root)
                          else [])
        if osp.isdir(osp.join(test_root, name, 'images'))
        and osp.isdir(osp.join(test_root, name, 'masks')))
    if not sets:
        raise FileNotFoundError(
            f'no test set in {test_root}: expected '
            '<set>/images and <set>/masks folders')
    return sets


def _test_dataset(data_root: str, name: str, pipeline: list) -> dict:
    return dict(
        type='PolypDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path=f'TestDataset/{name}/images',
            seg_map_path=f'TestDataset/{name}/masks'),
        test_set=name,
        test_mode=True,
        pipeline=pipeline)


def protocol_config(base: str,
                    args,
                    test_sets: Sequence[str],
                    iters: int,
                    val_interval: int,
                    seed: int,
                    teacher_ckpt: Optional[str] = None) -> Config:
    """``base`` under the reduced protocol of this experiment.

    Everything that decides what a run does is set here, not inherited, so
    that every method trains under one protocol whatever the shipped
    configs default to.
    """
    cfg = Config.fromfile(osp.join(ROOT, base))
    size = (args.size, args.size)
    meta_keys = cfg.meta_keys
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadPolypAnnotations'),
        dict(type='Resize', scale=size, keep_ratio=False, backend='pillow'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=size, keep_ratio=False, backend='pillow'),
        dict(type='LoadPolypAnnotations'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    workers = dict(
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0)
    cfg.train_dataloader = ConfigDict(
        batch_size=args.batch_size,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=dict(
                img_path='TrainDataset/images',
                seg_map_path='TrainDataset/masks'),
            pipeline=train_pipeline),
        **workers)
    datasets = [
        _test_dataset(args.data_root, name, test_pipeline)
        for name in test_sets
    ]
    cfg.val_dataloader = ConfigDict(
        batch_size=1,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=datasets[0] if len(datasets) == 1 else dict(
            type='ConcatDataset', datasets=datasets),
        **workers)
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.val_evaluator = cfg.test_evaluator = ConfigDict(type='PolypMetric')
    cfg.train_cfg = ConfigDict(
        type='MultiScaleIterBasedTrainLoop',
        max_iters=iters,
        val_interval=val_interval)
    cfg.default_hooks.checkpoint = ConfigDict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=1)
    cfg.default_hooks.logger = ConfigDict(
        type='LoggerHook', interval=50, log_metric_by_epoch=False)
    cfg.log_processor = ConfigDict(by_epoch=False)
    cfg.optim_wrapper.optimizer.lr = args.lr
    cfg.randomness = ConfigDict(seed=seed)

    model = cfg.model
    segmentors = [model]
    if model.type == 'KDASDistiller':
        segmentors = [model.student, model.teacher]
        model.teacher_ckpt = teacher_ckpt
        if model.get('data_preprocessor') is None:
            model.data_preprocessor = copy.deepcopy(
                model.student.data_preprocessor)
    model.data_preprocessor.batch_augments = [
        dict(type='BatchMultiScaleResize', rates=RATES, mode='cycle')
    ]
    for segmentor in segmentors:
        segmentor.backbone.init_cfg = None  # from scratch
    return cfg


def run(cmd: List[str], log_file: str) -> None:
    """Run ``cmd`` in this checkout with its code first on the path."""
    print('$ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    with open(log_file, 'a') as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed (exit '
                           f'{proc.returncode}); see {log_file}')


def read_curve(work_dir: str, key: str) -> Dict[int, float]:
    """``{iteration: value}`` of a validation metric logged in a work dir.

    Reads every ``<timestamp>/vis_data/scalars.json`` (a resumed run writes
    several); later runs overwrite earlier values of the same iteration.
    """
    curve = {}
    for entry in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, entry, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                log = json.loads(line)
                if key in log:
                    curve[int(log['step'])] = float(log[key])
    return curve


def account_interrupted_attempt(run_dir: str) -> Optional[float]:
    """Count the wall time of a training attempt that was killed.

    A training attempt writes its start time to ``STARTED`` and, when it
    ends, its minutes to ``MINUTES``. If the start file is still
    there, the attempt was killed (e.g. at the end of a session): its time
    is taken as ending at the newest file it wrote under ``run_dir`` (its
    log, written at every logged iteration), added to ``MINUTES`` and
    returned. Without this, a run spanning
    sessions would report only its last attempt.
    """
    started_file = osp.join(run_dir, STARTED)
    minutes_file = osp.join(run_dir, MINUTES)
    if not osp.isfile(started_file):
        return None
    with open(started_file) as f:
        start = float(f.read())
    last = start
    for dirpath, _, files in os.walk(run_dir):
        for name in files:
            path = osp.join(dirpath, name)
            if path not in (started_file, minutes_file):
                last = max(last, osp.getmtime(path))
    minutes = _add_minutes(run_dir, start, last)
    os.remove(started_file)
    return minutes


def _add_minutes(run_dir: str, start: float, end: float) -> float:
    minutes = (end - start) / 60
    path = osp.join(run_dir, MINUTES)
    previous = open(path).read() if osp.isfile(path) else ''
    atomic_write_text(path, previous + f'{minutes:.2f}\n')
    return minutes


def train_and_test(name: str, base: str, args, test_sets: Sequence[str],
                   run_dir: str, iters: int, val_interval: int, seed: int,
                   teacher_ckpt: Optional[str] = None) -> dict:
    """Train one model (unless done) and test it; returns its record."""
    os.makedirs(run_dir, exist_ok=True)
    account_interrupted_attempt(run_dir)  # before this call writes files
    log_file = osp.join(run_dir, 'commands.log')
    py = sys.executable
    cfg = protocol_config(base, args, test_sets, iters, val_interval, seed,
                          teacher_ckpt)
    cfg_file = osp.join(run_dir, f'{name}.py')
    atomic_write_text(cfg_file, cfg.pretty_text)
    ckpt = osp.join(run_dir, f'iter_{iters}.pth')
    # done when TRAINED says so, not when a checkpoint exists: an attempt
    # killed after its last checkpoint may lack the student export
    if not osp.isfile(osp.join(run_dir, TRAINED)):
        started_file = osp.join(run_dir, STARTED)
        start = time.time()
        atomic_write_text(started_file, f'{start}\n')
        run([py, 'tools/train.py', cfg_file, '--work-dir', run_dir,
             '--resume'], log_file)
        _add_minutes(run_dir, start, time.time())
        os.remove(started_file)
        atomic_write_text(osp.join(run_dir, TRAINED), f'{ckpt}\n')
    test_cfg, test_ckpt = cfg_file, ckpt
    if cfg.model.type == 'KDASDistiller':  # evaluate what ships
        test_cfg = osp.join(run_dir, 'student_config.py')
        test_ckpt = osp.join(run_dir, f'iter_{iters}_student.pth')
    test_dir = osp.join(run_dir, 'test')
    try:
        metrics = latest_metrics(test_dir)
    except FileNotFoundError:
        run([py, 'tools/test.py', test_cfg, test_ckpt, '--work-dir',
             test_dir], log_file)
        metrics = latest_metrics(test_dir)
    with open(osp.join(run_dir, MINUTES)) as f:  # every attempt
        minutes = sum(float(line) for line in f if line.strip())
    return dict(
        metrics=metrics,
        minutes=minutes,
        curves={
            ts: read_curve(run_dir, f'{ts}/mDice')
            for ts in test_sets
        })


def summarize(results: Dict[str, Dict[int, dict]], teacher: dict,
              key: str) -> dict:
    """Statistics of one measure across seeds.

    Args:
        results: ``{method: {seed: record}}``, records with ``metrics``.
        teacher: The teacher's record.
        key: A metric key, e.g. ``'Kvasir/mDice'``.

    Returns:
        dict: ``mean`` and ``std`` (sample standard deviation, 0 for one
        seed) per method; ``paired`` ``{method: {seed: value - the plain
        student's value of the same seed}}`` for the seeds both have;
        ``gap_closed`` ``{method: (mean(method) - mean(student)) /
        (teacher - mean(student))}`` when the student was run.
    """
    mean, std, paired, gap_closed = {}, {}, {}, {}
    for method, seeds in results.items():
        values = [rec['metrics'][key] for rec in seeds.values()]
        mean[method] = statistics.mean(values)
        std[method] = statistics.stdev(values) if len(values) > 1 else 0.0
    student = results.get('student')
    if student:
        gap = teacher['metrics'][key] - mean['student']
        for method, seeds in results.items():
            if method == 'student':
                continue
            paired[method] = {
                seed: rec['metrics'][key] - student[seed]['metrics'][key]
                for seed, rec in seeds.items() if seed in student
            }
            gap_closed[method] = ((mean[method] - mean['student']) /
                                  gap if gap else float('nan'))
    return dict(mean=mean, std=std, paired=paired, gap_closed=gap_closed)


def _fmt_diffs(diffs: Dict[int, float]) -> str:
    return ', '.join(f'{d:+.4f}' for _, d in sorted(diffs.items()))


def write_report(args, work: str, test_sets: Sequence[str], teacher: dict,
                 results: Dict[str, Dict[int, dict]]) -> str:
    """Write ``results.md`` and ``results.png``; returns the markdown."""
    lines = [
        f'Protocol: from scratch on {args.data_root}; {args.size}x'
        f'{args.size}, batch {args.batch_size}, multi-scale '
        f'{"/".join(map(str, RATES))} one rate per iteration in turn, '
        f'binarised masks, AdamW lr {args.lr:g}. Teacher (PVTv2-B2): '
        f'{args.teacher_iters} iterations, seed 0. Students (PVTv2-B0): '
        f'{args.iters} iterations, seeds {args.seeds}. Evaluated with '
        'PolypMetric at the last iteration, students as exported.', ''
    ]
    for ts in test_sets:
        header = ['model', 'seeds'] + [f'{ts} {m}' for m in MEASURES]
        lines += [
            '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header),
            '| teacher | 1 | ' + ' | '.join(
                f'{teacher["metrics"][f"{ts}/{m}"]:.4f}'
                for m in MEASURES) + ' |'
        ]
        stats = {m: summarize(results, teacher, f'{ts}/{m}')
                 for m in MEASURES}
        for method, seeds in results.items():
            cells = [
                f'{stats[m]["mean"][method]:.4f} ± '
                f'{stats[m]["std"][method]:.4f}' for m in MEASURES
            ]
            lines.append(f'| {method} | {len(seeds)} | ' +
                         ' | '.join(cells) + ' |')
        dice = stats['mDice']
        if dice['paired']:
            lines += [
                '', f'{ts} mean Dice, paired by seed (method - plain '
                f'student; seeds {sorted(results["student"])}), and the '
                'share of the teacher - student gap '
                f'({teacher["metrics"][f"{ts}/mDice"]:.4f} - '
                f'{dice["mean"]["student"]:.4f}) that the method closes:',
                '', '| method | per-seed difference | mean difference | '
                'gap closed |', '|---|---|---|---|'
            ]
            for method, diffs in dice['paired'].items():
                mean_diff = (statistics.mean(diffs.values())
                             if diffs else float('nan'))
                lines.append(
                    f'| {method} | {_fmt_diffs(diffs)} | {mean_diff:+.4f} '
                    f'| {dice["gap_closed"][method]:.1%} |')
        lines.append('')
    minutes = ', '.join(
        f'{method} {statistics.mean(r["minutes"] for r in seeds.values()):.1f}'
        for method, seeds in results.items())
    lines.append(f'Training wall time (minutes per run): teacher '
                 f'{teacher["minutes"]:.1f}, {minutes}.')
    report = '\n'.join(lines) + '\n'
    atomic_write_text(osp.join(work, 'results.md'), report)
    plot(work, 'Kvasir' if 'Kvasir' in test_sets else test_sets[0], teacher,
         results)
    return report


def plot(work: str, ts: str, teacher: dict,
         results: Dict[str, Dict[int, dict]]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    key = f'{ts}/mDice'
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ['teacher'] + list(results)
    for x, name in enumerate(names):
        recs = [teacher] if name == 'teacher' else list(
            results[name].values())
        values = [r['metrics'][key] for r in recs]
        ax1.bar(x, statistics.mean(values), color=f'C{x}', alpha=0.5)
        ax1.plot([x] * len(values), values, 'k.', markersize=8)
    ax1.set_xticks(range(len(names)), names)
    ax1.set_ylabel(f'{ts} mean Dice (bar: mean; dots: seeds)')
    values = [teacher['metrics'][key]] + [
        r['metrics'][key] for s in results.values() for r in s.values()
    ]
    ax1.set_ylim(max(0, min(values) - 0.1), min(1, max(values) + 0.05))
    for x, name in enumerate(names):
        recs = [teacher] if name == 'teacher' else list(
            results[name].values())
        curves = [r['curves'][ts] for r in recs]
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        if steps:
            ax2.plot(steps,
                     [statistics.mean(c[s] for c in curves) for s in steps],
                     'o-',
                     color=f'C{x}',
                     label=name)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel(f'{ts} mean Dice during training (mean over seeds)')
    ax2.legend()
    fig.tight_layout()
    fig.savefig(osp.join(work, 'results.png'), dpi=100)
    plt.close(fig)


def main():
    args = parse_args()
    work = osp.abspath(args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    test_sets = find_test_sets(args.data_root)
    os.makedirs(work, exist_ok=True)
    teacher_dir = osp.join(work, 'teacher')
    teacher = train_and_test('teacher', TEACHER, args, test_sets,
                             teacher_dir, args.teacher_iters,
                             args.teacher_val_interval, 0)
    teacher_ckpt = osp.join(teacher_dir, f'iter_{args.teacher_iters}.pth')
    results: Dict[str, Dict[int, dict]] = {m: {} for m in args.methods}
    # seed by seed, so that an interrupted experiment has whole pairs
    for seed in args.seeds:
        for method in args.methods:
            results[method][seed] = train_and_test(
                method, METHODS[method], args, test_sets,
                osp.join(work, method, f'seed{seed}'), args.iters,
                args.val_interval, seed, teacher_ckpt)
    print(write_report(args, work, test_sets, teacher, results))
    print(f'wrote {osp.join(work, "results.md")} and results.png')


if __name__ == '__main__':
    main()

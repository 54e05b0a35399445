"""CPU-scale KD experiment on real polyp images, with one selection protocol.

    python tools/analysis_tools/polyp_experiment.py DATA_ROOT
        [--work-dir work_dirs/polyp_experiment] [--dry-run]
        [--seeds 0 1 2] [--teacher-seeds 0 1]
        [--size 128] [--batch-size 8] [--lr 5e-4]
        [--teacher-iters 3000] [--iters 800]
        [--teacher-val-interval 600] [--val-interval 400]
        [--teacher-tolerance 0.02] [--accept-teacher-disagreement]
        [--gate-margin 0.05] [--no-teacher-cache] [--budget-minutes 480]
        [--threads 2] [--ledger DIR] [--rerun FOLDER [FOLDER ...]]

Everything trains from scratch (no pretrained weights are reachable
offline) on ``DATA_ROOT`` in the PraNet layout, on the training images
that are not in the validation split (``PolypDataset(split=
'train-minus-val')``, 1,300 of the 1,450; the split is
``mmseg_kdas/datasets/splits/pranet_val.txt``), and is validated on the
split (``'PraNet-val'``, 150 images). The test sets (every set under
``TestDataset/``) are evaluated at the very end, on the chosen models only:
no choice depends on them. The stages, each skipped when done:

1. **Teacher.** Polyp-PVT on PVTv2-B2, the first of ``--teacher-seeds``,
   for ``--teacher-iters``, validated every ``--teacher-val-interval``;
   its checkpoint is the one of its best validation mean Dice. It is the
   teacher (fixed before any run: no choice among seeds).
2. **Gate.** The plain student (Polyp-PVT on PVTv2-B0, seed 0): students
   are distilled only from a teacher at least ``--gate-margin`` ahead of
   it on validation (else the tool stops, naming both numbers).
3. **Teacher caches.** ``tools/cache_teacher.py`` runs the teacher once
   per set of maps the KD methods read (the decode-head outputs for
   KDAS, KDAS-ref, pixel KD and CWD; the backbone stages for AT); every KD
   student then trains from the cache at about a plain run's cost
   (``--no-teacher-cache``: the teacher runs online).
4. **Grid.** Every tunable method, seed 0, every setting of its grid
   (:data:`GRIDS`, at most four, fixed before the runs); the setting with
   the best validation mean Dice at the last iteration wins (the first
   listed on a tie; a run that diverged is never chosen).
5. **Agreement.** The other teacher seeds, trained the same way: every
   run's best validation mean Dice must lie within ``--teacher-tolerance``
   of the others (else the tool stops, naming each), before the final
   stage is spent on the teacher. ``--accept-teacher-disagreement``
   continues from the teacher all the same, and the report says that the
   check failed and by how much.
6. **Final.** The methods of :func:`final_methods` (plain student, KDAS
   at the paper's setting and tuned, KDAS-ref, tuned pixel KD, CWD and AT,
   and the paper's ablation: L_AT alone, L_SGM alone), every seed of
   ``--seeds`` (a grid run is the seed-0 run of its setting), each
   evaluated at its last iteration with ``tools/test.py`` and
   :class:`PolypMetric` on every test set, the students as exported, alone.

All runs share one protocol: ``--size`` x ``--size`` images, multi-scale
0.75 / 1 / 1.25 one rate per iteration in turn, binarised masks, batch
``--batch-size``, AdamW at ``--lr`` with the recipe's weight decay and
clipping, and a cosine decay of the learning rate to 0 over the run (so that
the last iterate is a converged one, not a noisy sample of a constant-rate
run; the shipped full-scale configs keep the reference's constant rate).

The plan, with the estimated minutes of every stage (:data:`COST`), is
printed first (``--dry-run``: only that). Writes to the work dir
``protocol.json`` (a rerun with other protocol settings is refused),
``runs/<method>/<setting>/seed<n>/`` (config, checkpoints, logs,
``record.json``), ``teacher_cache/``, ``selection.json``, ``results.md``
(teachers, gate, grids, then per test set: mean +- std over seeds, per-seed
paired differences to the plain student with their paired t, and the share
of the teacher's lead closed, where the teacher leads), ``results.json``
(the same figures as data; ``tools/analysis_tools/model_cards.py`` writes
the configs' READMEs and metafiles from it) and ``results_<test set>.png``.
An interrupted run resumes from its last checkpoint (the reported training
time adds up every attempt). Subprocesses run this checkout's code
(``PYTHONPATH``), whatever is installed, on pinned CPU code paths and
``--threads`` threads (:func:`reproducible_env`), so that a run trained
again ends with the same weights.

``--ledger DIR`` keeps every record in ``DIR`` too (a folder committed with
the results): a step recorded there is skipped on any machine, so a run
spans machines whose work dirs do not survive. A step whose files a later
step needs is trained again and must reproduce the ledger's weights
(:class:`Experiment`).

``--rerun FOLDER ...`` then trains runs of the finished protocol again from
scratch under ``rerun/`` and compares every figure with their first run
(``rerun.md``, :meth:`Experiment.rerun`).
"""
import argparse
import collections
import copy
import fnmatch
import functools
import hashlib
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import (Callable, Dict, FrozenSet, List, NamedTuple, Optional,
                    Sequence, Tuple)

from mmengine.config import Config, ConfigDict

from mmseg_kdas.datasets.polyp import index_by_stem
from mmseg_kdas.datasets.pranet_split import PRANET_VAL_FILE, read_split_file
from mmseg_kdas.utils.atomic import atomic_write_text
from mmseg_kdas.utils.checkpoint_file import weights_digest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
from summarize_tests import latest_metrics  # noqa: E402

TEACHER = ('configs/polyp_pvt/'
           'polyp-pvt_pvtv2-b2_1xb16-100e_pranet-352x352.py')
_PAIR = 'polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
#: The config each kind of run starts from.
FAMILIES = {
    'student': 'configs/polyp_pvt/'
    'polyp-pvt_pvtv2-b0_1xb16-100e_pranet-352x352.py',
    'KDAS': f'configs/kdas/kdas_{_PAIR}',
    'KDAS-ref': f'configs/kdas/kdas-ref_{_PAIR}',
    'PixelKD': f'configs/kd_baselines/pkd_{_PAIR}',
    'CWD': f'configs/kd_baselines/cwd_{_PAIR}',
    'AT': f'configs/kd_baselines/at_{_PAIR}',
}
MEASURES = ['mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'MAE']
#: What ``tools/test.py`` logs beside the metrics: seconds, not figures of
#: the model (a rerun compares the metrics only)
TIMINGS = frozenset({'time', 'data_time'})
RATES = (0.75, 1.0, 1.25)
VAL_SET = 'PraNet-val'
VAL_KEY = f'{VAL_SET}/mDice'
STARTED = 'train_started.txt'  # present while a training attempt runs
MINUTES = 'train_minutes.txt'  # one line per training attempt
RECORD = 'record.json'
RESULTS = 'results.json'  # every figure of results.md, as data

#: A setting: ``((key under model, value), ...)``, e.g.
#: ``(('alpha', 0.3), ('loss_at.temperature', 2.0))``.
Setting = Tuple[Tuple[str, float], ...]
_SHORT = {
    'alpha': 'a',
    'loss_at.temperature': 'T',
    'loss_at.loss_weight': 'w',
    'at_weight': 'wAT',
    'sgm_weight': 'wSGM',
}
_LABEL = {
    'alpha': 'α',
    'loss_at.temperature': 'T',
    'loss_at.loss_weight': 'weight',
    'at_weight': 'w_AT',
    'sgm_weight': 'w_SGM',
}

#: KDAS at the paper's setting (w_AT = w_SGM = 1 as the config has them).
KDAS_PAPER: Setting = (('alpha', 0.3), ('loss_at.temperature', 2.0))


def _tw(temperature: float, weight: float) -> Setting:
    return (('loss_at.temperature', temperature), ('loss_at.loss_weight',
                                                   weight))


#: The grids, fixed before the runs (README: "the protocol"). Weights are
#: the ``loss_weight`` of the KD term inside ``alpha * (...)``, alpha = 0.3
#: (so 0.3 * weight against 0.7 * L_seg). The first setting of each grid is
#: its published one and wins ties.
GRIDS: Dict[str, List[Setting]] = {
    # alpha and the temperature of L_AT; (0.3, 2) is the paper's
    'KDAS': [
        KDAS_PAPER, (('alpha', 0.3), ('loss_at.temperature', 4.0)),
        (('alpha', 0.5), ('loss_at.temperature', 2.0)),
        (('alpha', 0.5), ('loss_at.temperature', 4.0))
    ],
    # T and weight; T = 2, weight 1 is the shipped config
    'PixelKD': [_tw(2.0, 1.0), _tw(1.0, 1.0), _tw(4.0, 1.0), _tw(2.0, 3.0)],
    # T in {1, 4}: T = 1, weight 5 is mmrazor's Cityscapes config, T = 4,
    # weight 3 the CWD authors' script; and both temperatures at weight 1
    'CWD': [_tw(1.0, 5.0), _tw(4.0, 3.0), _tw(1.0, 1.0), _tw(4.0, 1.0)],
    # the weight; 500 = beta / 2 of the AT paper (the shipped config)
    'AT': [(('loss_at.loss_weight', 500.0), ),
           (('loss_at.loss_weight', 100.0), ),
           (('loss_at.loss_weight', 2500.0), )],
}

#: Minutes model of the plan: seconds per training iteration at 128 px,
#: batch 8, 2 CPU cores (scaled by size^2 x batch), and seconds per
#: evaluated image. Measured on this machine class: plain B0 student
#: 9.8 min / 1,200 iterations (0.49 s), KD with the teacher online
#: 15.0 min / 1,200 (0.75 s), teacher B2 1.25 s. Assumed until measured: a
#: KD run from the teacher cache at 1.1 x a plain one; evaluation (load,
#: inference, PolypMetric at the original size) 0.15 s per image for a B0,
#: 0.25 s for the B2; the cache 0.06 s per image and rate (a B2 forward
#: pass is about a third of its 1.25 s training step of 8 images).
COST = dict(
    student=0.49,
    kd_cached=0.54,
    kd_online=0.75,
    teacher=1.25,
    eval_student=0.15,
    eval_teacher=0.25,
    cache_per_image_rate=0.06)


class ProtocolError(RuntimeError):
    """A check of the protocol failed; the message says which and why."""


class Run(NamedTuple):
    """One training run: a family, a setting of it and a seed."""
    family: str
    setting: Setting = ()
    seed: int = 0

    @property
    def key(self) -> str:
        """Its folder under the work dir, e.g. ``KDAS/a0.3_T2/seed0``."""
        return f'{self.family}/{setting_slug(self.setting)}/seed{self.seed}'


def setting_slug(setting: Setting) -> str:
    """``'a0.3_T2'`` for ``(('alpha', 0.3), ('loss_at.temperature', 2))``.

    Args:
        setting: A setting.

    Returns:
        str: A folder name; ``'default'`` for the empty setting.
    """
    if not setting:
        return 'default'
    return '_'.join(f'{_SHORT.get(k, k)}{v:g}' for k, v in setting)


def setting_label(setting: Setting) -> str:
    """``'α = 0.3, T = 2'``: a setting as the report writes it."""
    if not setting:
        return 'as configured'
    return ', '.join(f'{_LABEL.get(k, k)} = {v:g}' for k, v in setting)


def final_methods(selected: Dict[str, Setting]) -> Dict[str, Run]:
    """The methods of the final stage (seed 0), in report order.

    Args:
        selected: The chosen setting of every family of :data:`GRIDS`.

    Returns:
        dict: ``{method name: Run}``; ``'KDAS (tuned)'`` only if the grid
        chose another setting than the paper's.
    """
    methods = {
        'student': Run('student'),
        'KDAS (paper)': Run('KDAS', KDAS_PAPER),
    }
    if selected['KDAS'] != KDAS_PAPER:
        methods['KDAS (tuned)'] = Run('KDAS', selected['KDAS'])
    methods['KDAS-ref'] = Run('KDAS-ref')
    for family in ('PixelKD', 'CWD', 'AT'):
        methods[f'{family} (tuned)'] = Run(family, selected[family])
    methods['L_AT alone'] = Run('KDAS', KDAS_PAPER + (('sgm_weight', 0.0), ))
    methods['L_SGM alone'] = Run('KDAS', KDAS_PAPER + (('at_weight', 0.0), ))
    return methods


# Selection rules (pure functions of the records)


def best_checkpoint(curve: Dict[int, float]) -> Tuple[int, float]:
    """The iteration of the best validation value (the earliest on a tie).

    Args:
        curve: ``{iteration: validation mean Dice}``.

    Returns:
        tuple: ``(iteration, value)``.

    Raises:
        ProtocolError: If the curve has no finite value.
    """
    finite = {i: v for i, v in curve.items() if math.isfinite(v)}
    if not finite:
        raise ProtocolError(f'no finite validation value in {curve}')
    best = max(finite.values())
    return min(i for i, v in finite.items() if v == best), best


def choose_teacher(curves: Dict[int, Dict[int, float]],
                   tolerance: float,
                   accept_disagreement: bool = False) -> dict:
    """The teacher is the first run; check that the runs agree.

    The first run is fixed before any of them trains (not the best of
    them: no choice among seeds), so that students can be distilled from
    it while the other runs are still to come.

    Args:
        curves: ``{seed: {iteration: validation mean Dice}}``, the teacher
            run first.
        tolerance: The largest allowed spread of the runs' best values.
        accept_disagreement: Continue with the first run when the spread
            is larger (``--accept-teacher-disagreement``): a deviation
            from the protocol, which ``agreed`` records and the report
            states.

    Returns:
        dict: ``seed``, ``iter`` and ``value`` of the teacher's best
        checkpoint (:func:`best_checkpoint`), ``runs`` ``{seed: (iter,
        value)}``, ``spread`` (max - min of the runs' best values) and
        ``agreed`` (``spread <= tolerance``).

    Raises:
        ProtocolError: If the spread is larger than ``tolerance`` and the
            disagreement is not accepted; the message names every run's
            value.
    """
    first = next(iter(curves))
    runs = {seed: best_checkpoint(c) for seed, c in sorted(curves.items())}
    values = [v for _, v in runs.values()]
    spread = max(values) - min(values)
    described = '; '.join(
        f'seed {seed}: {v:.4f} at iteration {i}'
        for seed, (i, v) in runs.items())
    if spread > tolerance and not accept_disagreement:
        raise ProtocolError(
            f'the teacher runs disagree: best validation mean Dice '
            f'{described}; {spread:.4f} apart, more than '
            f'--teacher-tolerance {tolerance:g}. The endpoint is not stable '
            'enough to distil from: lengthen or change the teacher '
            'schedule and rerun, or continue from this teacher with '
            '--accept-teacher-disagreement (the report then says so).')
    return dict(
        seed=first,
        iter=runs[first][0],
        value=runs[first][1],
        runs=runs,
        spread=spread,
        agreed=spread <= tolerance)


def check_gate(teacher: float, student: float, margin: float) -> float:
    """Refuse to distil from a teacher not ``margin`` ahead of the student.

    Args:
        teacher: The teacher's validation mean Dice.
        student: The plain student's validation mean Dice (seed 0).
        margin: The lead required.

    Returns:
        float: The lead, ``teacher - student``.

    Raises:
        ProtocolError: If the lead is below ``margin``, naming both values.
    """
    lead = teacher - student
    if not lead >= margin:
        raise ProtocolError(
            f'the teacher is not {margin:g} ahead of the plain student on '
            f'validation: teacher {teacher:.4f}, plain student (seed 0) '
            f'{student:.4f}, lead {lead:+.4f}. No student is distilled from '
            'it: train a stronger teacher (more --teacher-iters) and rerun.')
    return lead


def select_setting(grid: Sequence[Setting],
                   scores: Dict[Setting, float]) -> Setting:
    """The setting of a grid with the best validation score.

    Args:
        grid: The settings, in order.
        scores: Validation mean Dice at the last iteration per setting;
            NaN for a run that diverged (never chosen).

    Returns:
        The setting with the highest score, the earliest in ``grid`` on a
        tie.

    Raises:
        KeyError: If a setting of the grid has no score (naming it).
        ProtocolError: If no setting has a finite score.
    """
    for setting in grid:
        if setting not in scores:
            raise KeyError(f'no validation score for {setting_label(setting)}')
    finite = [s for s in grid if math.isfinite(scores[s])]
    if not finite:
        raise ProtocolError('every setting of the grid diverged: '
                            f'{[setting_label(s) for s in grid]}')
    best = max(scores[s] for s in finite)
    return next(s for s in finite if scores[s] == best)


def gap_share(teacher: float, student: float, method: float,
              min_lead: float = 0.01) -> Optional[float]:
    """The share of the teacher's lead over the plain student a method closes.

    Args:
        teacher: The teacher's value.
        student: The plain student's mean.
        method: The method's mean.
        min_lead: The smallest lead for which a share is given: below it
            (or when the teacher is behind) the share is meaningless.

    Returns:
        ``(method - student) / (teacher - student)``, or None when the
        teacher is not at least ``min_lead`` ahead.
    """
    lead = teacher - student
    if not lead >= min_lead:
        return None
    return (method - student) / lead


# The protocol's configs


def _set(cfg: ConfigDict, dotted: str, value) -> None:
    *parents, last = dotted.split('.')
    node = cfg
    for i, part in enumerate(parents):
        if part not in node:
            raise KeyError(f'{".".join(parents[:i + 1])} not in the config')
        node = node[part]
    node[last] = value


_LOADED: Dict[str, Config] = {}


def _load(base: str) -> Config:
    """A copy of a config file of the repository (each parsed once).

    Its text is written without yapf's formatting, which takes seconds per
    config.
    """
    if base not in _LOADED:
        # (Config.fromfile drops format_python_code for a plain .py file)
        _LOADED[base] = Config(
            Config.fromfile(osp.join(ROOT, base)).to_dict(),
            format_python_code=False)
    return copy.deepcopy(_LOADED[base])


def protocol_config(base: str,
                    args: argparse.Namespace,
                    test_sets: Sequence[str],
                    iters: int,
                    val_interval: int,
                    seed: int,
                    teacher_ckpt: Optional[str] = None,
                    setting: Setting = (),
                    teacher_cache: Optional[str] = None,
                    save_best: bool = False) -> Config:
    """``base`` under the reduced protocol of this experiment.

    Everything that decides what a run does is set here, not inherited, so
    that every method trains under one protocol whatever the shipped
    configs default to.

    Args:
        base: A config file, relative to the repository.
        args: The tool's arguments (``data_root``, ``size``,
            ``batch_size``, ``lr``, ``num_workers``, ``split_file``).
        test_sets: The test sets of ``test_dataloader``.
        iters: Training iterations.
        val_interval: Validation and checkpoint interval.
        seed: The run's seed.
        teacher_ckpt: The teacher file of a distiller.
        setting: Values under ``model`` (:data:`Setting`).
        teacher_cache: The teacher cache folder of a distiller, or None.
        save_best: Keep the checkpoint of the best validation mean Dice.

    Returns:
        Config: The run's config.
    """
    cfg = _load(base)
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
    train_images = dict(
        img_path='TrainDataset/images', seg_map_path='TrainDataset/masks')
    cfg.train_dataloader = ConfigDict(
        batch_size=args.batch_size,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=train_images,
            split='train-minus-val',
            split_file=args.split_file,
            pipeline=train_pipeline),
        **workers)
    loader = dict(
        batch_size=1,
        sampler=dict(type='DefaultSampler', shuffle=False),
        **workers)
    cfg.val_dataloader = ConfigDict(
        dataset=dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=train_images,
            split='val',
            split_file=args.split_file,
            test_set=VAL_SET,
            test_mode=True,
            pipeline=test_pipeline),
        **loader)
    datasets = [
        dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=dict(
                img_path=f'TestDataset/{name}/images',
                seg_map_path=f'TestDataset/{name}/masks'),
            test_set=name,
            test_mode=True,
            pipeline=test_pipeline) for name in test_sets
    ]
    cfg.test_dataloader = ConfigDict(
        dataset=datasets[0] if len(datasets) == 1 else dict(
            type='ConcatDataset', datasets=datasets),
        **copy.deepcopy(loader))
    cfg.val_evaluator = cfg.test_evaluator = ConfigDict(type='PolypMetric')
    cfg.train_cfg = ConfigDict(
        type='MultiScaleIterBasedTrainLoop',
        max_iters=iters,
        val_interval=val_interval)
    # a converging schedule: cosine decay to 0 over the run, by iteration
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            T_max=iters,
            eta_min=0.0,
            by_epoch=False,
            begin=0,
            end=iters)
    ]
    cfg.default_hooks.checkpoint = ConfigDict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=1)
    if save_best:
        cfg.default_hooks.checkpoint.update(save_best=VAL_KEY, rule='greater')
    cfg.default_hooks.logger = ConfigDict(
        type='LoggerHook', interval=50, log_metric_by_epoch=False)
    cfg.log_processor = ConfigDict(by_epoch=False)
    cfg.optim_wrapper.optimizer.lr = args.lr
    cfg.randomness = ConfigDict(seed=seed)
    # each iteration draws from (seed, iteration): a resumed run trains to
    # the same bits as an uninterrupted one
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') != 'IterationSeedHook'
    ] + [dict(type='IterationSeedHook')]

    model = cfg.model
    segmentors = [model]
    if model.type == 'KDASDistiller':
        segmentors = [model.student, model.teacher]
        model.teacher_ckpt = teacher_ckpt
        if teacher_cache is not None:
            model.teacher_cache = teacher_cache
        if model.get('data_preprocessor') is None:
            model.data_preprocessor = copy.deepcopy(
                model.student.data_preprocessor)
    elif setting or teacher_cache:
        raise ValueError(f'{base} is not a distiller: it takes no setting '
                         'and no teacher cache')
    for key, value in setting:
        _set(model, key, value)
    model.data_preprocessor.batch_augments = [
        dict(type='BatchMultiScaleResize', rates=RATES, mode='cycle')
    ]
    for segmentor in segmentors:
        segmentor.backbone.init_cfg = None  # from scratch
    return cfg


def teacher_sources(model: ConfigDict) -> FrozenSet[str]:
    """The teacher maps a distiller config reads (``'head:0'``, ...).

    Args:
        model: A ``model`` config; not a distiller: no maps.

    Returns:
        frozenset: ``'head:<i>'`` for a decode-head output, the module name
        (``'backbone:3'``) otherwise.
    """
    if model.get('type') != 'KDASDistiller':
        return frozenset()
    sources = set()
    for pairs in ('at_pairs', 'sgm_pairs'):
        for pair in model.get(pairs) or []:
            t = pair['teacher']
            sources.add(f'head:{t}' if isinstance(t, int) else str(t))
    return frozenset(sources)


def plan_caches(
        needs: Dict[str, FrozenSet[str]]) -> Dict[str, FrozenSet[str]]:
    """One cache per set of teacher maps no other set contains.

    Args:
        needs: ``{name: teacher maps it reads}`` (names of families or
            runs).

    Returns:
        dict: ``{name: the maps of the cache it trains from}`` (a superset
        of its own), for the names that read any.
    """
    sets = sorted({s for s in needs.values() if s},
                  key=lambda s: (-len(s), sorted(s)))
    caches: List[FrozenSet[str]] = []
    for s in sets:
        if not any(s <= c for c in caches):
            caches.append(s)
    return {
        key: next(c for c in caches if s <= c)
        for key, s in needs.items() if s
    }


def cache_name(sources: FrozenSet[str]) -> str:
    """A folder name for a cache: ``'head0-head1'``."""
    return '-'.join(s.replace(':', '') for s in sorted(sources))


def cache_command(cfg_file: str, out: str, teacher_ckpt: str) -> List[str]:
    """The command that builds a teacher cache from a KD config."""
    return [
        sys.executable, 'tools/cache_teacher.py', cfg_file, '--out', out,
        '--cfg-options', f'model.teacher_ckpt={teacher_ckpt}'
    ]


# The plan and its cost


class Step(NamedTuple):
    """A step of the plan: its stage, its folder under the work dir (where
    its record or cache is) and its minutes."""
    stage: str
    name: str
    minutes: float


def _scale(args: argparse.Namespace) -> float:
    return (args.size / 128)**2 * args.batch_size / 8


def count_images(data_root: str, test_sets: Sequence[str]) -> int:
    """The images of the test sets (0 for a set that is not there)."""
    total = 0
    for name in test_sets:
        folder = osp.join(data_root, 'TestDataset', name, 'images')
        if osp.isdir(folder):
            total += len(index_by_stem(folder))
    return total


def plan_steps(args: argparse.Namespace, num_val: int,
               num_test: int,
               selected: Optional[Dict[str, Setting]] = None) -> List[Step]:
    """The protocol's steps with their estimated minutes (:data:`COST`).

    Unless the grid's choice is given, the final stage is counted in its
    largest form (a tuned KDAS setting other than the paper's).

    Args:
        args: The tool's arguments.
        num_val: Images of the validation split.
        num_test: Images of all test sets together.
        selected: The grid's choice (:func:`recorded_selection`), if known.

    Returns:
        list[Step]: In the order they run.
    """
    scale = _scale(args)
    kd = COST['kd_online' if args.no_teacher_cache else 'kd_cached']

    def train(s_per_iter: float, iters: int, interval: int,
              eval_cost: float) -> float:
        evals = math.ceil(iters / interval)
        return (iters * s_per_iter * scale +
                evals * num_val * eval_cost) / 60

    steps = []
    teacher = train(COST['teacher'], args.teacher_iters,
                    args.teacher_val_interval, COST['eval_teacher'])
    first, *others = args.teacher_seeds
    steps.append(Step('1 teacher', f'teacher/seed{first}', teacher))
    student = train(COST['student'], args.iters, args.val_interval,
                    COST['eval_student'])
    distilled = train(kd, args.iters, args.val_interval,
                      COST['eval_student'])
    steps.append(Step('2 gate', f'runs/{Run("student").key}', student))
    runs = grid_runs()
    if not args.no_teacher_cache:
        num_train = 1450 - num_val
        minutes = (num_train * len(RATES) * COST['cache_per_image_rate'] *
                   scale / 60)
        needs = {
            family: _family_sources(family)
            for family in FAMILIES if family != 'student'
        }
        for group in sorted(set(plan_caches(needs).values()), key=sorted):
            steps.append(Step('3 caches', f'teacher_cache/{cache_name(group)}',
                              minutes))
    for run in runs:
        steps.append(Step('4 grid', f'runs/{run.key}', distilled))
    for seed in others:
        steps.append(Step('5 agreement', f'teacher/seed{seed}', teacher))
    worst = selected or {family: grid[-1] for family, grid in GRIDS.items()}
    done = {r.key for r in runs} | {Run('student').key}
    finals = []
    for seed in args.seeds:
        for run in final_methods(worst).values():
            run = run._replace(seed=seed)
            finals.append(run)
            if run.key not in done:
                done.add(run.key)
                steps.append(Step(
                    '6 final', f'runs/{run.key}',
                    student if run.family == 'student' else distilled))
    test_minutes = num_test * COST['eval_student'] / 60
    for run in finals:
        steps.append(Step('7 tests', f'runs/{run.key}', test_minutes))
    steps.append(Step('7 tests', f'teacher/seed{first}',
                      num_test * COST['eval_teacher'] / 60))
    return steps


def _family_sources(family: str) -> FrozenSet[str]:
    """The teacher maps of a family, from its shipped config."""
    return teacher_sources(_load(FAMILIES[family]).model)


def grid_runs() -> List[Run]:
    """Every run of the grid stage (seed 0)."""
    return [
        Run(family, setting) for family, grid in GRIDS.items()
        for setting in grid
    ]


def _recorded(roots: Sequence[str], folder: str) -> Optional[dict]:
    """The record of ``folder`` under the first of ``roots`` that has it."""
    for root in roots:
        found = _read_json(osp.join(root, folder, RECORD))
        if found is not None:
            return found
    return None


def steps_done(steps: Sequence[Step], work: str,
               ledger: Optional[str] = None) -> List[bool]:
    """Which steps of the plan are recorded in ``work`` or ``ledger``.

    A cache counts as done only in ``work`` (a ledger keeps records, not
    files); a test step when its run's record has ``test``.
    """
    roots = [work] + ([ledger] if ledger else [])
    done = []
    for step in steps:
        if step.stage == '3 caches':
            done.append(osp.isdir(osp.join(work, step.name)))
            continue
        found = _recorded(roots, step.name)
        done.append(found is not None and
                    (step.stage != '7 tests' or 'test' in found))
    return done


def recorded_selection(
        work: str,
        ledger: Optional[str] = None) -> Optional[Dict[str, Setting]]:
    """The grid's choice from the records of ``work`` or ``ledger``, or
    None while a grid run is not recorded."""
    roots = [work] + ([ledger] if ledger else [])
    scores: Scores = {}
    for run in grid_runs():
        found = _recorded(roots, f'runs/{run.key}')
        if found is None:
            return None
        scores.setdefault(run.family, {})[run.setting] = found['val_last']
    return {f: select_setting(g, scores[f]) for f, g in GRIDS.items()}


def _reads_teacher(step: Step) -> bool:
    """Whether a step reads the teacher's checkpoint: a cache, a KD
    student's training, the teacher's test."""
    if step.stage == '3 caches':
        return True
    if step.name.startswith('teacher/'):
        return step.stage == '7 tests'
    return step.stage != '7 tests' and not step.name.startswith(
        'runs/student/')


def steps_left(steps: Sequence[Step], done: Sequence[bool],
               work: str) -> Tuple[List[Step], List[Step]]:
    """What a run from ``work`` does: ``(left, again)``.

    ``left``: the steps not recorded (a cache only if a KD student is
    left to train). ``again``: the recorded runs trained again here for
    their files, as :class:`Experiment` does: a run left to test whose
    record is not in ``work``, and the teacher when a step left reads its
    checkpoint and its record is not in ``work``.
    """
    def here(name: str) -> bool:
        return osp.isfile(osp.join(work, name, RECORD))

    training = {
        s.name: s
        for s in steps if s.stage not in ('3 caches', '7 tests')
    }
    recorded = {
        s.name
        for s, d in zip(steps, done)
        if d and s.stage not in ('3 caches', '7 tests')
    }
    left = [s for s, d in zip(steps, done) if not d]
    again: List[Step] = []
    for step in left:
        if (step.stage == '7 tests' and step.name in recorded and
                not here(step.name) and training[step.name] not in again):
            again.append(training[step.name])
    teacher = next(s for s in steps if s.stage == '1 teacher')
    if (teacher.name in recorded and not here(teacher.name)
            and teacher not in again
            and any(_reads_teacher(s) for s in left + again
                    if s.stage != '3 caches')):
        again.insert(0, teacher)
    again.sort(key=list(steps).index)
    kd = any(
        _reads_teacher(s) for s in left + again
        if s.stage not in ('3 caches', '7 tests', '1 teacher'))
    left = [s for s in left if s.stage != '3 caches' or kd]
    return left, again


def format_plan(steps: Sequence[Step], budget: float,
                done: Optional[Sequence[bool]] = None,
                work: Optional[str] = None) -> str:
    """The plan as text: minutes per stage, the total and the budget; with
    ``done`` (:func:`steps_done`) and ``work``, what is left to run there
    (:func:`steps_left`)."""
    stages: Dict[str, List[Step]] = {}
    for step in steps:
        stages.setdefault(step.stage, []).append(step)
    lines = ['Plan (estimated minutes on 2 CPU cores; tools/analysis_tools/'
             'polyp_experiment.py COST):']
    for stage, items in stages.items():
        total = sum(s.minutes for s in items)
        lines.append(f'  {stage}: {len(items)} step(s), {total:.0f} min')
    total = sum(s.minutes for s in steps)
    lines.append(f'  total: {total:.0f} min ({total / 60:.1f} h) of a '
                 f'{budget:.0f}-min budget')
    if total > budget:
        lines.append(f'  WARNING: over the budget by {total - budget:.0f} '
                     'min; reduce --iters / --teacher-iters')
    if done is not None and any(done):
        left, again = steps_left(steps, done, work or '')
        minutes = sum(s.minutes for s in left)
        lines.append(f'  recorded: {sum(map(bool, done))} of {len(steps)}'
                     f' steps; left: {len(left)} step(s), {minutes:.0f} min')
        if again:
            more = sum(s.minutes for s in again)
            names = ', '.join(s.name for s in again)
            lines.append(
                f'  trained again here for their files (recorded, not in '
                f'this work dir): {len(again)} run(s), {more:.0f} min '
                f'({names}); in all {minutes + more:.0f} min')
    return '\n'.join(lines)


# Running the steps


#: The environment of every command: the same CPU code paths and thread
#: count on every x86-64 machine with AVX2 (oneDNN, ATen's kernels and
#: MKL's conditional numerical reproducibility), so that a run trained
#: again on another machine ends with the same weights. Measured on one
#: machine: two teacher runs of 16 iterations end with identical weights
#: with and without it, at the same speed (32.6 s and 32.5 s).
def reproducible_env(threads: int) -> Dict[str, str]:
    """The variables :func:`run` sets (see above)."""
    return {
        'MKL_CBWR': 'AVX2,STRICT',
        'ATEN_CPU_CAPABILITY': 'avx2',
        'ONEDNN_MAX_CPU_ISA': 'AVX2',
        'DNNL_MAX_CPU_ISA': 'AVX2',
        'OMP_NUM_THREADS': str(threads),
        'MKL_NUM_THREADS': str(threads),
    }


def run(cmd: List[str], log_file: str, threads: int = 2) -> None:
    """Run ``cmd`` in this checkout with its code first on the path, in
    :func:`reproducible_env`.

    Raises:
        RuntimeError: If it fails, naming the command and the log.
    """
    print('$ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ, **reproducible_env(threads))
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


def _diverged(log_file: str) -> Optional[str]:
    """The non-finite-loss message of a failed training log, if any."""
    if not osp.isfile(log_file):
        return None
    with open(log_file, errors='replace') as f:
        lines = f.read()[-20000:].splitlines()
    hits = [line for line in lines if 'non-finite loss' in line]
    return hits[-1].strip() if hits else None


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + '\n')


def protocol_settings(args: argparse.Namespace) -> dict:
    """The settings ``protocol.json`` holds (a work dir of others is
    refused): sizes, schedule, iterations, teacher seeds, the split's
    SHA-1 and the grids."""
    with open(args.split_file, 'rb') as f:
        split = hashlib.sha1(f.read()).hexdigest()
    return dict(
        size=args.size,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule='cosine to 0 by iteration',
        teacher_iters=args.teacher_iters,
        teacher_val_interval=args.teacher_val_interval,
        teacher_seeds=list(args.teacher_seeds),
        iters=args.iters,
        val_interval=args.val_interval,
        split_sha1=split,
        grids={f: [setting_label(s) for s in g]
               for f, g in GRIDS.items()},
        cpu_env=reproducible_env(args.threads),
        randomness='IterationSeedHook')


class Experiment:
    """The protocol's steps on one work dir; every step is skipped if done.

    With a ledger (``--ledger``), every record is also written there, and
    a record found there counts as done: a run on another machine (a
    fresh work dir) skips it. A run whose files a later step needs (the
    teacher's checkpoint for a cache, a KD run or its test; a student's for
    its test) is trained again here, and must end with the ledger's weights
    (:func:`weights_digest`), else the tool stops: its dependants would mix
    two teachers. Each such reproduction is added to the record.

    Args:
        args: The tool's arguments.
        test_sets: The test sets under ``DATA_ROOT/TestDataset``.
        runner: Runs one command (:func:`run`; tests pass a fake).
    """

    def __init__(self, args: argparse.Namespace, test_sets: Sequence[str],
                 runner: Callable[[List[str], str], None] = run) -> None:
        self.args = args
        self.work = osp.abspath(args.work_dir)
        self.ledger = osp.abspath(args.ledger) if getattr(
            args, 'ledger', None) else None
        self.test_sets = list(test_sets)
        self.runner = runner
        self._teacher: Optional[dict] = None
        self._teacher_ckpt: Optional[str] = None
        self._caches: Optional[Dict[str, str]] = None

    def run_dir(self, run: Run, teacher: bool = False) -> str:
        if teacher:
            return osp.join(self.work, 'teacher', f'seed{run.seed}')
        return osp.join(self.work, 'runs', run.key)

    def config(self, run: Run, teacher_ckpt: Optional[str] = None,
               teacher_cache: Optional[str] = None) -> Config:
        """The protocol config of a student run."""
        return protocol_config(FAMILIES[run.family], self.args,
                               self.test_sets, self.args.iters,
                               self.args.val_interval, run.seed,
                               teacher_ckpt, run.setting, teacher_cache)

    # records: the work dir's, else the ledger's

    def _ledger_file(self, run_dir: str) -> Optional[str]:
        if self.ledger is None:
            return None
        return osp.join(self.ledger, osp.relpath(run_dir, self.work), RECORD)

    def record(self, run_dir: str) -> Optional[dict]:
        """The record of a run: this work dir's, else the ledger's.

        A record of this work dir that the ledger lacks (or holds in an
        older form) is copied there, with the digest of its weights where
        it has none and its checkpoint is here; what the ledger's copy
        holds and this one lacks (test metrics, reproductions that another
        machine added) is kept.
        """
        local = _read_json(osp.join(run_dir, RECORD))
        ledger_file = self._ledger_file(run_dir)
        kept = None if ledger_file is None else _read_json(ledger_file)
        if local is None:
            return kept
        if 'weights' not in local and not local.get('diverged'):
            ckpt = osp.join(run_dir, f'iter_{local["iters"]}.pth')
            if osp.isfile(ckpt):
                local = dict(local, weights=weights_digest(ckpt))
                _write_json(osp.join(run_dir, RECORD), local)
        if kept is not None and kept.get('weights') != local.get('weights'):
            raise ProtocolError(
                f'{osp.join(run_dir, RECORD)} and {ledger_file} are records '
                'of different runs (weights '
                f'{local.get("weights")} and {kept.get("weights")}): use '
                'another --work-dir or another --ledger')
        if kept is not None:  # what another machine added stays
            merged = dict(kept, **local)
            if len(kept.get('reproductions', [])) > len(
                    local.get('reproductions', [])):
                merged['reproductions'] = kept['reproductions']
            if merged != local:
                local = merged
                _write_json(osp.join(run_dir, RECORD), local)
        if ledger_file is not None and kept != local:
            _write_json(ledger_file, local)
        return local

    def trained_here(self, run_dir: str) -> bool:
        """Whether the run's files here are the record's: this work dir
        has the record (a checkpoint without it is of a run that failed
        to reproduce the ledger's)."""
        return osp.isfile(osp.join(run_dir, RECORD))

    def save_record(self, run_dir: str, record: dict) -> None:
        """Write a record to the work dir and the ledger."""
        _write_json(osp.join(run_dir, RECORD), record)
        ledger_file = self._ledger_file(run_dir)
        if ledger_file is not None:
            _write_json(ledger_file, record)

    def train(self, name: str, cfg: Config, run_dir: str,
              allow_divergence: bool = False,
              to_ledger: bool = True) -> dict:
        """Train one config (unless its record is here); returns its record.

        The record (``record.json``) holds the validation curve, its last
        value, the training minutes of every attempt, the digest of the
        last checkpoint's weights and the machine. A run stopped by a
        non-finite loss is recorded as ``diverged`` (validation NaN) when
        ``allow_divergence``; any other failure stops the tool. The record
        goes to the ledger too unless not ``to_ledger``.
        """
        record = _read_json(osp.join(run_dir, RECORD))
        if record is not None:
            return record
        os.makedirs(run_dir, exist_ok=True)
        account_interrupted_attempt(run_dir)  # before this call writes
        log_file = osp.join(run_dir, 'commands.log')
        cfg_file = osp.join(run_dir, f'{name}.py')
        atomic_write_text(cfg_file, cfg.pretty_text)
        iters = cfg.train_cfg.max_iters
        diverged = None
        # the last checkpoint alone is not a finished run: an attempt
        # killed right after it lacks the student export
        outputs = [osp.join(run_dir, f'iter_{iters}.pth')]
        if cfg.model.type == 'KDASDistiller':
            outputs.append(osp.join(run_dir, f'iter_{iters}_student.pth'))
        if not all(osp.isfile(path) for path in outputs):
            started_file = osp.join(run_dir, STARTED)
            start = time.time()
            atomic_write_text(started_file, f'{start}\n')
            try:
                self.runner([
                    sys.executable, 'tools/train.py', cfg_file,
                    '--work-dir', run_dir, '--resume'
                ], log_file)
            except RuntimeError:
                diverged = _diverged(log_file)
                if not (allow_divergence and diverged):
                    raise
            finally:
                _add_minutes(run_dir, start, time.time())
                os.remove(started_file)
        with open(osp.join(run_dir, MINUTES)) as f:  # every attempt
            attempts = [float(line) for line in f if line.strip()]
        curve = read_curve(run_dir, VAL_KEY)
        record = dict(
            config=osp.relpath(cfg_file, self.work),
            iters=iters,
            val={str(i): v for i, v in sorted(curve.items())},
            val_last=float('nan') if diverged else curve.get(
                iters, float('nan')),
            diverged=diverged,
            minutes=sum(attempts),
            attempts=len(attempts),
            distilled=cfg.model.type == 'KDASDistiller',
            machine=machine_description())
        if not diverged:
            if iters not in curve:
                raise RuntimeError(f'{run_dir}: no {VAL_KEY} at iteration '
                                   f'{iters} in its logs')
            record['weights'] = weights_digest(outputs[0])
        if to_ledger:
            self.save_record(run_dir, record)
        else:
            _write_json(osp.join(run_dir, RECORD), record)
        return record

    def reproduce(self, name: str, cfg: Config, run_dir: str,
                  expected: dict) -> dict:
        """Train a run of the ledger again here, for its files.

        Returns:
            dict: The ledger's record with this reproduction added to its
            ``reproductions`` (minutes, machine).

        Raises:
            ProtocolError: If it ends with other weights than the ledger's
                (the message names the run, both digests, both validation
                values and both machines); the ledger is left as it was.
        """
        os.makedirs(run_dir, exist_ok=True)
        local = osp.join(run_dir, RECORD)
        if osp.isfile(local):  # its checkpoint is gone: train it again
            os.replace(local, local + '.old')
        new = self.train(name, cfg, run_dir, to_ledger=False)
        if new.get('weights') != expected.get('weights'):
            os.replace(local, local + '.unreproduced')
            raise ProtocolError(
                f'{run_dir} was trained again on this machine for its '
                'files and ended with other weights than the ledger\'s '
                f'record ({new.get("weights")} instead of '
                f'{expected.get("weights")}; validation mean Dice '
                f'{new["val_last"]:.4f} here, {expected["val_last"]:.4f} '
                f'there; here: {new["machine"]}, there: '
                f'{expected.get("machine", "not recorded")}; '
                f'{_attempts(expected)}). Training is '
                'not bit-reproducible between the two machines, so the '
                'ledger\'s runs that depend on this one cannot be combined '
                'with new ones: continue on the ledger\'s machine, or start '
                'a new --ledger.')
        record = dict(
            expected,
            reproductions=list(expected.get('reproductions', [])) +
            [dict(minutes=new['minutes'], machine=new['machine'])])
        self.save_record(run_dir, record)
        return record

    def test(self, run_dir: str, record: dict, cfg_file: str,
             ckpt: str) -> dict:
        """Evaluate a trained model on the test sets (unless done)."""
        if 'test' not in record:
            test_dir = osp.join(run_dir, 'test')
            try:
                metrics = latest_metrics(test_dir)
            except FileNotFoundError:
                self.runner([
                    sys.executable, 'tools/test.py', cfg_file, ckpt,
                    '--work-dir', test_dir
                ], osp.join(run_dir, 'commands.log'))
                metrics = latest_metrics(test_dir)
            record = dict(record, test=metrics)
            self.save_record(run_dir, record)
        return record

    def test_student(self, run: Run) -> dict:
        run_dir = self.run_dir(run)
        record = self.record(run_dir)
        if 'test' in record:
            return record
        iters = record['iters']
        if record['distilled']:  # evaluate what ships
            cfg_file = osp.join(run_dir, 'student_config.py')
            ckpt = osp.join(run_dir, f'iter_{iters}_student.pth')
        else:
            cfg_file = osp.join(run_dir, f'{run.family}.py')
            ckpt = osp.join(run_dir, f'iter_{iters}.pth')
        if not (osp.isfile(ckpt) and self.trained_here(run_dir)):
            # a record of the ledger: train it here
            record = self.reproduce(run.family, self.student_config(run),
                                    run_dir, record)
        return self.test(run_dir, record, cfg_file, ckpt)

    def check_protocol(self) -> None:
        """Write ``protocol.json``, or refuse a work dir (or ledger) of
        another protocol."""
        protocol = protocol_settings(self.args)
        folders = [self.work] + ([self.ledger] if self.ledger else [])
        for folder in folders:
            path = osp.join(folder, 'protocol.json')
            old = _read_json(path)
            if old is not None and old != protocol:
                keys = sorted(k for k in set(old) | set(protocol)
                              if old.get(k) != protocol.get(k))
                raise ProtocolError(
                    f'{path} was written by another protocol '
                    f'({", ".join(keys)} differ): use another --work-dir '
                    '(--ledger), or the same settings')
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
            _write_json(osp.join(folder, 'protocol.json'), protocol)

    def teacher_config(self, seed: int) -> Config:
        args = self.args
        return protocol_config(TEACHER, args, self.test_sets,
                               args.teacher_iters, args.teacher_val_interval,
                               seed, save_best=True)

    def teachers(self, seeds: Sequence[int]) -> dict:
        """Train the teacher runs of ``seeds`` (unless done); returns the
        choice (:func:`choose_teacher`: the first seed, checked against
        the others).

        ``ckpt`` is the chosen checkpoint's path in this work dir; it is
        there after :meth:`teacher_ckpt`.
        """
        args = self.args
        curves, records = {}, {}
        for seed in seeds:
            run_dir = self.run_dir(Run('teacher', (), seed), teacher=True)
            records[seed] = self.record(run_dir)
            if records[seed] is None:
                records[seed] = self.train('teacher',
                                           self.teacher_config(seed),
                                           run_dir)
            curves[seed] = {int(i): v for i, v in records[seed]['val']
                            .items()}
        choice = choose_teacher(
            curves, args.teacher_tolerance,
            getattr(args, 'accept_teacher_disagreement', False))
        run_dir = self.run_dir(Run('teacher', (), choice['seed']),
                               teacher=True)
        choice['ckpt'] = best_checkpoint_file(run_dir, choice['iter'])
        choice['last'] = {
            seed: r['val_last'] for seed, r in records.items()
        }
        choice['minutes'] = {seed: r['minutes'] for seed, r in records.items()}
        self._teacher = choice
        return choice

    def teacher_ckpt(self) -> str:
        """The chosen teacher's checkpoint, trained again if only the
        ledger holds its run (:meth:`reproduce`)."""
        if self._teacher_ckpt is None:
            seed = self._teacher['seed']
            run_dir = self.run_dir(Run('teacher', (), seed), teacher=True)
            iters = self.args.teacher_iters
            try:
                ckpt = teacher_checkpoint(run_dir, self._teacher['iter'],
                                          iters)
                if not self.trained_here(run_dir):
                    raise FileNotFoundError(run_dir)
            except FileNotFoundError:
                self.reproduce('teacher', self.teacher_config(seed),
                               run_dir, self.record(run_dir))
                ckpt = teacher_checkpoint(run_dir, self._teacher['iter'],
                                          iters)
            self._teacher_ckpt = ckpt
        return self._teacher_ckpt

    def caches(self) -> Dict[str, str]:
        """Stage 3: build the teacher caches; ``{family: cache folder}``.

        Built when a KD run first needs one. The maps a KD family reads do
        not depend on its setting (weights and temperatures), so one cache
        serves every setting and seed of a family, and a family whose maps
        another family's cache holds too trains from that one
        (:func:`plan_caches`).
        """
        if self.args.no_teacher_cache:
            return {}
        if self._caches is not None:
            return self._caches
        needs = {f: _family_sources(f) for f in FAMILIES if f != 'student'}
        plan = plan_caches(needs)
        folders = {}
        cache_dir = osp.join(self.work, 'teacher_cache')
        for family, sources in plan.items():
            out = osp.join(cache_dir, cache_name(sources))
            folders[family] = out
            if osp.isdir(out):  # it appears only when complete
                continue
            teacher_ckpt = self.teacher_ckpt()
            builder = next(f for f in plan if needs[f] == sources)
            os.makedirs(cache_dir, exist_ok=True)
            cfg_file = osp.join(cache_dir, f'{cache_name(sources)}.py')
            atomic_write_text(cfg_file,
                              self.config(Run(builder),
                                          teacher_ckpt).pretty_text)
            self.runner(cache_command(cfg_file, out, teacher_ckpt),
                        osp.join(cache_dir, 'commands.log'))
            if not osp.isdir(out):
                raise RuntimeError(f'tools/cache_teacher.py wrote no {out}')
        self._caches = folders
        return folders

    def student_config(self, run: Run) -> Config:
        """A student run's config; a KD run's with the teacher and its
        cache (both made here if missing)."""
        if run.family == 'student':
            return self.config(run)
        return self.config(run, self.teacher_ckpt(),
                           self.caches().get(run.family))

    def student_run(self, run: Run, grid: bool = False) -> dict:
        """Train a student run; only a grid run may diverge (NaN score)."""
        record = self.record(self.run_dir(run))
        if record is not None:  # done: no config to build
            return record
        return self.train(run.family, self.student_config(run),
                          self.run_dir(run),
                          allow_divergence=grid and run.family != 'student')

    def __call__(self) -> str:
        """Run every stage; returns the report."""
        args = self.args
        self.check_protocol()
        # stage 1: the teacher (the first seed); the others come in stage 5
        teacher = self.teachers(args.teacher_seeds[:1])
        student0 = self.student_run(Run('student'))
        teacher['lead'] = check_gate(teacher['value'], student0['val_last'],
                                     args.gate_margin)
        teacher['student_val'] = student0['val_last']

        grid = grid_runs()
        scores: Dict[str, Dict[Setting, float]] = {}
        for run in grid:
            record = self.student_run(run, grid=True)
            scores.setdefault(run.family, {})[run.setting] = record[
                'val_last']
        selected = {
            family: select_setting(g, scores[family])
            for family, g in GRIDS.items()
        }
        methods = final_methods(selected)
        # stage 5: the other teacher runs must agree with the teacher
        lead = teacher['lead']
        teacher = dict(self.teachers(args.teacher_seeds), lead=lead,
                       student_val=student0['val_last'])
        _write_json(
            osp.join(self.work, 'selection.json'),
            dict(
                teacher={k: v for k, v in teacher.items() if k != 'runs'},
                teacher_runs={
                    str(s): dict(iter=i, value=v)
                    for s, (i, v) in teacher['runs'].items()
                },
                **grid_summary(scores, selected)))

        results: Dict[str, Dict[int, dict]] = {m: {} for m in methods}
        for seed in args.seeds:  # seed by seed: whole pairs first
            for method, run in methods.items():
                run = run._replace(seed=seed)
                record = self.student_run(run)
                if record.get('diverged'):
                    raise ProtocolError(
                        f'{method} diverged at seed {seed} '
                        f'({self.run_dir(run)}): {record["diverged"]}')
                results[method][seed] = self.test_student(run)
        teacher_dir = self.run_dir(Run('teacher', (), teacher['seed']),
                                   teacher=True)
        teacher_record = self.record(teacher_dir)
        if 'test' not in teacher_record:
            ckpt = self.teacher_ckpt()
            teacher_record = self.test(teacher_dir,
                                       self.record(teacher_dir),
                                       osp.join(teacher_dir, 'teacher.py'),
                                       ckpt)
        report = write_report(args, self.work, self.test_sets, teacher,
                              teacher_record, scores, selected, results)
        self.protocol_runs = {
            f'teacher/seed{s}': Run('teacher', (), s)
            for s in args.teacher_seeds
        }
        self.protocol_runs.update({
            f'runs/{run.key}': run
            for run in [Run('student')] + grid + [
                r._replace(seed=s) for r in methods.values()
                for s in args.seeds
            ]
        })
        return report

    def rerun(self, patterns: Sequence[str]) -> str:
        """Train runs of the finished protocol again from scratch and
        compare every figure with their first run's.

        Each run whose folder (``teacher/seed0``, ``runs/KDAS/a0.3_T4/
        seed1``, ...) matches one of ``patterns`` (:func:`fnmatch.fnmatch`)
        is trained again under ``rerun/<folder>`` with the same command and
        config (a KD run from this work dir's teacher and caches, which
        :meth:`teacher_ckpt` has checked against the ledger), tested as
        the protocol tests it when its first run was, and recorded like any
        run (in the ledger too, under ``rerun/``: finished reruns are
        skipped on any machine). A rerun that differs is reported, not
        refused: it feeds no other step.

        Returns:
            str: ``rerun.md``: per run, whether the weights are the same
            bits, and the largest difference of any validation or test
            figure; ``rerun.json`` holds the same as data.
        """
        keys = sorted(  # the teachers first, then seed by seed
            (k for k in self.protocol_runs
             if any(fnmatch.fnmatch(k, p) for p in patterns)),
            key=lambda k: (self.protocol_runs[k].family != 'teacher',
                           self.protocol_runs[k].seed))
        if not keys:
            raise ProtocolError(
                f'--rerun {" ".join(patterns)}: no run of the protocol '
                'matches (its runs are e.g. teacher/seed0, '
                'runs/student/default/seed1, runs/KDAS/a0.3_T4/seed2)')
        rows = []
        for key in keys:
            run = self.protocol_runs[key]
            first = self.record(osp.join(self.work, key))
            rerun_dir = osp.join(self.work, 'rerun', key)
            name = run.family
            record = self.record(rerun_dir)
            # the config only when something trains: a KD run's needs the
            # teacher's checkpoint, which a fresh work dir trains again
            if record is None:
                record = self.train(name, self._rerun_config(run), rerun_dir)
            if 'test' in first and 'test' not in record:
                if not self.trained_here(rerun_dir):  # only the ledger's
                    record = self.reproduce(name, self._rerun_config(run),
                                            rerun_dir, record)
                record = self.test(rerun_dir, record,
                                   *self._tested_files(run, rerun_dir,
                                                       record))
            rows.append(compare_records(key, first, record))
        _write_json(osp.join(self.work, 'rerun.json'), dict(runs=rows))
        report = format_rerun(rows)
        atomic_write_text(osp.join(self.work, 'rerun.md'), report)
        return report

    def _rerun_config(self, run: Run) -> Config:
        """The config a run of the protocol trained with."""
        if run.family == 'teacher':
            return self.teacher_config(run.seed)
        return self.student_config(run)

    def _tested_files(self, run: Run, run_dir: str,
                      record: dict) -> Tuple[str, str]:
        """The config and checkpoint the protocol tests for a run."""
        if run.family == 'teacher':
            curve = {int(i): v for i, v in record['val'].items()}
            return (osp.join(run_dir, 'teacher.py'),
                    teacher_checkpoint(run_dir,
                                       best_checkpoint(curve)[0],
                                       record['iters']))
        if record['distilled']:  # what ships
            return (osp.join(run_dir, 'student_config.py'),
                    osp.join(run_dir, f'iter_{record["iters"]}_student.pth'))
        return (osp.join(run_dir, f'{run.family}.py'),
                osp.join(run_dir, f'iter_{record["iters"]}.pth'))


def compare_records(key: str, first: dict, again: dict) -> dict:
    """A run's first record against its rerun's: the same weights (bits)
    or not, and every validation and test figure of both with its
    difference.

    Args:
        key: The run's folder.
        first: The first run's record.
        again: The rerun's record.

    Returns:
        dict: ``run``, ``same_weights``, ``figures`` (``{name: [first,
        rerun, rerun - first]}``; validation at every interval as
        ``val@<iteration>``, test metrics as ``<set>/<measure>``; not the
        test's :data:`TIMINGS`) and ``max_abs_diff`` over them;
        ``machines`` of both.
    """
    figures = {}
    for it, value in first.get('val', {}).items():
        if it in again.get('val', {}):
            figures[f'val@{it}'] = value, again['val'][it]
    for name, value in first.get('test', {}).items():
        if name in again.get('test', {}) and name not in TIMINGS:
            figures[name] = value, again['test'][name]
    figures = {k: [a, b, b - a] for k, (a, b) in figures.items()}
    return dict(
        run=key,
        same_weights=first.get('weights') == again.get('weights'),
        figures=figures,
        max_abs_diff=max((abs(d) for _, _, d in figures.values()),
                         default=float('nan')),
        machines=[first.get('machine'), again.get('machine')])


def format_rerun(rows: Sequence[dict]) -> str:
    """``rerun.md``: one line per rerun run (every figure is in
    ``rerun.json``)."""
    lines = [
        '| run | weights | validation mean Dice (last): first, rerun | '
        'test figures | largest difference: test | any figure |',
        '|---|---|---|---|---|---|'
    ]
    for row in rows:
        figures = row['figures']
        val = max((k for k in figures if k.startswith('val@')),
                  key=lambda k: int(k[4:]), default=None)
        test = [d for k, (_, _, d) in figures.items()
                if not k.startswith('val@')]
        lines.append(
            f'| {row["run"]} | '
            f'{"the same bits" if row["same_weights"] else "different"} | '
            + (f'{figures[val][0]:.4f}, {figures[val][1]:.4f}'
               if val else '-') + f' | {len(test)} | ' +
            (f'{max(map(abs, test)):.2g}' if test else '-') +
            f' | {row["max_abs_diff"]:.2g} |')
    same = sum(r['same_weights'] for r in rows)
    worst = max(r['max_abs_diff'] for r in rows)
    lines += [
        '', f'{same} of {len(rows)} rerun(s) ended with the first run\'s '
        f'weights; the largest difference of any figure is {worst:.2g}.'
    ]
    return '\n'.join(lines) + '\n'


def _attempts(record: dict) -> str:
    n = record.get('attempts', 1)
    if n == 1:
        return 'the ledger\'s run trained in one attempt'
    return f'the ledger\'s run was resumed ({n} attempts)'


def best_checkpoint_file(run_dir: str, best_iter: int) -> str:
    """The name mmengine's ``save_best`` gives the best checkpoint."""
    return osp.join(run_dir, f'best_{VAL_KEY.replace("/", "_")}_iter_'
                    f'{best_iter}.pth')


def teacher_checkpoint(run_dir: str, best_iter: int, iters: int) -> str:
    """The file of a teacher run's best checkpoint.

    Args:
        run_dir: The teacher's work dir.
        best_iter: The iteration of its best validation value.
        iters: Its last iteration.

    Returns:
        str: ``best_<key>_iter_<n>.pth`` (mmengine's ``save_best``), or
        ``iter_<n>.pth`` when that is the last one.

    Raises:
        FileNotFoundError: If neither is there.
    """
    best = best_checkpoint_file(run_dir, best_iter)
    if osp.isfile(best):
        return best
    last = osp.join(run_dir, f'iter_{best_iter}.pth')
    if best_iter == iters and osp.isfile(last):
        return last
    raise FileNotFoundError(f'no checkpoint of iteration {best_iter} in '
                            f'{run_dir} (expected {osp.basename(best)})')


# The report


def summarize(results: Dict[str, Dict[int, dict]],
              teacher: dict,
              key: str,
              min_lead: float = 0.01) -> dict:
    """Statistics of one test measure across seeds.

    Args:
        results: ``{method: {seed: record}}``, records with ``test``.
        teacher: The teacher's record (with ``test``).
        key: A metric key, e.g. ``'Kvasir/mDice'``.
        min_lead: See :func:`gap_share`.

    Returns:
        dict: ``mean`` and ``std`` (sample standard deviation, 0 for one
        seed) per method; ``paired`` ``{method: {seed: value - the plain
        student's value of the same seed}}`` for the seeds both have;
        ``paired_t`` ``{method: t or None}`` (:func:`paired_t` of those
        differences); ``gap_closed`` ``{method: share or None}``
        (:func:`gap_share`) when the plain student was run.
    """
    mean, std, paired, t, gap_closed = {}, {}, {}, {}, {}
    for method, seeds in results.items():
        values = [rec['test'][key] for rec in seeds.values()]
        mean[method] = statistics.mean(values)
        std[method] = statistics.stdev(values) if len(values) > 1 else 0.0
    student = results.get('student')
    if student:
        for method, seeds in results.items():
            if method == 'student':
                continue
            paired[method] = {
                seed: rec['test'][key] - student[seed]['test'][key]
                for seed, rec in seeds.items() if seed in student
            }
            t[method] = paired_t(list(paired[method].values()))
            gap_closed[method] = gap_share(teacher['test'][key],
                                           mean['student'], mean[method],
                                           min_lead)
    return dict(mean=mean, std=std, paired=paired, paired_t=t,
                gap_closed=gap_closed)


def paired_t(diffs: Sequence[float]) -> Optional[float]:
    """The paired t statistic of per-seed differences: their mean over
    its standard error, ``mean / (std / sqrt(n))`` (sample std; ``n - 1``
    degrees of freedom). None for fewer than two differences or when they
    are all equal (no spread to measure the mean against)."""
    if len(diffs) < 2:
        return None
    spread = statistics.stdev(diffs)
    if spread == 0:
        return None
    return statistics.mean(diffs) / (spread / math.sqrt(len(diffs)))


def _fmt_diffs(diffs: Dict[int, float]) -> str:
    return ', '.join(f'{d:+.4f}' for _, d in sorted(diffs.items()))


Scores = Dict[str, Dict[Setting, float]]


def _shown_path(path: str) -> str:
    """A path as a report shows it: relative to this checkout when
    inside it (the same text on every machine), else as it is."""
    rel = osp.relpath(osp.abspath(path), ROOT)
    return path if rel.startswith(os.pardir) else rel


def write_report(args: argparse.Namespace, work: str,
                 test_sets: Sequence[str], teacher: dict,
                 teacher_record: dict, scores: Scores,
                 selected: Dict[str, Setting],
                 results: Dict[str, Dict[int, dict]]) -> str:
    """Write ``results.md`` and one ``results_<set>.png`` per test set.

    Args:
        args: The tool's arguments.
        work: The work dir.
        test_sets: The test sets.
        teacher: :meth:`Experiment.teachers`' choice with ``lead`` and
            ``student_val``.
        teacher_record: The chosen teacher run's record (with ``test``).
        scores: ``{family: {setting: validation mean Dice}}`` of the grid.
        selected: The chosen setting per family.
        results: ``{method: {seed: record with test}}``.

    Returns:
        str: The markdown.
    """
    lines = [
        f'Protocol: from scratch on {_shown_path(args.data_root)}; '
        f'{args.size}x{args.size}, batch {args.batch_size}, multi-scale '
        f'{"/".join(map(str, RATES))} one rate per iteration in turn, '
        f'binarised masks, AdamW lr {args.lr:g} with a cosine decay to 0. '
        f'Trained on train-minus-val, validated on {VAL_SET} '
        f'({osp.relpath(args.split_file, ROOT)}). Teachers (PVTv2-B2): '
        f'{args.teacher_iters} iterations, seeds '
        f'{list(args.teacher_seeds)}. Students (PVTv2-B0): {args.iters} '
        f'iterations; grid at seed 0, chosen by {VAL_KEY} at the last '
        f'iteration; final seeds {list(args.seeds)}, evaluated with '
        'PolypMetric at the last iteration, students as exported.', '',
        f'Teachers ({VAL_KEY}, best checkpoint; last iteration):', ''
    ]
    for seed, (it, value) in teacher['runs'].items():
        lines.append(f'- seed {seed}: {value:.4f} at iteration {it}; '
                     f'{teacher["last"][seed]:.4f} at the last')
    agreement = (
        f'Spread {teacher["spread"]:.4f} (tolerance '
        f'{args.teacher_tolerance:g})')
    if not teacher.get('agreed', True):
        agreement = (
            f'**The agreement check failed**: spread '
            f'{teacher["spread"]:.4f}, more than the tolerance '
            f'{args.teacher_tolerance:g}; the run continued from the '
            'teacher fixed before it (--accept-teacher-disagreement), so '
            'every student figure below holds for this one teacher run, '
            'not for the teacher recipe')
    lines += [
        '', f'{agreement}; chosen: seed {teacher["seed"]}, '
        f'iteration {teacher["iter"]}. Gate: teacher {teacher["value"]:.4f}'
        f' vs plain student (seed 0) {teacher["student_val"]:.4f}, lead '
        f'{teacher["lead"]:+.4f} (required {args.gate_margin:g}).', '',
        f'Grid ({VAL_KEY} at the last iteration, seed 0; chosen in bold):',
        '', '| method | setting | validation mDice |', '|---|---|---|'
    ]
    for family, grid in GRIDS.items():
        for setting in grid:
            score = scores[family][setting]
            label = setting_label(setting)
            cell = 'diverged' if not math.isfinite(score) else f'{score:.4f}'
            if setting == selected[family]:
                label, cell = f'**{label}**', f'**{cell}**'
            lines.append(f'| {family} | {label} | {cell} |')
    lines.append('')
    for ts in test_sets:
        header = ['model', 'seeds'] + [f'{ts} {m}' for m in MEASURES]
        lines += [
            '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header),
            '| teacher | 1 | ' + ' | '.join(
                f'{teacher_record["test"][f"{ts}/{m}"]:.4f}'
                for m in MEASURES) + ' |'
        ]
        stats = {
            m: summarize(results, teacher_record, f'{ts}/{m}')
            for m in MEASURES
        }
        for method, seeds in results.items():
            cells = [
                f'{stats[m]["mean"][method]:.4f} ± '
                f'{stats[m]["std"][method]:.4f}' for m in MEASURES
            ]
            lines.append(f'| {method} | {len(seeds)} | ' +
                         ' | '.join(cells) + ' |')
        dice = stats['mDice']
        t_dice = teacher_record['test'][f'{ts}/mDice']
        s_dice = dice['mean'].get('student')
        if dice['paired']:
            ahead = gap_share(t_dice, s_dice, s_dice) is not None
            seeds = sorted(results['student'])
            lines += [
                '', f'{ts} mean Dice, paired by seed (method - plain '
                f'student; seeds {seeds}; paired t: the mean difference '
                f'over its standard error, {len(seeds) - 1} degrees of '
                'freedom, "-" where the differences do not vary)' +
                (', and the share of the teacher - student gap '
                 f'({t_dice:.4f} - {s_dice:.4f}) that the method closes:'
                 if ahead else ':'), ''
            ]
            if ahead:
                lines += [
                    '| method | per-seed difference | mean difference | '
                    'paired t | gap closed |', '|---|---|---|---|---|'
                ]
            else:
                lines += [
                    '| method | per-seed difference | mean difference | '
                    'paired t |', '|---|---|---|---|'
                ]
            for method, diffs in dice['paired'].items():
                mean_diff = (statistics.mean(diffs.values())
                             if diffs else float('nan'))
                t = dice['paired_t'][method]
                row = (f'| {method} | {_fmt_diffs(diffs)} | {mean_diff:+.4f}'
                       f' | {"-" if t is None else f"{t:+.2f}"}')
                if ahead:
                    row += f' | {dice["gap_closed"][method]:.1%}'
                lines.append(row + ' |')
            if not ahead:
                lines += [
                    '', f'On {ts} the teacher ({t_dice:.4f}) is not at least '
                    f'0.01 ahead of the plain student ({s_dice:.4f}): no '
                    'share of its lead is given, a share of a gap that is '
                    'not there means nothing.'
                ]
        lines.append('')
    minutes = ', '.join(
        f'{method} {statistics.mean(r["minutes"] for r in seeds.values()):.1f}'
        for method, seeds in results.items())
    teacher_minutes = ', '.join(
        f'{m:.1f}' for _, m in sorted(teacher['minutes'].items()))
    lines.append(f'Training wall time (minutes per run): teachers '
                 f'{teacher_minutes}; {minutes}.')
    report = '\n'.join(lines) + '\n'
    atomic_write_text(osp.join(work, 'results.md'), report)
    _write_json(
        osp.join(work, RESULTS),
        results_summary(args, test_sets, teacher, teacher_record, scores,
                        selected, results))
    for ts in test_sets:
        plot(osp.join(work, f'results_{ts}.png'), ts, teacher_record,
             results)
    return report


def grid_summary(scores: Scores, selected: Dict[str, Setting]) -> dict:
    """``grid`` (``{family: [{setting, score, selected}]}``) and
    ``selected`` (``{family: setting}``), as labels."""
    return dict(
        grid={
            family: [
                dict(setting=setting_label(s), score=scores[family][s],
                     selected=s == selected[family]) for s in grid
            ] for family, grid in GRIDS.items()
        },
        selected={f: setting_label(s)
                  for f, s in selected.items()})


def machine_description(cpuinfo: str = '/proc/cpuinfo') -> str:
    """``'2 cores of an "AMD EPYC" CPU (family 25, model 1, AVX2), torch
    2.14.1'``: where it ran. Family, model and the widest vector ISA tell
    apart CPUs that share a model name (a cloud VM's "AMD EPYC" may be
    one generation or another)."""
    import platform

    import torch
    model = platform.processor() or platform.machine()
    fields: Dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(':')
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    model = fields.get('model name', model)
    details = []
    if 'cpu family' in fields and 'model' in fields:
        details.append(f'family {fields["cpu family"]}, model '
                       f'{fields["model"]}')
    flags = set(fields.get('flags', '').split())
    isa = next((name for flag, name in (('avx512f', 'AVX-512'),
                                        ('avx2', 'AVX2')) if flag in flags),
               None)
    if isa:
        details.append(isa)
    where = f' ({", ".join(details)})' if details else ''
    return (f'{os.cpu_count()} cores of an "{model}" CPU{where}, torch '
            f'{torch.__version__.split("+")[0]}')


def trained_on(records: Sequence[dict]) -> str:
    """Where runs trained: every machine their records name, the most
    frequent first, each with its number of runs (a ledger's runs may come
    from several machines; not where the report is written)."""
    counts = collections.Counter(
        r.get('machine') or 'a machine not recorded' for r in records)
    return '; '.join(f'{machine} ({n} run{"s" * (n > 1)})'
                     for machine, n in counts.most_common())


def results_summary(args: argparse.Namespace, test_sets: Sequence[str],
                    teacher: dict, teacher_record: dict, scores: Scores,
                    selected: Dict[str, Setting],
                    results: Dict[str, Dict[int, dict]]) -> dict:
    """What ``results.json`` holds: every figure of the report, as data.

    ``tools/analysis_tools/model_cards.py`` writes the configs' READMEs
    and metafiles from it. Keys: ``date`` (written), ``machine`` (where the
    teacher and the final-stage runs trained, :func:`trained_on`),
    ``protocol`` (the settings of ``protocol.json``), ``test_sets``,
    ``teacher`` (the choice, each run's best and last validation value,
    the gate, minutes and the chosen run's ``test`` metrics), ``grid``
    (``{family: [{setting, score, selected}]}``), ``selected`` and
    ``methods`` (``{method: {family, setting, seeds: {seed: {test,
    val_last, minutes}}}}``, in report order).
    """
    runs = final_methods(selected)
    return dict(
        date=time.strftime('%Y-%m-%d'),
        machine=trained_on([teacher_record] + [
            rec for seeds in results.values() for rec in seeds.values()
        ]),
        protocol=dict(protocol_settings(args), seeds=list(args.seeds)),
        test_sets=list(test_sets),
        teacher=dict(
            seed=teacher['seed'],
            iter=teacher['iter'],
            value=teacher['value'],
            runs={
                str(s): dict(iter=i, value=v, last=teacher['last'][s])
                for s, (i, v) in teacher['runs'].items()
            },
            spread=teacher['spread'],
            agreed=teacher.get('agreed', True),
            tolerance=args.teacher_tolerance,
            lead=teacher['lead'],
            student_val=teacher['student_val'],
            minutes={str(s): m
                     for s, m in teacher['minutes'].items()},
            test=teacher_record['test']),
        **grid_summary(scores, selected),
        methods={
            method: dict(
                family=runs[method].family,
                setting=setting_label(runs[method].setting),
                seeds={
                    str(seed): dict(test=rec['test'],
                                    val_last=rec['val_last'],
                                    minutes=rec['minutes'])
                    for seed, rec in sorted(seeds.items())
                })
            for method, seeds in results.items()
        })


def plot(path: str, ts: str, teacher: dict,
         results: Dict[str, Dict[int, dict]]) -> None:
    """Mean Dice of every method with its seeds; validation curves."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    key = f'{ts}/mDice'
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.5))
    names = ['teacher'] + list(results)
    for x, name in enumerate(names):
        recs = [teacher] if name == 'teacher' else list(
            results[name].values())
        values = [r['test'][key] for r in recs]
        ax1.bar(x, statistics.mean(values), color=f'C{x % 10}', alpha=0.5)
        ax1.plot([x] * len(values), values, 'k.', markersize=8)
    ax1.set_xticks(range(len(names)), names, rotation=30, ha='right')
    ax1.set_ylabel(f'{ts} mean Dice (bar: mean; dots: seeds)')
    values = [teacher['test'][key]] + [
        r['test'][key] for s in results.values() for r in s.values()
    ]
    ax1.set_ylim(max(0, min(values) - 0.1), min(1, max(values) + 0.05))
    for x, name in enumerate(names[1:], 1):
        curves = [{int(i): v
                   for i, v in r['val'].items()}
                  for r in results[name].values()]
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        if steps:
            ax2.plot(steps,
                     [statistics.mean(c[s] for c in curves) for s in steps],
                     'o-',
                     color=f'C{x % 10}',
                     label=name)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel(f'{VAL_SET} mean Dice (mean over seeds)')
    ax2.legend(fontsize=7)
    fig.tight_layout()
    atomic_dir = osp.dirname(path)
    tmp = osp.join(atomic_dir, f'.{osp.basename(path)}.tmp.png')
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)


# The command line


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


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='PraNet-layout data folder')
    parser.add_argument('--work-dir', default='work_dirs/polyp_experiment')
    parser.add_argument(
        '--dry-run', action='store_true', help='print the plan and stop')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument(
        '--teacher-seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--lr', type=float, default=5e-4)
    parser.add_argument('--teacher-iters', type=int, default=3000)
    parser.add_argument('--iters', type=int, default=800)
    parser.add_argument(
        '--val-interval',
        type=int,
        default=400,
        help='validation and checkpoint interval of the students (the '
        'last iteration is always validated)')
    parser.add_argument(
        '--teacher-val-interval',
        type=int,
        default=600,
        help='the same for the teachers, whose best checkpoint is kept')
    parser.add_argument(
        '--teacher-tolerance',
        type=float,
        default=0.02,
        help='largest spread of the teacher runs\' best validation mDice')
    parser.add_argument(
        '--accept-teacher-disagreement',
        action='store_true',
        help='continue from the teacher (the first of --teacher-seeds) when '
        'the teacher runs are further apart than --teacher-tolerance: a '
        'deviation from the protocol, which the report and results.json '
        'state (agreed: false); without it the tool stops there')
    parser.add_argument(
        '--gate-margin',
        type=float,
        default=0.05,
        help='lead over the plain student the teacher needs on validation')
    parser.add_argument(
        '--no-teacher-cache',
        action='store_true',
        help='run the teacher online in every KD run (slower)')
    parser.add_argument('--split-file', default=PRANET_VAL_FILE)
    parser.add_argument('--budget-minutes', type=float, default=480)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument(
        '--threads',
        type=int,
        default=2,
        help='threads of every command; part of the protocol: a run '
        'reproduces bit for bit only at the same count')
    parser.add_argument(
        '--ledger',
        help='a folder (e.g. committed with the results) that keeps every '
        'record: its finished steps are skipped on any machine, and a run '
        'whose files are needed again is retrained and checked against it')
    parser.add_argument(
        '--rerun',
        nargs='+',
        metavar='FOLDER',
        help='after the protocol, train these of its runs again from '
        'scratch (folders of the work dir, patterns allowed: teacher/seed0, '
        '"runs/*/*/seed2") under WORK_DIR/rerun/, test them as the protocol '
        'does, and compare every figure with the first run (rerun.md)')
    args = parser.parse_args(argv)
    for key in ('teacher_iters', 'iters', 'val_interval',
                'teacher_val_interval', 'size', 'batch_size'):
        if getattr(args, key) <= 0:
            parser.error(f'--{key.replace("_", "-")} must be > 0')
    for key in ('iters', 'teacher_iters'):
        interval = getattr(args, key.replace('iters', 'val_interval'))
        if getattr(args, key) % interval:
            parser.error(f'--{key.replace("_", "-")} must be a multiple of '
                         f'its validation interval ({interval}), so that the '
                         'last iteration is validated')
    if 0 not in args.seeds:
        parser.error('--seeds must include 0, the seed of the grid')
    args.split_file = osp.abspath(args.split_file)
    return args


def main(argv: Optional[Sequence[str]] = None,
         runner: Callable[[List[str], str], None] = run) -> int:
    args = parse_args(argv)
    args.data_root = osp.abspath(args.data_root)
    num_val = len(read_split_file(args.split_file))
    try:
        test_sets = find_test_sets(args.data_root)
    except FileNotFoundError:
        if not args.dry_run:
            raise
        test_sets = []
    num_test = count_images(args.data_root, test_sets)
    print(f'Test sets: {", ".join(test_sets) or "none found"} ({num_test} '
          f'images); validation split: {num_val} images.')
    work = osp.abspath(args.work_dir)
    ledger = args.ledger and osp.abspath(args.ledger)
    steps = plan_steps(args, num_val, num_test,
                       recorded_selection(work, ledger))
    done = steps_done(steps, work, ledger)
    print(format_plan(steps, args.budget_minutes, done, work), flush=True)
    if args.dry_run:
        return 0
    experiment = Experiment(args, test_sets,
                            functools.partial(runner, threads=args.threads)
                            if runner is run else runner)
    try:
        report = experiment()
        print(report)
        print(f'wrote {osp.join(args.work_dir, "results.md")} and '
              'results_<test set>.png')
        if args.rerun:
            print(experiment.rerun(args.rerun))
            print(f'wrote {osp.join(args.work_dir, "rerun.md")}')
    except ProtocolError as err:
        print(f'polyp_experiment: stopped: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())

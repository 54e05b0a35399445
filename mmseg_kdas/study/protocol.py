"""The study's protocol: its runs, grids and selection rules.

What every run of :mod:`mmseg_kdas.study` is (a family, a setting of its
grid and a seed), the methods of the final stage and the rules that choose
between runs: pure functions of the records, fixed before any run.
"""
import math
import os.path as osp
from typing import Dict, List, NamedTuple, Sequence, Tuple

#: The repository: the configs runs start from, and the folder every
#: command runs in.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

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
RESULTS = 'results.json'  # every figure of results.md, as data
#: The settings of the study when none is given
#: (``tools/analysis_tools/polyp_experiment.py --help`` says what each
#: is); the model cards of a study not run yet show its size, batch and
#: iterations.
DEFAULTS = dict(
    seeds=(0, 1, 2),
    teacher_seeds=(0, 1),
    size=128,
    batch_size=8,
    lr=5e-4,
    teacher_iters=3000,
    iters=800,
    val_interval=400,
    teacher_val_interval=600,
    teacher_tolerance=0.02,
    gate_margin=0.05,
    budget_minutes=480,
    num_workers=2,
    threads=2)

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
#: ``{family: {setting: validation mean Dice}}`` of the grid.
Scores = Dict[str, Dict[Setting, float]]

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


def grid_runs() -> List[Run]:
    """Every run of the grid stage (seed 0)."""
    return [
        Run(family, setting) for family, grid in GRIDS.items()
        for setting in grid
    ]


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

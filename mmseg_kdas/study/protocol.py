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

MEASURES = ['mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'MAE']
#: What ``tools/test.py`` logs beside the metrics: seconds, not figures of
#: the model (a rerun compares the metrics only)
TIMINGS = frozenset({'time', 'data_time'})
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
#: ``{family: {setting: validation mean Dice}}`` of the grid.
Scores = Dict[str, Dict[Setting, float]]


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


def final_methods(methods: Sequence[Tuple[str, str, object]],
                  selected: Dict[str, Setting]) -> Dict[str, Run]:
    """The methods of the final stage (seed 0), in report order.

    Args:
        methods: ``[(name, family, setting or 'tuned')]`` of the study
            config (:func:`.settings.load_study`).
        selected: The chosen setting of every family with a grid.

    Returns:
        dict: ``{method name: Run}``; a tuned method is left out where an
        earlier method is the same run (e.g. ``'KDAS (tuned)'`` when the
        grid chose the paper's setting).
    """
    out: Dict[str, Run] = {}
    for name, family, setting in methods:
        run = Run(family, selected[family] if setting == 'tuned' else
                  setting)
        if setting == 'tuned' and run in out.values():
            continue
        out[name] = run
    return out


def grid_runs(grids: Dict[str, List[Setting]]) -> List[Run]:
    """Every run of the grid stage (seed 0)."""
    return [
        Run(family, setting) for family, grid in grids.items()
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
            f'teacher_tolerance {tolerance:g}. The endpoint is not stable '
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
            'it: train a stronger teacher (a larger teacher_iters) and rerun.')
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


def best_checkpoint_file(run_dir: str, best_iter: int,
                         val_key: str) -> str:
    """The name mmengine's ``save_best`` of ``val_key`` gives the best
    checkpoint."""
    return osp.join(run_dir, f'best_{val_key.replace("/", "_")}_iter_'
                    f'{best_iter}.pth')


def teacher_checkpoint(run_dir: str, best_iter: int, iters: int,
                       val_key: str) -> str:
    """The file of a teacher run's best checkpoint.

    Args:
        run_dir: The teacher's work dir.
        best_iter: The iteration of its best validation value.
        iters: Its last iteration.
        val_key: The validation metric of ``save_best``.

    Returns:
        str: ``best_<key>_iter_<n>.pth`` (mmengine's ``save_best``), or
        ``iter_<n>.pth`` when that is the last one.

    Raises:
        FileNotFoundError: If neither is there.
    """
    best = best_checkpoint_file(run_dir, best_iter, val_key)
    if osp.isfile(best):
        return best
    last = osp.join(run_dir, f'iter_{best_iter}.pth')
    if best_iter == iters and osp.isfile(last):
        return last
    raise FileNotFoundError(f'no checkpoint of iteration {best_iter} in '
                            f'{run_dir} (expected {osp.basename(best)})')

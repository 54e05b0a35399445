"""The study's plan: its steps, their cost and what is left to run.

The steps of the protocol in the order they run, with their estimated
minutes (from the seconds per step and image the study measured on this
machine, :mod:`.speed`, or its config gives), which of them the work dir
or the ledger has recorded, which runs a fresh work dir trains again for
their files, and which test sets the recorded tests lack
(:func:`plan_test_sets`).
"""
import argparse
import math
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmseg_kdas.datasets.polyp import index_by_stem
from .configs import cache_name, family_sources, plan_caches
from .ledger import RECORD, read_json, tested_sets, untested_sets
from .protocol import (Run, Scores, Setting, final_methods, grid_runs,
                       select_setting)


class Step(NamedTuple):
    """A step of the plan: its stage, its folder under the work dir (where
    its record or cache is) and its minutes."""
    stage: str
    name: str
    minutes: float


def count_images(data_root: str, test_sets: Sequence[str],
                 train: bool = False) -> int:
    """The images of the test sets, or (``train``) of ``TrainDataset``; 0
    for a folder that is not there."""
    folders = [osp.join(data_root, 'TestDataset', name, 'images')
               for name in test_sets]
    if train:
        folders = [osp.join(data_root, 'TrainDataset', 'images')]
    return sum(
        len(index_by_stem(folder)) for folder in folders
        if osp.isdir(folder))


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


def plan_steps(args: argparse.Namespace, num_val: int,
               num_test: int, num_train: int,
               selected: Optional[Dict[str, Setting]] = None) -> List[Step]:
    """The protocol's steps with their estimated minutes (``args.speed``:
    seconds per step and image)

    Unless the grid's choice is given, the final stage is counted in its
    largest form (a tuned KDAS setting other than the paper's).

    Args:
        args: The study's settings with ``speed``.
        num_val: Images of the validation split.
        num_test: Images of all test sets together.
        num_train: Images of ``TrainDataset`` (validation ones included).
        selected: The grid's choice (:func:`recorded_selection`), if known.

    Returns:
        list[Step]: In the order they run.
    """
    cost = args.speed
    kd = cost['kd_online' if args.no_teacher_cache else 'kd_cached']

    def train(s_per_iter: float, iters: int, interval: int,
              eval_cost: float) -> float:
        evals = math.ceil(iters / interval)
        return (iters * s_per_iter +
                evals * num_val * eval_cost) / 60

    steps = []
    teacher = train(cost['teacher'], args.teacher_iters,
                    args.teacher_val_interval, cost['eval_teacher'])
    first, *others = args.teacher_seeds
    steps.append(Step('1 teacher', f'teacher/seed{first}', teacher))
    student = train(cost['student'], args.iters, args.val_interval,
                    cost['eval_student'])
    distilled = train(kd, args.iters, args.val_interval,
                      cost['eval_student'])
    steps.append(Step('2 gate', f'runs/{Run("student").key}', student))
    runs = grid_runs(args.grids)
    if not args.no_teacher_cache:
        minutes = (max(num_train - num_val, 0) * len(args.rates) *
                   cost['cache_per_image_rate'] / 60)
        needs = {
            family: family_sources(args, family)
            for family in args.families if family != 'student'
        }
        for group in sorted(set(plan_caches(needs).values()), key=sorted):
            steps.append(Step('3 caches', f'teacher_cache/{cache_name(group)}',
                              minutes))
    for run in runs:
        steps.append(Step('4 grid', f'runs/{run.key}', distilled))
    for seed in others:
        steps.append(Step('5 agreement', f'teacher/seed{seed}', teacher))
    worst = selected or {
        family: grid[-1]
        for family, grid in args.grids.items()
    }
    done = {r.key for r in runs} | {Run('student').key}
    finals = []
    for seed in args.seeds:
        for run in final_methods(args.methods, worst).values():
            run = run._replace(seed=seed)
            finals.append(run)
            if run.key not in done:
                done.add(run.key)
                steps.append(Step(
                    '6 final', f'runs/{run.key}',
                    student if run.family == 'student' else distilled))
    tested = [f'runs/{run.key}' for run in finals] + [f'teacher/seed{first}']
    steps += [
        Step('7 tests', n, _test_minutes(cost, n, num_test)) for n in tested
    ]
    return steps


def _test_minutes(cost: dict, name: str, num_images: int) -> float:
    """Minutes of a test step (a teacher's, or a student's) on
    ``num_images`` images."""
    seconds = cost['eval_teacher' if name.startswith('teacher/') else
                   'eval_student']
    return num_images * seconds / 60


def _recorded(roots: Sequence[str], folder: str) -> Optional[dict]:
    """The record of ``folder`` under the first of ``roots`` that has it."""
    for root in roots:
        found = read_json(osp.join(root, folder, RECORD))
        if found is not None:
            return found
    return None


def steps_done(steps: Sequence[Step], work: str,
               ledger: Optional[str] = None,
               test_sets: Optional[Sequence[str]] = None) -> List[bool]:
    """Which steps of the plan are recorded in ``work`` or ``ledger``.

    A cache counts as done only in ``work`` (a ledger keeps records, not
    files); a test step when its run's record has ``test``, with figures
    of every set of ``test_sets`` where given.
    """
    roots = [work] + ([ledger] if ledger else [])
    done = []
    for step in steps:
        if step.stage == '3 caches':
            done.append(osp.isdir(osp.join(work, step.name)))
            continue
        found = _recorded(roots, step.name)
        if found is not None and step.stage == '7 tests':
            found = found if 'test' in found and not (
                test_sets and untested_sets(found, test_sets)) else None
        done.append(found is not None)
    return done


def plan_test_sets(steps: Sequence[Step], work: str, ledger: Optional[str],
                   data_root: str, test_sets: Sequence[str],
                   cost: dict) -> Tuple[List[Step], List[str]]:
    """The test sets that recorded tests lack, or hold and the data root
    does not.

    A run tested before a set was added to the data root is tested on
    that set alone (:meth:`Experiment.test`): its test step costs the
    minutes of the sets it lacks. A set that a record holds and the data
    root does not is neither tested nor reported (its figures stay in the
    records).

    Args:
        steps: The plan (:func:`plan_steps`).
        work: The work dir.
        ledger: The ledger folder, or None.
        data_root: The data root.
        test_sets: Its test sets (:func:`find_test_sets`).
        cost: Seconds per evaluated image (``speed``).

    Returns:
        tuple: The steps, those that test added sets with the minutes of
        these sets; and the plan's lines on the sets (none when every
        recorded test holds the data root's sets and no other).
    """
    roots = [work] + ([ledger] if ledger else [])
    images = {ts: count_images(data_root, [ts]) for ts in test_sets}
    added: Dict[str, List[str]] = {}
    recorded = set()
    out = []
    for step in steps:
        found = (_recorded(roots, step.name)
                 if step.stage == '7 tests' else None)
        if found is not None and 'test' in found:
            recorded.update(tested_sets(found))
            lacking = untested_sets(found, test_sets)
            if lacking:
                added[step.name] = lacking
                step = step._replace(minutes=_test_minutes(
                    cost, step.name, sum(images[ts] for ts in lacking)))
        out.append(step)
    lines = []
    for ts in sorted({ts for sets in added.values() for ts in sets}):
        runs = sum(ts in sets for sets in added.values())
        lines.append(f'  test set {ts}: not in the recorded tests (added '
                     f'to the data root after them): {runs} tested run(s) '
                     'to test on it alone')
    for ts in sorted(recorded - set(test_sets)):
        lines.append(f'  test set {ts}: recorded, not in the data root '
                     '(neither tested nor reported)')
    return out, lines


def recorded_selection(
        args: argparse.Namespace,
        work: str,
        ledger: Optional[str] = None) -> Optional[Dict[str, Setting]]:
    """The grid's choice from the records of ``work`` or ``ledger``, or
    None while a grid run is not recorded."""
    roots = [work] + ([ledger] if ledger else [])
    scores: Scores = {}
    for run in grid_runs(args.grids):
        found = _recorded(roots, f'runs/{run.key}')
        if found is None:
            return None
        scores.setdefault(run.family, {})[run.setting] = found['val_last']
    return {f: select_setting(g, scores[f]) for f, g in args.grids.items()}


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
                work: Optional[str] = None,
                where: str = 'this machine') -> str:
    """The plan as text: minutes per stage, the total and the budget; with
    ``done`` (:func:`steps_done`) and ``work``, what is left to run there
    (:func:`steps_left`)."""
    stages: Dict[str, List[Step]] = {}
    for step in steps:
        stages.setdefault(step.stage, []).append(step)
    lines = [f'Plan (estimated minutes on {where}):']
    for stage, items in stages.items():
        total = sum(s.minutes for s in items)
        lines.append(f'  {stage}: {len(items)} step(s), {total:.0f} min')
    total = sum(s.minutes for s in steps)
    lines.append(f'  total: {total:.0f} min ({total / 60:.1f} h) of a '
                 f'{budget:.0f}-min budget')
    if total > budget:
        lines.append(f'  WARNING: over the budget by {total - budget:.0f} '
                     'min; reduce iters / teacher_iters')
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

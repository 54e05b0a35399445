"""The study's steps on one work dir: :class:`Experiment`."""
import argparse
import fnmatch
import functools
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from mmseg_kdas.utils.atomic import atomic_write_text
from mmseg_kdas.utils.config_text import config_text
from .configs import (SELECTED_CONFIG, cache_command, cache_name,
                      family_sources, plan_caches, protocol_config,
                      protocol_settings, selected_config, test_config)
from .ledger import (compare_records, format_rerun, read_json, untested_sets,
                     write_json)
from .plan import (count_images, find_test_sets, format_plan, plan_steps,
                   plan_test_sets, recorded_selection, steps_done)
from .protocol import (ProtocolError, Run, Setting, best_checkpoint,
                       best_checkpoint_file, check_gate, choose_teacher,
                       final_methods, grid_runs, select_setting,
                       teacher_checkpoint)
from .report import grid_summary, write_report
from .runner import Trainer
from .runner import run as run_command
from .speed import machine_speed
from .split import validation_split


class Experiment(Trainer):
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
        runner: Runs one command (:func:`.runner.run`; tests pass a fake).
    """

    def __init__(
            self,
            args: argparse.Namespace,
            test_sets: Sequence[str],
            runner: Callable[[List[str], str], None] = run_command) -> None:
        super().__init__(
            osp.abspath(args.work_dir),
            osp.abspath(args.ledger) if getattr(args, 'ledger', None) else
            None, runner, args.val_key, args.gpus)
        self.args = args
        self.test_sets = list(test_sets)
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
        return protocol_config(self.args, self.args.families[run.family],
                               self.test_sets, run.seed,
                               teacher_ckpt=teacher_ckpt,
                               setting=run.setting,
                               teacher_cache=teacher_cache)

    def test_student(self, run: Run) -> dict:
        run_dir = self.run_dir(run)
        record = self.record(run_dir)
        if not untested_sets(record, self.test_sets):
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

    def test(self, run_dir: str, record: dict, cfg_file: str,
             ckpt: str) -> dict:
        """Evaluate a trained model on the test sets (unless done), then on
        each set added to the data root since, alone.

        A set added is tested with the run's test config on that set only
        (:func:`test_config`, ``test_<set>.py``, in ``test_<set>/``), and
        its figures are added to the record; the figures recorded stay as
        they are (a checkpoint no longer here is trained again first, by
        the caller, and must reproduce the ledger's weights).
        """
        record = super().test(run_dir, record, cfg_file, ckpt)
        added = untested_sets(record, self.test_sets)
        if not added:
            return record
        name = 'test_' + '+'.join(added)
        added_cfg = osp.join(run_dir, f'{name}.py')
        atomic_write_text(
            added_cfg,
            config_text(test_config(cfg_file, self.args.data_root, added)))
        metrics = self.evaluate(run_dir, added_cfg, ckpt,
                                osp.join(run_dir, name))
        test = dict(record['test'])
        test.update((k, v) for k, v in metrics.items()
                    if k.rpartition('/')[0] in added)
        record = dict(record, test=test)
        self.save_record(run_dir, record)
        return record

    def check_protocol(self) -> None:
        """Write ``protocol.json``, or refuse a work dir (or ledger) of
        another protocol."""
        protocol = protocol_settings(self.args)
        folders = [self.work] + ([self.ledger] if self.ledger else [])
        for folder in folders:
            path = osp.join(folder, 'protocol.json')
            old = read_json(path)
            if old is not None and old != protocol:
                keys = sorted(k for k in set(old) | set(protocol)
                              if old.get(k) != protocol.get(k))
                raise ProtocolError(
                    f'{path} was written by another protocol '
                    f'({", ".join(keys)} differ): use another --work-dir '
                    '(--ledger), or the same settings')
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
            write_json(osp.join(folder, 'protocol.json'), protocol)

    def teacher_config(self, seed: int) -> Config:
        return protocol_config(self.args, self.args.teacher, self.test_sets,
                               seed, teacher=True)

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
        choice['ckpt'] = best_checkpoint_file(run_dir, choice['iter'],
                                              args.val_key)
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
                                          iters, self.args.val_key)
                if not self.trained_here(run_dir):
                    raise FileNotFoundError(run_dir)
            except FileNotFoundError:
                self.reproduce('teacher', self.teacher_config(seed),
                               run_dir, self.record(run_dir))
                ckpt = teacher_checkpoint(run_dir, self._teacher['iter'],
                                          iters, self.args.val_key)
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
        needs = {
            f: family_sources(self.args, f)
            for f in self.args.families if f != 'student'
        }
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
            atomic_write_text(
                cfg_file, config_text(self.config(Run(builder),
                                                  teacher_ckpt)))
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

        grid = grid_runs(args.grids)
        scores: Dict[str, Dict[Setting, float]] = {}
        for run in grid:
            record = self.student_run(run, grid=True)
            scores.setdefault(run.family, {})[run.setting] = record[
                'val_last']
        selected = {
            family: select_setting(g, scores[family])
            for family, g in args.grids.items()
        }
        methods = final_methods(args.methods, selected)
        # stage 5: the other teacher runs must agree with the teacher
        lead = teacher['lead']
        teacher = dict(self.teachers(args.teacher_seeds), lead=lead,
                       student_val=student0['val_last'])
        write_json(
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
        if untested_sets(teacher_record, self.test_sets):
            ckpt = self.teacher_ckpt()
            teacher_record = self.test(teacher_dir,
                                       self.record(teacher_dir),
                                       osp.join(teacher_dir, 'teacher.py'),
                                       ckpt)
        report = write_report(args, self.work, self.test_sets, teacher,
                              teacher_record, scores, selected, results)
        if 'KDAS' in selected:
            atomic_write_text(
                osp.join(self.work, SELECTED_CONFIG),
                selected_config(args, self.test_sets, selected['KDAS']))
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
        write_json(osp.join(self.work, 'rerun.json'), dict(runs=rows))
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
                                       record['iters'], self.args.val_key))
        if record['distilled']:  # what ships
            return (osp.join(run_dir, 'student_config.py'),
                    osp.join(run_dir, f'iter_{record["iters"]}_student.pth'))
        return (osp.join(run_dir, f'{run.family}.py'),
                osp.join(run_dir, f'iter_{record["iters"]}.pth'))


def run_study(args: argparse.Namespace,
              runner: Callable[[List[str], str], None] = run_command
              ) -> int:
    """What ``tools/kd_study.py`` does: print the plan, then (unless
    ``dry_run``) run the protocol and ``rerun``.

    Args:
        args: The study's settings (:func:`.settings.load_study`) with the
            tool's arguments (``data_root``, ``work_dir``, ``ledger``,
            ``dry_run``, ``rerun``, ``accept_teacher_disagreement``).
        runner: Runs one command (:func:`.runner.run`; tests pass a fake).

    Returns:
        int: The exit status: 0, or 2 when a check of the protocol
        stopped it (the message is on stderr).
    """
    args.data_root = osp.abspath(args.data_root)
    work = osp.abspath(args.work_dir)
    ledger = args.ledger and osp.abspath(args.ledger)
    try:
        test_sets = find_test_sets(args.data_root)
    except FileNotFoundError:
        if not args.dry_run:
            raise
        test_sets = []
    try:
        val, made = validation_split(args, work, ledger, write=not
                                     args.dry_run)
    except (FileNotFoundError, ValueError) as err:
        print(f'kd_study: stopped: {err}', file=sys.stderr)
        return 2
    num_test = count_images(args.data_root, test_sets)
    num_train = count_images(args.data_root, [], train=True)
    print(f'Test sets: {", ".join(test_sets) or "none found"} ({num_test} '
          f'images); validation split: {len(val)} of {num_train} training '
          f'images ({made}).')
    args.speed_source = 'seconds per step from the study config'
    if args.speed is None:
        try:
            args.speed = machine_speed(args, work, save=not args.dry_run)
        except ProtocolError as err:
            print(f'kd_study: stopped: {err}', file=sys.stderr)
            return 2
        args.speed_source = 'seconds per step measured on this machine'
    steps, notes = plan_test_sets(
        plan_steps(args, len(val), num_test, num_train,
                   recorded_selection(args, work, ledger)),
        work, ledger, args.data_root, test_sets, args.speed)
    done = steps_done(steps, work, ledger, test_sets)
    where = (f'{args.gpus} GPU(s)' if args.device == 'cuda' else
             f'{args.threads} CPU threads')
    print(format_plan(steps, args.budget_minutes, done, work,
                      f'{where}, {args.speed_source}'), flush=True)
    if notes:
        print('\n'.join(notes), flush=True)
    if args.dry_run:
        return 0
    if runner is run_command:
        runner = functools.partial(runner, threads=args.threads,
                                   device=args.device)
    experiment = Experiment(args, test_sets, runner)
    try:
        report = experiment()
        print(report)
        print(f'wrote {osp.join(args.work_dir, "results.md")}, '
              'results_<test set>.png and '
              f'{osp.join(args.work_dir, SELECTED_CONFIG)}')
        if args.rerun:
            print(experiment.rerun(args.rerun))
            print(f'wrote {osp.join(args.work_dir, "rerun.md")}')
    except ProtocolError as err:
        print(f'kd_study: stopped: {err}', file=sys.stderr)
        return 2
    return 0

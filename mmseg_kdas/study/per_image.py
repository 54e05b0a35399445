"""Where distilling helps or hurts out of domain, frame by frame.

Each tested model of a finished study (the chosen teacher; the methods of
``results.json``, seed by seed) runs in-process: the config and checkpoint
the study tested (:meth:`.Experiment._tested_files`) as a test config of
the set (:func:`.configs.test_config`), the runner's ``load_checkpoint``
and ``test_step``, its :class:`PolypMetric`'s probability, resize and map
(:func:`per_image_figures`). Its mean ``dice`` must be its recorded
``<set>/mDice`` (to ``1e-6``), else the tool refuses. Writes
``<work>/per_image/<set>/<method>_seed<n>.csv`` (read when there, checked
again) and ``per_image/<set>.md``.
"""
import csv
import glob
import io
import os.path as osp
import re
import statistics
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmseg.registry import METRICS, MODELS

from mmseg_kdas.evaluation import PolypMetric
from mmseg_kdas.evaluation.per_image import (SIZE_BINS, SMALL_SHARE,
                                             per_image_figures, size_bins,
                                             summarise_by_size)
from mmseg_kdas.utils.atomic import atomic_write_text
from .configs import test_config
from .ledger import RECORD, read_json
from .protocol import RESULTS, ProtocolError, best_checkpoint
from .stats import paired_test

__all__ = ['CSV_COLUMNS', 'DEFAULT_METHODS', 'StudyModel', 'tested_runs',
           'predict_set', 'check_recorded_dice', 'format_per_image',
           'per_image']

CSV_COLUMNS = ('image', 'gt_share', 'pred_share', 'dice', 'iou',
               'dice_at_threshold', 'iou_at_threshold', 'false_positive',
               'missed')
DEFAULT_METHODS = ('teacher', 'student', 'KDAS (paper)', 'KDAS (tuned)')
TOLERANCE = 1e-6
#: The Dice difference from which a frame counts as better or worse.
MARGIN = 0.05


class StudyModel(NamedTuple):
    """A tested model of the study: its method, seed, files and record."""
    method: str
    seed: int
    run_dir: str
    config: str
    checkpoint: str
    record: dict


def _teacher_run(work: str, results: dict) -> StudyModel:
    seed = int(results['teacher']['seed'])
    run_dir = osp.join(work, 'teacher', f'seed{seed}')
    record = read_json(osp.join(run_dir, RECORD))
    if record is None:
        raise ProtocolError(f'no {RECORD} in {run_dir}')
    best = best_checkpoint({int(i): v for i, v in record['val'].items()})[0]
    found = glob.glob(osp.join(run_dir, f'best_*_iter_{best}.pth'))
    if not found and best == record['iters']:
        found = glob.glob(osp.join(run_dir, f'iter_{best}.pth'))
    if len(found) != 1:
        raise ProtocolError(f'{run_dir}: no single checkpoint of its best '
                            f'iteration, {best} (found {found})')
    return StudyModel('teacher', seed, run_dir,
                      osp.join(run_dir, 'teacher.py'), found[0], record)


def _method_run(work: str, method: str, info: dict, seed: int) -> StudyModel:
    """The run folder of a method's seed: the one of its family whose
    recorded test figures are those ``results.json`` reports."""
    reported = info['seeds'][str(seed)]['test']
    pattern = osp.join(work, 'runs', info['family'], '*', f'seed{seed}')
    records = [(d, read_json(osp.join(d, RECORD)) or {})
               for d in sorted(glob.glob(pattern))]
    found = [(d, r) for d, r in records if all(
        r.get('test', {}).get(k) == v for k, v in reported.items())]
    if len(found) != 1:
        raise ProtocolError(
            f'{method} seed {seed}: {len(found)} runs under {pattern} hold '
            f'the test figures of {RESULTS} ({[d for d, _ in found]})')
    run_dir, record = found[0]
    iters = record['iters']  # a distilled run: what ships, as tested
    files = (('student_config.py', f'iter_{iters}_student.pth')
             if record['distilled'] else
             (f'{info["family"]}.py', f'iter_{iters}.pth'))
    return StudyModel(method, seed, run_dir, osp.join(run_dir, files[0]),
                      osp.join(run_dir, files[1]), record)


def tested_runs(work: str,
                methods: Optional[Sequence[str]] = None,
                seeds: Optional[Sequence[int]] = None) -> List[StudyModel]:
    """The tested models of a finished study work dir, method by method,
    seed by seed: ``methods`` of ``results.json`` or ``'teacher'`` (the
    chosen teacher run; default: those of :data:`DEFAULT_METHODS` there),
    ``seeds`` of the methods (default: all)."""
    results = read_json(osp.join(work, RESULTS))
    if results is None:
        raise ProtocolError(f'no {RESULTS} in {work}: not a finished study')
    present = ['teacher'] + list(results['methods'])
    methods = methods or [m for m in DEFAULT_METHODS if m in present]
    if set(methods) - set(present):
        raise ProtocolError(f'no method {sorted(set(methods) - set(present))}'
                            f' in {work} (it has {present})')
    runs = []
    for method in methods:
        if method == 'teacher':
            runs.append(_teacher_run(work, results))
            continue
        info = results['methods'][method]
        have = sorted(int(s) for s in info['seeds'])
        if set(seeds or have) - set(have):
            raise ProtocolError(f'{method} has seeds {have} only')
        runs += [_method_run(work, method, info, s) for s in seeds or have]
    return runs


def predict_set(config: str, checkpoint: str, data_root: str,
                test_set: str, device: str = 'cpu') -> List[dict]:
    """Per-image figures of a model on ``DATA_ROOT/TestDataset/<set>``, as
    ``tools/test.py`` and the config's :class:`PolypMetric` evaluate it:
    one dict per frame, ``image`` (file name) and the figures of
    :func:`per_image_figures`, in the loader's order."""
    cfg = test_config(config, data_root, [test_set])
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    evaluator = cfg.test_evaluator  # a dict, or a list of them
    metric = METRICS.build(
        evaluator if isinstance(evaluator, dict) else evaluator[0])
    if not isinstance(metric, PolypMetric):
        raise ValueError(f'{config}: test_evaluator is not a PolypMetric')
    if cfg.get('data_preprocessor') is not None:  # as the runner does
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu',
                    revise_keys=[(r'^module\.', '')])  # as the runner
    model.to(device).eval()
    loader = Runner.build_dataloader(
        dict(cfg.test_dataloader, num_workers=0, persistent_workers=False))
    rows = []
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                sample = sample.to_dict()  # as mmengine's Evaluator
                name = sample['img_path']
                prob, gt = metric.sample_probability(sample, name)
                figures = per_image_figures(
                    prob.cpu().numpy(), gt.cpu().numpy(), metric.threshold,
                    metric.min_max_normalize, metric.quantize,
                    metric.protocol)
                rows.append(dict(image=osp.basename(name), **figures))
    return rows


def check_recorded_dice(rows: Sequence[dict], run: StudyModel,
                        test_set: str, tol: float = TOLERANCE) -> None:
    """Refuse per-image figures whose mean ``dice`` is not the run's
    recorded ``<set>/mDice`` (nor, where recorded, the mean
    ``dice_at_threshold`` its ``<set>/Dice``)."""
    test = run.record.get('test', {})
    for column, key in (('dice', 'mDice'), ('dice_at_threshold', 'Dice')):
        recorded = test.get(f'{test_set}/{key}')
        mean = float(np.mean([float(r[column]) for r in rows]))
        if (key == 'mDice' or recorded is not None) and not (
                recorded is not None and abs(mean - recorded) <= tol):
            raise ProtocolError(
                f'{run.method} seed {run.seed} ({run.run_dir}): its mean '
                f'per-image {column} on {test_set} is {mean!r}, its record '
                f'says {test_set}/{key} = {recorded!r}: not the frames the '
                'study tested (another data root, config, checkpoint or '
                'device?)')


def _write_csv(path: str, rows: Sequence[dict]) -> None:
    out = io.StringIO()  # floats as repr: they read back exactly
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction='ignore',
                            lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())


def _read_csv(path: str) -> List[dict]:
    with open(path, newline='') as f:
        return [dict(r, **{k: float(r[k]) for k in CSV_COLUMNS[1:7]},
                     **{k: r[k] == 'True' for k in CSV_COLUMNS[7:]})
                for r in csv.DictReader(f)]


def _table(head: Sequence, body: List[Sequence]) -> List[str]:
    return ['| ' + ' | '.join(map(str, head)) + ' |', '|---' * len(head) +
            '|'] + ['| ' + ' | '.join(map(str, row)) + ' |' for row in body]


def _frame_means(tables: Sequence[Tuple[StudyModel, List[dict]]],
                 method: str) -> np.ndarray:
    """Per frame, the Dice of ``method`` averaged over its seeds."""
    return np.mean([[r['dice'] for r in rows]
                    for run, rows in tables if run.method == method], axis=0)


def _better_worse(diff: np.ndarray, labels: Sequence[str],
                  size_bin: str) -> str:
    """``'12 / 3'``: frames of ``size_bin`` whose ``diff`` (a method's Dice
    minus the plain student's, means over seeds) is at least
    :data:`MARGIN` above / below zero."""
    margin = MARGIN - 1e-9  # 0.55 - 0.6 counts as 0.05 below
    in_bin = np.array([label == size_bin for label in labels])
    return (f'{int(np.sum(in_bin & (diff >= margin)))} / '
            f'{int(np.sum(in_bin & (diff <= -margin)))}')


def format_per_image(tables: Sequence[Tuple[StudyModel, List[dict]]],
                     test_set: str, small: float = SMALL_SHARE) -> str:
    """The markdown summary of ``(model, per-image rows)`` by size bin."""
    stats = summarise_by_size([dict(r, model=(run.method, run.seed))
                               for run, rows in tables for r in rows], small)
    methods = list(dict.fromkeys(run.method for run, _ in tables))
    seeds = {m: [r.seed for r, _ in tables if r.method == m] for m in methods}
    labels = size_bins([r['gt_share'] for r in tables[0][1]], small)
    bins = [b for b in SIZE_BINS if b in labels]

    def mean(m: str, b: str, key: str) -> float:
        return statistics.mean(stats[(m, s), b][key] for s in seeds[m])

    lines = [
        f'# Per-image figures on {test_set}', '', f'{len(labels)} frames. '
        f'Size: the share of the frame the mask covers, small < {small:g} '
        '<= large (this project\'s boundary, `--small`); empty: no mask. '
        'Dice: PolypMetric\'s per-image mean Dice (256 thresholds), whose '
        f'mean is each run\'s recorded {test_set}/mDice (checked). False '
        'positive: a predicted region (at the metric\'s threshold, '
        '8-connected) off the mask; missed: no predicted pixel on it. '
        'Mean over seeds (' +
        ', '.join(f'{m}: {len(s)}' for m, s in seeds.items()) + ').', '',
        '## Mean Dice per size bin', ''
    ] + _table(['bin', 'frames'] + methods, [
        [b, labels.count(b)] + [f'{mean(m, b, "dice"):.4f}' for m in methods]
        for b in bins
    ]) + ['', '## False-positive rate / missed rate per size bin', ''
          ] + _table(['bin'] + methods, [[b] + [
              f'{mean(m, b, "false_positive_rate"):.3f} / '
              f'{mean(m, b, "missed_rate"):.3f}' for m in methods
          ] for b in bins])
    others = [m for m in methods if m not in ('teacher', 'student')]
    if 'student' in methods and others:
        body = []
        for m, b in ((m, b) for m in others for b in bins):
            diffs = {s: stats[(m, s), b]['dice'] -
                     stats[('student', s), b]['dice']
                     for s in seeds[m] if s in seeds['student']}
            test = paired_test(list(diffs.values()))
            body.append([m, b] + [
                f'{diffs[s]:+.4f}' if s in diffs else '-'
                for s in seeds['student']
            ] + [f'{statistics.mean(diffs.values()):+.4f}' if diffs else '-'
                 ] + (['-', '-'] if test is None else
                      [f'{test[0]:+.2f}', f'{test[1]:.2g}']))
        lines += ['', '## Mean Dice minus the plain student\'s, paired by '
                  'seed', '', 'Paired t over the seeds (n - 1 degrees of '
                  'freedom) and its two-sided p.', ''] + _table(
                      ['method', 'bin'] + [
                          f'seed {s}' for s in seeds['student']] +
                      ['mean', 't', 'p'], body)
        student = _frame_means(tables, 'student')
        lines += ['', '## Frame by frame: the method against the plain '
                  'student', '', f'Per frame, the Dice of each (mean over '
                  'its seeds); frames where the method is at least '
                  f'{MARGIN:g} above the plain student / at least {MARGIN:g}'
                  ' below it, per size bin.', ''] + _table(
                      ['method'] + [f'{b}: better / worse' for b in bins],
                      [[m] + [_better_worse(diff, labels, b)
                              for b in bins]
                       for m in others
                       for diff in [_frame_means(tables, m) - student]])
    if 'teacher' in methods:
        right = [r['dice'] >= 0.5 for run, rows in tables
                 if run.method == 'teacher' for r in rows]
        body = [[run.method, run.seed] + [sum(
            right[i] and r['dice'] < 0.5 and labels[i] == b
            for i, r in enumerate(rows)) for b in bins]
            for run, rows in tables if run.method != 'teacher']
        lines += ['', '## Frames the teacher gets right (Dice >= 0.5) and '
                  'the model not (< 0.5)', ''] + _table(
                      ['method', 'seed'] + bins, body)
    return '\n'.join(lines) + '\n'


def per_image(work: str, data_root: str, test_set: str,
              methods: Optional[Sequence[str]] = None,
              seeds: Optional[Sequence[int]] = None,
              small: float = SMALL_SHARE, device: str = 'cpu',
              log: Callable[[str], None] = print) -> str:
    """Write the per-image CSVs of the tested models (:func:`tested_runs`)
    and their summary, ``per_image/<set>.md``; returns the summary."""
    if not osp.isdir(osp.join(data_root, 'TestDataset', test_set)):
        raise FileNotFoundError(f'no test set {data_root}/TestDataset/'
                                f'{test_set}')
    tables: List[Tuple[StudyModel, List[dict]]] = []
    for run in tested_runs(work, methods, seeds):
        slug = re.sub(r'[^A-Za-z0-9.-]+', '_', run.method).strip('_')
        path = osp.join(work, 'per_image', test_set,
                        f'{slug}_seed{run.seed}.csv')
        if osp.isfile(path):
            rows = _read_csv(path)
        else:
            log(f'{run.method} seed {run.seed}: {run.checkpoint}')
            rows = predict_set(run.config, run.checkpoint, data_root,
                               test_set, device)
        check_recorded_dice(rows, run, test_set)
        if tables and [r['image'] for r in rows] != [
                r['image'] for r in tables[0][1]]:
            raise ProtocolError(f'{path}: not the frames of '
                                f'{tables[0][0].method}: a stale CSV?')
        if not osp.isfile(path):
            _write_csv(path, rows)
        tables.append((run, rows))
    report = format_per_image(tables, test_set, small)
    atomic_write_text(osp.join(work, 'per_image', f'{test_set}.md'), report)
    return report

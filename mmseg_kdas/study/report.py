"""The study's report: ``results.md``, ``results.json`` and the plots.

Teachers, gate and grids, then per test set the mean +- std of every
method over seeds and their paired differences to the plain student
(:mod:`.stats`); ``results.json`` holds the same figures as data.
"""
import argparse
import collections
import math
import os
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mmseg_kdas.utils.atomic import atomic_write_text
from .configs import protocol_settings
from .ledger import tested_sets, untested_sets, write_json
from .protocol import (MEASURES, RESULTS, ROOT, Scores, Setting, final_methods,
                       setting_label)
from .stats import gap_share, head_to_head, paired_test, ranking, summarize


def _fmt_diffs(diffs: Dict[int, float]) -> str:
    return ', '.join(f'{d:+.4f}' for _, d in sorted(diffs.items()))


def _fmt_test(test: Optional[Tuple[float, float]]) -> str:
    """``'+2.31 | 0.082'``: a paired t and its two-sided p, or dashes."""
    return '- | -' if test is None else f'{test[0]:+.2f} | {test[1]:.2g}'


def _head_to_head(args: argparse.Namespace, ts: str,
                  results: Dict[str, Dict[int, dict]]) -> List[str]:
    """The lines comparing each method of the study config's
    ``head_to_head`` with every other distilled method on ``ts``."""
    lines = []
    key = f'{ts}/mDice'
    others = [m for m in results if m != 'student']
    for method in getattr(args, 'head_to_head', None) or []:
        if method not in results:
            continue
        rows = head_to_head(results, method, others, key)
        if not rows:
            continue
        seeds = sorted(results[method])
        lines += [
            '', f'{ts} mean Dice of {method} minus each other distilled '
            f'method, paired by seed (seeds {seeds}; paired t, '
            f'{len(seeds) - 1} degrees of freedom, and its two-sided p):', '',
            '| other method | per-seed difference | mean difference | '
            'paired t | p |', '|---|---|---|---|---|'
        ] + [
            f'| {r["other"]} | {_fmt_diffs(r["diffs"])} | {r["mean"]:+.4f} '
            f'| {_fmt_test(None if r["t"] is None else (r["t"], r["p"]))} |'
            for r in rows
        ]
    return lines


def _ranking(test_sets: Sequence[str], teacher_record: dict,
             results: Dict[str, Dict[int, dict]]) -> List[str]:
    """The students ranked by mean Dice on each test set, side by side
    (with the teacher's figure), e.g. in domain and out of domain."""
    if not test_sets:
        return []
    ranked = {ts: ranking(results, f'{ts}/mDice') for ts in test_sets}
    means = {
        ts: {m: statistics.mean(r['test'][f'{ts}/mDice']
                                for r in results[m].values())
             for m in results} for ts in test_sets
    }
    lines = [
        'The students ranked by mean Dice (mean over seeds) on each test '
        'set, side by side; the teacher: ' + ', '.join(
            f'{ts} {teacher_record["test"][f"{ts}/mDice"]:.4f}'
            for ts in test_sets) + '.', '',
        '| rank | ' + ' | '.join(test_sets) + ' |',
        '|---|' + '---|' * len(test_sets)
    ]
    for i in range(len(results)):
        lines.append(f'| {i + 1} | ' + ' | '.join(
            f'{ranked[ts][i]} ({means[ts][ranked[ts][i]]:.4f})'
            for ts in test_sets) + ' |')
    return lines + ['']


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
        test_sets: The test sets of the data root. Only those every run
            has figures of are reported; a line names each other set
            (:func:`reported_sets`), in ``results.json`` too
            (``test_set_notes``, only when there is one).
        teacher: :meth:`Experiment.teachers`' choice with ``lead`` and
            ``student_val``.
        teacher_record: The chosen teacher run's record (with ``test``).
        scores: ``{family: {setting: validation mean Dice}}`` of the grid.
        selected: The chosen setting per family.
        results: ``{method: {seed: record with test}}``.

    Returns:
        str: The markdown.
    """
    test_sets, notes = reported_sets(test_sets, teacher_record, results)
    lines = [
        f'Protocol: '
        f'{"from scratch" if args.from_scratch else "ImageNet backbones"} '
        f'on {_shown_path(args.data_root)}; '
        f'{args.size}x{args.size}, batch {args.batch_size}, multi-scale '
        f'{"/".join(map(str, args.rates))} one rate per iteration in turn, '
        f'binarised masks, AdamW lr {args.lr:g} with a cosine decay to 0. '
        f'Trained on train-minus-val, validated on {args.val_set} '
        f'({_shown_path(args.split_file)}). Teachers (PVTv2-B2): '
        f'{args.teacher_iters} iterations, seeds '
        f'{list(args.teacher_seeds)}. Students (PVTv2-B0): {args.iters} '
        f'iterations; grid at seed 0, chosen by {args.val_key} at the last '
        f'iteration; final seeds {list(args.seeds)}, evaluated with '
        'PolypMetric at the last iteration, students as exported.', '',
        f'Teachers ({args.val_key}, best checkpoint; last iteration):', ''
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
        f'Grid ({args.val_key} at the last iteration, seed 0; chosen in '
        'bold):',
        '', '| method | setting | validation mDice |', '|---|---|---|'
    ]
    for family, grid in args.grids.items():
        for setting in grid:
            score = scores[family][setting]
            label = setting_label(setting)
            cell = 'diverged' if not math.isfinite(score) else f'{score:.4f}'
            if setting == selected[family]:
                label, cell = f'**{label}**', f'**{cell}**'
            lines.append(f'| {family} | {label} | {cell} |')
    lines.append('')
    if notes:
        lines += notes + ['']
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
                'freedom, and its two-sided p; "-" where the differences do '
                'not vary)' +
                (', and the share of the teacher - student gap '
                 f'({t_dice:.4f} - {s_dice:.4f}) that the method closes:'
                 if ahead else ':'), ''
            ]
            if ahead:
                lines += [
                    '| method | per-seed difference | mean difference | '
                    'paired t | p | gap closed |', '|---|---|---|---|---|---|'
                ]
            else:
                lines += [
                    '| method | per-seed difference | mean difference | '
                    'paired t | p |', '|---|---|---|---|---|'
                ]
            for method, diffs in dice['paired'].items():
                mean_diff = (statistics.mean(diffs.values())
                             if diffs else float('nan'))
                test = paired_test(list(diffs.values()))
                row = (f'| {method} | {_fmt_diffs(diffs)} | {mean_diff:+.4f}'
                       f' | {_fmt_test(test)}')
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
        lines += _head_to_head(args, ts, results)
        lines.append('')
    lines += _ranking(test_sets, teacher_record, results)
    minutes = ', '.join(
        f'{method} {statistics.mean(r["minutes"] for r in seeds.values()):.1f}'
        for method, seeds in results.items())
    teacher_minutes = ', '.join(
        f'{m:.1f}' for _, m in sorted(teacher['minutes'].items()))
    lines.append(f'Training wall time (minutes per run): teachers '
                 f'{teacher_minutes}; {minutes}.')
    report = '\n'.join(lines) + '\n'
    atomic_write_text(osp.join(work, 'results.md'), report)
    summary = results_summary(args, test_sets, teacher, teacher_record,
                              scores, selected, results)
    if notes:
        summary['test_set_notes'] = notes
    write_json(osp.join(work, RESULTS), summary)
    for ts in test_sets:
        plot(osp.join(work, f'results_{ts}.png'), ts, teacher_record,
             results, args.val_set)
    return report


def reported_sets(test_sets: Sequence[str], teacher_record: dict,
                  results: Dict[str, Dict[int, dict]]
                  ) -> Tuple[List[str], List[str]]:
    """The test sets of the report: those of ``test_sets`` that the
    teacher and every run of ``results`` have figures of.

    Returns:
        tuple: The sets, and a line on each other set: one of
        ``test_sets`` that some run lacks (naming the runs), one that a
        record holds and the data root does not (its figures stay in the
        records, measured on data this report cannot name).
    """
    runs = {'teacher': teacher_record}
    runs.update({
        f'{method} seed {seed}': record
        for method, seeds in results.items()
        for seed, record in sorted(seeds.items())
    })
    shown, notes = [], []
    for ts in test_sets:
        lacking = [name for name, r in runs.items() if untested_sets(r, [ts])]
        if lacking:
            notes.append(f'Test set {ts}: not reported, no figures of it '
                         f'for {", ".join(lacking)}.')
        else:
            shown.append(ts)
    recorded = {ts for r in runs.values() for ts in tested_sets(r)}
    for ts in sorted(recorded - set(test_sets)):
        notes.append(f'Test set {ts}: recorded, not in the data root (not '
                     'reported; its figures stay in the records).')
    return shown, notes


def grid_summary(scores: Scores, selected: Dict[str, Setting]) -> dict:
    """``grid`` (``{family: [{setting, score, selected}]}``) and
    ``selected`` (``{family: setting}``), as labels."""
    return dict(
        grid={
            family: [
                dict(setting=setting_label(s), score=scores[family][s],
                     selected=s == selected[family]) for s in by_setting
            ] for family, by_setting in scores.items()
        },
        selected={f: setting_label(s)
                  for f, s in selected.items()})


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

    ``tools/kd_study.py --cards`` writes the configs' READMEs
    and metafiles from it. Keys: ``date`` (written), ``machine`` (where the
    teacher and the final-stage runs trained, :func:`trained_on`),
    ``protocol`` (the settings of ``protocol.json``), ``test_sets``,
    ``teacher`` (the choice, each run's best and last validation value,
    the gate, minutes and the chosen run's ``test`` metrics), ``grid``
    (``{family: [{setting, score, selected}]}``), ``selected`` and
    ``methods`` (``{method: {family, setting, seeds: {seed: {test,
    val_last, minutes}}}}``, in report order).
    """
    runs = final_methods(args.methods, selected)
    return dict(
        date=time.strftime('%Y-%m-%d'),
        machine=trained_on([teacher_record] + [
            rec for seeds in results.values() for rec in seeds.values()
        ]),
        protocol=dict(protocol_settings(args), seeds=list(args.seeds),
                      from_scratch=args.from_scratch),
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
         results: Dict[str, Dict[int, dict]], val_set: str = 'val') -> None:
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
    ax2.set_ylabel(f'{val_set} mean Dice (mean over seeds)')
    ax2.legend(fontsize=7)
    fig.tight_layout()
    atomic_dir = osp.dirname(path)
    tmp = osp.join(atomic_dir, f'.{osp.basename(path)}.tmp.png')
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)

"""The study's results in the configs' model cards.

:func:`update_cards` is what ``tools/kd_study.py --cards
[WORK_DIR] [--check]`` does. ``WORK_DIR`` is a finished
``tools/kd_study.py`` work dir: its
``results.json``, ``results.md`` and ``results_<set>.png`` are copied
into ``docs/polyp_experiment/`` (what is committed), and ``rerun.md`` and
``rerun.json`` where a rerun from scratch was made (``kd_study.py
--rerun``). The cards are then written from
``docs/polyp_experiment/results.json`` alone:

- ``configs/kdas/metafile.yaml`` and ``configs/kd_baselines/metafile.yaml``
  (OpenMMLab form: ``Collections``; ``Models`` with ``Config``,
  ``Metadata`` (training data, batch size, crop size, iterations,
  architecture, training resources, training minutes, the setting, the
  teacher and the student baseline with their own ``Results``) and
  ``Results`` (per test set, the mean over seeds of every measure and the
  mean Dice's standard deviation));
- the block between the ``model_cards`` markers of
  ``configs/kdas/README.md`` and ``configs/kd_baselines/README.md``:
  teacher, student baseline and the folder's distilled students side by
  side, per test set;
- the block between the markers of ``docs/en/study.md`` (:data:`STUDY`):
  ``results.md``, the plots and ``rerun.md``.

Without results (nothing committed yet) every block says so and no model
has ``Results`` (the metafiles show the size, batch and iterations of
:data:`PRESET`).
``--check`` writes nothing and exits with status 1, naming every file that
differs from what it would write (a test runs it on the repository, so the
cards cannot drift from the committed results).
"""
import argparse
import functools
import json
import os.path as osp
import shutil
import statistics
import sys
from typing import Dict, List, Optional

import yaml

from mmseg_kdas.utils.atomic import atomic_write, atomic_write_text
from mmseg_kdas.utils.benchmark import markdown_table
from .protocol import MEASURES, RESULTS, ROOT, setting_label
from .settings import load_study
from .stats import summarize

#: The study config of the committed results: the configs of the cards,
#: the grids, and the size, batch and iterations a card shows before its
#: study has run. Read on first use (:func:`preset`), not at import.
PRESET = 'configs/kd_study/polyp-cpu-128.py'
#: Shipped configs of a tuned method's chosen setting (the label of
#: :func:`.setting_label`): its card names this config, not the family's.
#: A test checks that each holds its setting.
TUNED_CONFIGS = {
    'KDAS': {
        'α = 0.3, T = 4':
        'configs/kdas/kdas-t4_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_'
        'pranet-352x352.py'
    },
}


@functools.lru_cache(maxsize=None)
def preset() -> argparse.Namespace:
    """The settings of :data:`PRESET` (:func:`.load_study`)."""
    return load_study(osp.join(ROOT, PRESET))


def _defaults() -> dict:
    p = preset()
    return dict(size=p.size, batch_size=p.batch_size, iters=p.iters)


DOCS = 'docs/polyp_experiment'
#: The page of the study, whose block holds the whole report.
STUDY = 'docs/en/study.md'
#: The front page, whose block holds the summary of the results.
SUMMARY = 'README.md'
BEGIN = ('<!-- model_cards: begin (written by '
         'tools/kd_study.py --cards from '
         'docs/polyp_experiment/results.json; do not edit) -->')
END = '<!-- model_cards: end -->'
RERUN = ('rerun.md', 'rerun.json')
PENDING = ('That run has not been made yet: no figure of it is here.')
TRAINING_DATA = ('PraNet train-minus-val (1,300 images; '
                 'mmseg_kdas/datasets/splits/pranet_val.txt held out)')
TEACHER_NAME, TEACHER_BACKBONE = 'Polyp-PVT, PVTv2-B2', 'PVTv2-B2'
STUDENT_NAME, STUDENT_BACKBONE = 'Polyp-PVT, PVTv2-B0', 'PVTv2-B0'
_SLUG = 'polyp-pvt-b2_polyp-pvt-b0_pranet-128x128'
#: How the README tables name a method of the experiment: "KDAS (paper)"
#: is this repository's run at the paper's setting, not the paper's figures.
DISPLAY = {'KDAS (paper)': "KDAS at the paper's setting"}


def _model(prefix: str, suffix: str, collection: str, family: str,
           setting: Optional[str]) -> dict:
    """A metafile model: name, collection, config and the description of
    its setting (None: it exists only when the experiment made it)."""
    return dict(
        name=f'{prefix}_{_SLUG}{suffix}',
        collection=collection,
        config=preset().families[family],
        setting=setting,
        tuned=TUNED_CONFIGS.get(family, {}) if suffix == '_tuned' else {})


@functools.lru_cache(maxsize=None)
def cards() -> Dict[str, dict]:
    """The model cards: per folder, its collections and, per method of the
    experiment's final stage, the metafile model (name, collection,
    config, the setting's description when the experiment has not run, and
    ``tuned``: the shipped configs of chosen settings,
    :data:`TUNED_CONFIGS`)."""
    return _cards(preset().grids)


def _cards(grids: Dict[str, list]) -> Dict[str, dict]:
    """The cards of :func:`cards`, with the grids of the tuned
    baselines (whose settings their descriptions list)."""
    return {
        'configs/kdas':
        dict(
            collections=[
                dict(
                    Name='KDAS',
                    Title='KDAS: Knowledge Distillation via Attention '
                    'Supervision Framework for Polyp Segmentation',
                    URL='https://arxiv.org/abs/2312.08555')
            ],
            models={
                'KDAS (paper)':
                _model('kdas', '_paper', 'KDAS', 'KDAS',
                       'α = 0.3, T = 2, w_AT = 1, w_SGM = 1 (the paper\'s)'),
                # only when the grid chose another setting than the paper's
                'KDAS (tuned)': _model('kdas', '_tuned', 'KDAS', 'KDAS', None),
                'KDAS-ref':
                _model('kdas-ref', '', 'KDAS', 'KDAS-ref',
                       'the authors\' effective objective, '
                       'L_seg + 0.3·MSE(P1 + P1ᵀ)'),
                'L_AT alone':
                _model('kdas', '_at-only', 'KDAS', 'KDAS',
                       'α = 0.3, T = 2, w_SGM = 0 (the paper\'s ablation: '
                       'L_AT alone)'),
                'L_SGM alone':
                _model('kdas', '_sgm-only', 'KDAS', 'KDAS',
                       'α = 0.3, w_AT = 0 (the paper\'s ablation: L_SGM '
                       'alone)'),
            }),
        'configs/kd_baselines':
        dict(
            collections=[
                dict(
                    Name='PixelKD',
                    Title='Distilling the Knowledge in a Neural Network',
                    URL='https://arxiv.org/abs/1503.02531'),
                dict(
                    Name='CWD',
                    Title='Channel-wise Knowledge Distillation for Dense '
                    'Prediction',
                    URL='https://arxiv.org/abs/2011.13256'),
                dict(
                    Name='AT',
                    Title='Paying More Attention to Attention: Improving the '
                    'Performance of Convolutional Neural Networks via '
                    'Attention Transfer',
                    URL='https://arxiv.org/abs/1612.03928'),
            ],
            models={
                f'{family} (tuned)': _model(
                    prefix, '_tuned', family, family,
                    f'{what} chosen on PraNet-val from '
                    f'{"; ".join(setting_label(s) for s in grid)}')
                for family, prefix, what in (
                    ('PixelKD', 'pkd', 'T and weight'),
                    ('CWD', 'cwd', 'T and weight'), ('AT', 'at', 'the weight'))
                for grid in [grids[family]]
            }),
    }


def _config(spec: dict, run: Optional[dict]) -> str:
    """The config of a card: a shipped config of the chosen setting
    (:data:`TUNED_CONFIGS`) when there is one, else the family's."""
    return spec['tuned'].get(run['setting'], spec['config']) if run else \
        spec['config']


def load_results(root: str) -> Optional[dict]:
    """``docs/polyp_experiment/results.json`` under ``root``, or None."""
    path = osp.join(root, DOCS, RESULTS)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        results = json.load(f)
    for key in ('test_sets', 'teacher', 'methods', 'protocol', 'machine',
                'date'):
        if key not in results:
            raise KeyError(f'{path}: no {key!r}; is it a results.json of '
                           'kd_study.py?')
    if 'student' not in results['methods']:
        raise KeyError(f'{path}: no plain student among the methods')
    return results


def summaries(results: dict) -> Dict[str, Dict[str, dict]]:
    """``{test set: {measure: summarize(...)}}`` (:func:`.summarize`):
    mean, std and per-seed differences to the plain student of every
    method."""
    seeds = {m: run['seeds'] for m, run in results['methods'].items()}
    return {
        ts: {
            m: summarize(seeds, results['teacher'], f'{ts}/{m}')
            for m in MEASURES
        }
        for ts in results['test_sets']
    }


def _results_entries(results: dict, stats: Dict[str, Dict[str, dict]],
                     method: Optional[str]) -> List[dict]:
    """OpenMMLab ``Results`` of a method (None: the teacher): per test
    set, the mean over seeds (and the mean Dice's std)."""
    entries = []
    for ts in results['test_sets']:
        metrics = {}
        for m in MEASURES:
            if method is None:
                metrics[m] = round(results['teacher']['test'][f'{ts}/{m}'],
                                   4)
                continue
            metrics[m] = round(stats[ts][m]['mean'][method], 4)
            if m == 'mDice':
                metrics['mDice std'] = round(stats[ts][m]['std'][method], 4)
        entries.append(
            dict(Task='Polyp Segmentation', Dataset=ts, Metrics=metrics))
    return entries


def _setting(spec: dict, run: dict) -> str:
    """A model's setting: the chosen one of a tuned method, else its
    description (KDAS-ref's objective, the paper's setting)."""
    if spec['setting'] is None or spec['collection'] != 'KDAS':
        return f'{run["setting"]} (chosen on PraNet-val)'
    return spec['setting']


def render_metafile(folder: str, results: Optional[dict]) -> str:
    """The ``metafile.yaml`` of a folder of :func:`cards`."""
    card = cards()[folder]
    protocol = results['protocol'] if results else _defaults()
    stats = summaries(results) if results else None
    collections = [
        dict(
            Name=c['Name'],
            License='Apache License 2.0',
            Metadata={'Training Data': [TRAINING_DATA]},
            Paper=dict(Title=c['Title'], URL=c['URL']),
            README=f'{folder}/README.md',
            Frameworks=['PyTorch']) for c in card['collections']
    ]
    models = []
    for method, spec in card['models'].items():
        seeds = results['methods'].get(method) if results else None
        if results and seeds is None:
            continue  # e.g. KDAS (tuned) when the grid chose the paper's
        if not results and spec['setting'] is None:
            continue
        teacher = dict(Name=TEACHER_NAME, Config=preset().teacher)
        student = dict(Name=STUDENT_NAME,
                       Config=preset().families['student'])
        metadata = {
            'Training Data': TRAINING_DATA,
            'Batch Size': protocol['batch_size'],
            'crop size': f'({protocol["size"]},{protocol["size"]})',
            'Iterations': protocol['iters'],
            'Architecture': ['PVTv2-B0', 'PolypPVTHead'],
            'Training Resources': '2 CPU cores',
        }
        if seeds is not None:
            metadata['Setting'] = _setting(spec, seeds)
            metadata['Seeds'] = [int(s) for s in seeds['seeds']]
            metadata['Training Time (min)'] = round(
                statistics.mean(r['minutes']
                                for r in seeds['seeds'].values()), 1)
            teacher['Results'] = _results_entries(results, stats, None)
            student['Results'] = _results_entries(results, stats, 'student')
        else:
            metadata['Setting'] = spec['setting']
        metadata['Teacher'] = teacher
        metadata['Student'] = student
        model = {
            'Name': spec['name'],
            'In Collection': spec['collection'],
            'Config': _config(spec, seeds),
            'Metadata': metadata,
        }
        if seeds is not None:
            model['Results'] = _results_entries(results, stats, method)
        models.append(model)
    header = (
        f'# OpenMMLab metafile of {folder}, written by\n'
        '# tools/kd_study.py --cards from '
        'docs/polyp_experiment/results.json\n'
        '# (do not edit). Models are the runs of the KD experiment\'s '
        'protocol\n'
        '# (tools/kd_study.py: from scratch, '
        f'{protocol["size"]}x{protocol["size"]},\n'
        '# 2 CPU cores, settings chosen on PraNet-val), derived from '
        'Config; Results\n'
        '# are means over seeds on each test set'
        + (', teacher and student baseline\n# in Metadata.\n'
           if results else ';\n# that protocol has not been run yet, so no '
           'model has Results.\n'))
    body = yaml.safe_dump(
        dict(Collections=collections, Models=models),
        sort_keys=False,
        allow_unicode=True,
        width=1000)
    return header + body


def _row(name: str, backbone: str, setting: str, config: str, ts: str,
         results: dict, stats: Dict[str, Dict[str, dict]],
         method: Optional[str]) -> List[str]:
    """A README table row of a method (None: the teacher) on ``ts``."""
    if method is None:
        cells = [
            f'{results["teacher"]["test"][f"{ts}/{m}"]:.4f}'
            for m in MEASURES
        ]
        n = 1
    else:
        cells = [
            f'{stats[ts][m]["mean"][method]:.4f} ± '
            f'{stats[ts][m]["std"][method]:.4f}' for m in MEASURES
        ]
        n = len(results['methods'][method]['seeds'])
    diffs = stats[ts]['mDice']['paired'].get(method)
    diff = ''
    if diffs:
        values = [d for _, d in sorted(diffs.items(), key=lambda i: int(i[0]))]
        diff = (f'{statistics.mean(values):+.4f} (' +
                ', '.join(f'{d:+.4f}' for d in values) + ')')
    return ([name, backbone, setting, f'[config](../../{config})',
             str(n)] + cells + [diff])


def render_readme_block(folder: str, results: Optional[dict]) -> str:
    """The results block of a config folder's README."""
    if results is None:
        return PENDING
    card = cards()[folder]
    t = results['teacher']
    p = results['protocol']
    lines = [
        f'Written {results["date"]} by `kd_study.py` from runs '
        f'trained on {results["machine"]} ({p["size"]}x{p["size"]}, batch '
        f'{p["batch_size"]}, students {p["iters"]} iterations, seeds '
        f'{p["seeds"]}; teacher: seed {t["seed"]}, iteration {t["iter"]} of '
        f'{p["teacher_iters"]}, PraNet-val mDice {t["value"]:.4f} against '
        f'the plain student\'s {t["student_val"]:.4f}). Test sets were used '
        'for nothing but these tables. Students are evaluated as '
        'exported, alone; "mDice − student" is the mean and the per-seed '
        'difference to the plain student of the same seed.', ''
    ]
    if not t.get('agreed', True):
        lines[0] += (
            f' The teacher runs\' agreement check failed (their best '
            f'PraNet-val mDice {t["spread"]:.4f} apart, more than the '
            f'protocol\'s {t["tolerance"]:g}): these '
            'figures hold for this one teacher run, not for the teacher '
            'recipe.')
    stats = summaries(results)
    for ts in results['test_sets']:
        header = (['model', 'backbone', 'setting', 'config', 'seeds'] +
                  [f'{ts} {m}' for m in MEASURES] +
                  ['mDice − student'])
        rows = [
            _row('teacher, Polyp-PVT', TEACHER_BACKBONE,
                 f'seed {t["seed"]}, iteration {t["iter"]}',
                 preset().teacher, ts, results, stats, None),
            _row('student baseline, Polyp-PVT', STUDENT_BACKBONE, '',
                 preset().families['student'], ts, results, stats,
                 'student')
        ]
        for method, spec in card['models'].items():
            run = results['methods'].get(method)
            if run is not None:
                rows.append(
                    _row(DISPLAY.get(method, method), STUDENT_BACKBONE,
                         _setting(spec, run), _config(spec, run), ts,
                         results, stats, method))
        lines += [markdown_table(header, rows), '']
    return '\n'.join(lines).rstrip('\n')


def render_summary_block(results: Optional[dict]) -> str:
    """The summary of :data:`SUMMARY` (the front page): every method's
    mean Dice on every test set, its difference to the plain student and
    the share of the teacher's lead it closes."""
    if results is None:
        return 'No run of the study has finished yet.'
    stats = summaries(results)
    sets = results['test_sets']
    seeds = results['protocol']['seeds']
    init = {True: ' from scratch', False: ' from ImageNet-pretrained '
            'backbones'}.get(results['protocol'].get('from_scratch'), '')
    lines = [
        f'From [the study](docs/en/study.md) (written {results["date"]} by '
        f'`tools/kd_study.py --cards`): every model trained{init} at '
        f'{results["protocol"]["size"]}x{results["protocol"]["size"]} on '
        'the training images not held out for validation, every '
        'setting chosen on that validation split, the test sets used for '
        f'nothing else; trained on {results["machine"]}. Mean Dice, mean ± '
        f'std over seeds {", ".join(map(str, seeds))} (the teacher: one '
        'run); in brackets the mean difference to the plain student of the '
        f'same seed and its paired t ({len(seeds) - 1} degrees of freedom).',
        ''
    ]
    rows = [['teacher: Polyp-PVT, PVTv2-B2'] + [
        f'{results["teacher"]["test"][f"{ts}/mDice"]:.4f}' for ts in sets
    ]]
    order = [m for m, _, _ in preset().methods if m in results['methods']]
    for method in order + sorted(set(results['methods']) - set(order)):
        name = ('plain student: Polyp-PVT, PVTv2-B0' if method == 'student'
                else DISPLAY.get(method, method))
        setting = results['methods'][method]['setting']
        if method != 'student' and setting != setting_label(()):
            name += f', {setting}'
        cells = []
        for ts in sets:
            dice = stats[ts]['mDice']
            cell = (f'{dice["mean"][method]:.4f} ± '
                    f'{dice["std"][method]:.4f}')
            diffs = dice['paired'].get(method)
            if diffs:
                t = dice['paired_t'][method]
                cell += (f' ({statistics.mean(diffs.values()):+.3f}, t '
                         f'{"-" if t is None else f"{t:+.1f}"})')
            cells.append(cell)
        rows.append([name] + cells)
    lines += [markdown_table(['model'] + sets, rows), '']
    shares = []
    for ts in sets:
        dice = stats[ts]['mDice']
        closed = {m: g for m, g in dice['gap_closed'].items()
                  if g is not None and g > 0}
        if closed:
            best = max(closed, key=closed.get)
            shares.append(
                f'{ts} {closed[best]:.0%} ({DISPLAY.get(best, best)})')
    if shares:
        lines.append('The largest share of the teacher\'s lead over the '
                     'plain student that a distilled student closed: ' +
                     ', '.join(shares) + '.')
    return '\n'.join(lines).rstrip('\n')


def render_study_block(root: str, results: Optional[dict]) -> str:
    """The results block of :data:`STUDY`: results.md and the plots."""
    if results is None:
        return 'No run of this protocol has finished yet.'
    with open(osp.join(root, DOCS, 'results.md')) as f:
        report = f.read().rstrip('\n')
    lines = [
        f'Results on the shared data, as `results.md` has them '
        f'(`{DOCS}/`), written {results["date"]}; its runs trained on '
        f'{results["machine"]}:', '', report, ''
    ]
    for ts in results['test_sets']:
        plot = osp.relpath(f'{DOCS}/results_{ts}.png', osp.dirname(STUDY))
        lines.append(f'![{ts} mean Dice per method, every seed, and the '
                     f'validation curves]({plot})')
    rerun = osp.join(root, DOCS, 'rerun.md')
    if osp.isfile(rerun):
        with open(rerun) as f:
            lines += [
                '', 'Runs of it trained again from scratch (`--rerun`), '
                'every figure against the first run\'s (`rerun.md`; '
                '`rerun.json` has each figure):', '',
                f.read().rstrip('\n')
            ]
    return '\n'.join(lines)


def replace_block(text: str, block: str, path: str) -> str:
    """``text`` with the content between :data:`BEGIN` and :data:`END`."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f'{path}: expected one "{BEGIN}" and one "{END}" '
                         'line')
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f'{head}{BEGIN}\n{block}\n{END}{tail}'


def copy_results(work_dir: str, root: str) -> None:
    """Copy a finished work dir's results into ``docs/polyp_experiment``."""
    src = osp.join(work_dir, RESULTS)
    if not osp.isfile(src):
        raise FileNotFoundError(
            f'{src} not found: is {work_dir} a finished kd_study.py '
            'work dir (its last stage writes results.json)?')
    with open(src) as f:
        test_sets = json.load(f)['test_sets']
    names = [RESULTS, 'results.md'
             ] + [f'results_{ts}.png' for ts in test_sets]
    for name in names:
        if not osp.isfile(osp.join(work_dir, name)):
            raise FileNotFoundError(f'{osp.join(work_dir, name)} not found')
    # a rerun from scratch (kd_study.py --rerun), when made
    names += [n for n in RERUN if osp.isfile(osp.join(work_dir, n))]
    for name in names:
        with open(osp.join(work_dir, name), 'rb') as src_file, \
                atomic_write(osp.join(root, DOCS, name)) as dst_file:
            shutil.copyfileobj(src_file, dst_file)


def render_all(root: str) -> Dict[str, str]:
    """``{path relative to root: its new text}`` for every card."""
    results = load_results(root)
    out = {}
    for folder in cards():
        out[f'{folder}/metafile.yaml'] = render_metafile(folder, results)
        out[f'{folder}/README.md'] = render_readme_block(folder, results)
    out[STUDY] = render_study_block(root, results)
    out[SUMMARY] = render_summary_block(results)
    files = {}
    for rel, content in out.items():
        path = osp.join(root, rel)
        if rel.endswith('.yaml'):
            files[rel] = content
        else:
            with open(path, encoding='utf-8') as f:
                files[rel] = replace_block(f.read(), content, path)
    return files


def update_cards(root: str,
                 work_dir: Optional[str] = None,
                 check: bool = False) -> int:
    """Write the cards under ``root`` (``--check``: compare them only).

    Args:
        root: The repository.
        work_dir: A finished study work dir whose results are copied into
            :data:`DOCS` first, or None (the committed ones).
        check: Write nothing; name every file that differs on stderr.

    Returns:
        int: The exit status: 1 when ``check`` found a file that differs.
    """
    if work_dir:
        copy_results(work_dir, root)
    stale = []
    for rel, text in render_all(root).items():
        path = osp.join(root, rel)
        with open(path, encoding='utf-8') as f:
            same = f.read() == text
        if same:
            continue
        if check:
            stale.append(rel)
        else:
            atomic_write_text(path, text)
            print(f'wrote {rel}')
    if stale:
        print(f'model_cards: out of date with {DOCS}/{RESULTS}: ' +
              ', '.join(stale) +
              ' (run python tools/kd_study.py --cards)',
              file=sys.stderr)
        return 1
    return 0

"""The study's ledger: run records, in the work dir and in ``--ledger``.

A run's ``record.json`` holds its validation curve, minutes, machine and
the digest of its weights (:func:`weights_digest`); a ledger folder
(committed with the results) keeps a copy of every record, so that a step
recorded there is skipped on any machine. :func:`compare_records` sets a
rerun's figures against its first run's.
"""
import json
import os.path as osp
from typing import List, Optional, Sequence

from mmseg_kdas.utils.atomic import atomic_write_text
from mmseg_kdas.utils.checkpoint_file import weights_digest
from .protocol import TIMINGS, ProtocolError

RECORD = 'record.json'


def read_json(path: str) -> Optional[dict]:
    """The JSON object of ``path`` (a record), or None if it is not there."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path: str, obj) -> None:
    """Write ``obj`` to ``path`` atomically, keys sorted, one per line."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + '\n')


def tested_sets(record: Optional[dict]) -> List[str]:
    """The test sets a record has figures of (``<set>/mDice``), sorted."""
    test = (record or {}).get('test', {})
    return sorted(k[:-len('/mDice')] for k in test if k.endswith('/mDice'))


def untested_sets(record: Optional[dict],
                  test_sets: Sequence[str]) -> List[str]:
    """The sets of ``test_sets`` a record has no figures of (all of them
    without ``test``): a set added to the data root after its test."""
    tested = tested_sets(record)
    return [ts for ts in test_sets if ts not in tested]


class Ledger:
    """The records of a work dir, each kept in a ledger folder too.

    Args:
        work: The work dir.
        ledger: The ledger folder, or None.
    """

    def __init__(self, work: str, ledger: Optional[str] = None) -> None:
        self.work = work
        self.ledger = ledger

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
        local = read_json(osp.join(run_dir, RECORD))
        ledger_file = self._ledger_file(run_dir)
        kept = None if ledger_file is None else read_json(ledger_file)
        if local is None:
            return kept
        if 'weights' not in local and not local.get('diverged'):
            ckpt = osp.join(run_dir, f'iter_{local["iters"]}.pth')
            if osp.isfile(ckpt):
                local = dict(local, weights=weights_digest(ckpt))
                write_json(osp.join(run_dir, RECORD), local)
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
                write_json(osp.join(run_dir, RECORD), local)
        if ledger_file is not None and kept != local:
            write_json(ledger_file, local)
        return local

    def trained_here(self, run_dir: str) -> bool:
        """Whether the run's files here are the record's: this work dir
        has the record (a checkpoint without it is of a run that failed
        to reproduce the ledger's)."""
        return osp.isfile(osp.join(run_dir, RECORD))

    def save_record(self, run_dir: str, record: dict) -> None:
        """Write a record to the work dir and the ledger."""
        write_json(osp.join(run_dir, RECORD), record)
        ledger_file = self._ledger_file(run_dir)
        if ledger_file is not None:
            write_json(ledger_file, record)


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

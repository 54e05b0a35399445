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

The protocol, its stages and what it writes: :mod:`mmseg_kdas.study`
(the package this tool calls); how to run it: ``docs/en/study.md``.
"""
import argparse
import os.path as osp
import sys
from typing import Callable, List, Optional, Sequence

from mmseg_kdas.datasets.pranet_split import PRANET_VAL_FILE
from mmseg_kdas.study import DEFAULTS, run, run_study
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The tool's arguments, checked (a bad one exits with a message)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='PraNet-layout data folder')
    parser.add_argument('--work-dir', default='work_dirs/polyp_experiment')
    parser.add_argument(
        '--dry-run', action='store_true', help='print the plan and stop')
    parser.add_argument(
        '--seeds', nargs='+', type=int, default=list(DEFAULTS['seeds']))
    parser.add_argument(
        '--teacher-seeds',
        nargs='+',
        type=int,
        default=list(DEFAULTS['teacher_seeds']))

    def number(flag: str, kind: type, text: Optional[str] = None) -> None:
        """A numeric option whose default is its entry of DEFAULTS."""
        parser.add_argument(
            flag,
            type=kind,
            default=DEFAULTS[flag[2:].replace('-', '_')],
            help=text)

    number('--size', int)
    number('--batch-size', int)
    number('--lr', float)
    number('--teacher-iters', int)
    number('--iters', int)
    number(
        '--val-interval', int,
        'validation and checkpoint interval of the students (the last '
        'iteration is always validated)')
    number('--teacher-val-interval', int,
           'the same for the teachers, whose best checkpoint is kept')
    number('--teacher-tolerance', float,
           'largest spread of the teacher runs\' best validation mDice')
    parser.add_argument(
        '--accept-teacher-disagreement',
        action='store_true',
        help='continue from the teacher (the first of --teacher-seeds) when '
        'the teacher runs are further apart than --teacher-tolerance: a '
        'deviation from the protocol, which the report and results.json '
        'state (agreed: false); without it the tool stops there')
    number('--gate-margin', float,
           'lead over the plain student the teacher needs on validation')
    parser.add_argument(
        '--no-teacher-cache',
        action='store_true',
        help='run the teacher online in every KD run (slower)')
    parser.add_argument('--split-file', default=PRANET_VAL_FILE)
    number('--budget-minutes', float)
    number('--num-workers', int)
    number(
        '--threads', int, 'threads of every command; part of the protocol: '
        'a run reproduces bit for bit only at the same count')
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
    """Run the study (:func:`mmseg_kdas.study.run_study`).

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.
        runner: Runs one command (tests pass a fake).

    Returns:
        int: The exit status.
    """
    ignore_pkg_resources_warning()
    return run_study(parse_args(argv), runner)


if __name__ == '__main__':
    sys.exit(main())

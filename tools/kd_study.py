"""Run a distillation study: does distilling pay on this data?

    python tools/kd_study.py STUDY_CONFIG DATA_ROOT --work-dir DIR
        [--ledger DIR] [--dry-run] [--rerun FOLDER [FOLDER ...]]
        [--accept-teacher-disagreement] [--device cpu|cuda] [--gpus N]
        [--cfg-options KEY=VALUE ...]
    python tools/kd_study.py --cards [WORK_DIR] [--check]

STUDY_CONFIG is a study config (``configs/kd_study/``: ``polyp-cpu-128.py``
is the README's study, ``binary-cpu-128.py`` the same for any binary data
root, ``polyp-gpu-352.py`` the full scale on CUDA); DATA_ROOT is in the
PraNet layout. The stages, what is written and how to resume:
``docs/en/study.md`` and :mod:`mmseg_kdas.study`. ``--cards`` writes the
results of a finished work dir (default: the committed ones) into the
configs' model cards; with ``--check`` it writes nothing and exits 1
naming every card that differs.
"""
import argparse
import sys
from typing import Callable, List, Optional, Sequence

from mmengine.config import DictAction

from mmseg_kdas.study import ROOT, ProtocolError, load_study, run, run_study
from mmseg_kdas.study.cards import update_cards
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The tool's arguments (a bad one exits with a message)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('study_config', help='a configs/kd_study/ config')
    parser.add_argument('data_root', help='PraNet-layout data folder')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--ledger',
        help='a folder (e.g. committed with the results) that keeps every '
        'record: its finished steps are skipped on any machine, and a run '
        'whose files are needed again is retrained and checked against it')
    parser.add_argument(
        '--dry-run', action='store_true', help='print the plan and stop')
    parser.add_argument(
        '--rerun',
        nargs='+',
        metavar='FOLDER',
        help='after the protocol, train these of its runs again from '
        'scratch (folders of the work dir, patterns allowed: teacher/seed0, '
        '"runs/*/*/seed2") under WORK_DIR/rerun/ and compare every figure '
        'with the first run (rerun.md)')
    parser.add_argument(
        '--accept-teacher-disagreement',
        action='store_true',
        help='continue from the teacher (the first of teacher_seeds) when '
        'the teacher runs are further apart than teacher_tolerance: a '
        'deviation from the protocol, which the report states')
    parser.add_argument(
        '--device', choices=['cpu', 'cuda'],
        help='the config\'s device key (CPU determinism settings apply to '
        'CPU studies only)')
    parser.add_argument(
        '--gpus', type=int, help='GPUs of a CUDA study (> 1: '
        'tools/dist_train.sh)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override keys of the study config, e.g. seeds=[0,1,2,3,4] '
        'or run_replace.train_dataloader.num_workers=0')
    return parser.parse_args(argv)


def parse_cards_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='kd_study.py --cards',
        description='write the study\'s results into the model cards')
    parser.add_argument('--cards', action='store_true', required=True)
    parser.add_argument(
        'work_dir',
        nargs='?',
        default=None,
        help='a finished kd_study.py work dir to copy the results from '
        '(default: the committed ones)')
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 if a card differs from its results')
    parser.add_argument(
        '--root', default=ROOT, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    if args.work_dir and args.check:
        parser.error('--check compares the committed results; give no '
                     'WORK_DIR with it')
    return args


def study_args(argv: Sequence[str]) -> argparse.Namespace:
    """The study's settings (:func:`mmseg_kdas.study.load_study`) with the
    tool's arguments.

    Raises:
        ProtocolError: A key of the study config is wrong (naming it).
        FileNotFoundError: The study config or a config it names is missing.
    """
    args = parse_args(argv)
    options = dict(args.cfg_options or {})
    for key in ('device', 'gpus'):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    return load_study(
        args.study_config,
        options,
        data_root=args.data_root,
        work_dir=args.work_dir,
        ledger=args.ledger,
        dry_run=args.dry_run,
        rerun=args.rerun,
        accept_teacher_disagreement=args.accept_teacher_disagreement)


def main(argv: Optional[Sequence[str]] = None,
         runner: Callable[[List[str], str], None] = run) -> int:
    """Run the study (:func:`mmseg_kdas.study.run_study`) or write the
    cards (:func:`mmseg_kdas.study.cards.update_cards`).

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.
        runner: Runs one command (tests pass a fake).

    Returns:
        int: The exit status.
    """
    ignore_pkg_resources_warning()
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--cards' in argv:
        cards = parse_cards_args(argv)
        return update_cards(cards.root, cards.work_dir, cards.check)
    try:
        study = study_args(argv)
    except (ProtocolError, FileNotFoundError) as err:
        print(f'kd_study: {err}', file=sys.stderr)
        return 2
    return run_study(study, runner)


if __name__ == '__main__':
    sys.exit(main())

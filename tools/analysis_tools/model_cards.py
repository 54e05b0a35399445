"""Write the KD experiment's results into the configs' model cards.

    python tools/analysis_tools/model_cards.py [WORK_DIR] [--check]

``WORK_DIR`` is a finished ``tools/analysis_tools/polyp_experiment.py``
work dir: its results are copied into ``docs/polyp_experiment/`` and the
configs' metafiles and READMEs and ``docs/en/study.md`` are written from
them (:mod:`mmseg_kdas.study.cards`). ``--check`` writes nothing and exits
with status 1, naming every file that differs from what it would write.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmseg_kdas.study import ROOT
from mmseg_kdas.study.cards import update_cards
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The tool's arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'work_dir',
        nargs='?',
        default=None,
        help='a finished polyp_experiment.py work dir to copy the results '
        'from (default: the committed ones)')
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 if a card differs from its results')
    parser.add_argument(
        '--root', default=ROOT, help=argparse.SUPPRESS)  # tests
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the cards (:func:`mmseg_kdas.study.cards.update_cards`).

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.

    Returns:
        int: The exit status.
    """
    ignore_pkg_resources_warning()
    args = parse_args(argv)
    if args.work_dir and args.check:
        raise SystemExit('error: --check compares the committed results; '
                         'give no WORK_DIR with it')
    return update_cards(args.root, args.work_dir, args.check)


if __name__ == '__main__':
    sys.exit(main())

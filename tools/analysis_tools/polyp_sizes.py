"""Per-image figures of a finished distillation study, by polyp size.

    python tools/analysis_tools/polyp_sizes.py WORK_DIR DATA_ROOT \\
        --test-set CVC-ColonDB [--methods teacher student 'KDAS (paper)'] \\
        [--seeds 0 1 2 3 4] [--small 0.05] [--device cpu]

Runs every tested model of the study (``tools/kd_study.py``'s work dir:
the chosen teacher and, seed by seed, the methods of ``results.json``) on
``DATA_ROOT/TestDataset/<set>`` as ``tools/test.py`` and ``PolypMetric``
evaluate it, writes one CSV per model
(``WORK_DIR/per_image/<set>/<method>_seed<n>.csv``; a CSV already there is
read, not computed again) and the summary per size bin,
``WORK_DIR/per_image/<set>.md``, which it prints: mean Dice, paired
differences to the plain student, false-positive and missed rates, and the
frames the teacher gets right and a student not. It refuses a model whose
mean per-image Dice is not its recorded ``<set>/mDice``
(:mod:`mmseg_kdas.study.per_image`).
"""
import argparse
import os.path as osp
import sys

from mmseg_kdas.evaluation.per_image import SMALL_SHARE
from mmseg_kdas.study.protocol import ProtocolError
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Per-image figures of a distillation study by polyp '
        'size')
    parser.add_argument('work_dir', help='the work dir of tools/kd_study.py')
    parser.add_argument(
        'data_root', help='the data root, with TestDataset/<set>')
    parser.add_argument(
        '--test-set', required=True, help='a folder of TestDataset')
    parser.add_argument(
        '--methods',
        nargs='+',
        help="methods of results.json, and 'teacher' (default: teacher, "
        "student, 'KDAS (paper)', 'KDAS (tuned)' where present)")
    parser.add_argument(
        '--seeds', nargs='+', type=int, help='seeds (default: all)')
    parser.add_argument(
        '--small',
        type=float,
        default=SMALL_SHARE,
        help='share of the frame below which a polyp is small (this '
        "project's choice, default %(default)s)")
    parser.add_argument(
        '--device', default='cpu', help='torch device (default: cpu)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    ignore_pkg_resources_warning()
    args = parse_args(argv)
    from mmseg_kdas.study.per_image import per_image
    try:
        report = per_image(
            osp.abspath(args.work_dir),
            osp.abspath(args.data_root),
            args.test_set,
            methods=args.methods,
            seeds=args.seeds,
            small=args.small,
            device=args.device)
    except (ProtocolError, FileNotFoundError, ValueError) as err:
        print(f'polyp_sizes: stopped: {err}', file=sys.stderr)
        return 2
    print(report)
    print(f'wrote {osp.join(args.work_dir, "per_image", args.test_set)}'
          '.md and the CSVs in '
          f'{osp.join(args.work_dir, "per_image", args.test_set)}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())

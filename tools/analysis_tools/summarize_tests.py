"""Side-by-side table of the polyp metrics of ``tools/test.py`` runs.

    python tools/analysis_tools/summarize_tests.py NAME=WORK_DIR [...]
        [--configs CFG ...] [--keys mDice mIoU ...]

Each WORK_DIR is the ``--work-dir`` of a ``tools/test.py`` run; its newest
``<timestamp>/<timestamp>.json`` (written by mmengine's LoggerHook) is read.
With ``--configs`` (one per run, same order) a parameter column is added.
"""
import argparse

from mmseg_kdas.study.runner import latest_metrics
from mmseg_kdas.utils.benchmark import build_deployed_model, markdown_table
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='NAME=WORK_DIR')
    parser.add_argument('--configs', nargs='+', default=None)
    parser.add_argument(
        '--keys',
        nargs='+',
        default=['mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'MAE'],
        help='measures to show, for every test set')
    return parser.parse_args()


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    runs = []
    for run in args.runs:
        if '=' not in run:
            raise ValueError(f'{run!r}: expected NAME=WORK_DIR')
        name, work_dir = run.split('=', 1)
        runs.append((name, latest_metrics(work_dir)))
    if args.configs and len(args.configs) != len(runs):
        raise ValueError(f'--configs needs one config per run '
                         f'({len(runs)}), got {len(args.configs)}')

    sets = sorted({
        k.split('/')[0]
        for _, metrics in runs for k in metrics if '/' in k
    })
    columns = [f'{s}/{k}' for s in sets for k in args.keys]
    header = ['model'] + (['params (M)'] if args.configs else []) + columns
    rows = []
    for i, (name, metrics) in enumerate(runs):
        row = [name]
        if args.configs:
            params = sum(p.numel() for p in build_deployed_model(
                args.configs[i]).parameters())
            row.append(f'{params / 1e6:.3f}')
        row += [
            f'{metrics[c]:.4f}' if c in metrics else '-' for c in columns
        ]
        rows.append(row)
    print(markdown_table(header, rows))


if __name__ == '__main__':
    main()

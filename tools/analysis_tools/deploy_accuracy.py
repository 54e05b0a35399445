"""Mean Dice of exported models on test sets, against the first model.

Checks a cheaper export (INT8, another input size) of a trained student
against its float export, frame by frame as ``tools/infer.py`` runs them,
with PolypMetric's per-image mean Dice (``mmseg_kdas.deployment.accuracy``).

A model is ``FILE.onnx`` (ONNX Runtime) or ``FILE.onnx@BACKEND[:PRECISION]``
(``tools/infer.py``'s ``--backend`` and ``--precision``, e.g.
``s128.int8.onnx@openvino:int8`` or ``s128.onnx@openvino:f32``).

Example (a study's student, its float and INT8 exports at 128 and 160 px)::

    python tools/analysis_tools/deploy_accuracy.py \\
        s128.onnx s128.int8.onnx s160.onnx --data-root data/polyp \\
        --test-sets Kvasir CVC-ColonDB --threads 2 --out accuracy.json
"""
import argparse
import json
import os.path as osp

from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+',
                        help='FILE.onnx[@BACKEND[:PRECISION]]; the first '
                        'is the reference')
    parser.add_argument('--data-root', required=True,
                        help='a root with TestDataset/<set>/{images,masks}')
    parser.add_argument('--test-sets', nargs='+', required=True)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--max-delta', type=float, default=None,
                        help='exit 1 when a model\'s mean Dice is more than '
                        'this below or above the first\'s on a set')
    parser.add_argument('--out', help='write the figures as JSON')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    ignore_pkg_resources_warning()
    args = parse_args(argv)
    from mmseg_kdas.deployment.accuracy import set_accuracy, test_set_pairs
    from mmseg_kdas.deployment.backends import build_predictor
    if len(set(args.models)) != len(args.models):
        raise SystemExit(f'a model is given twice: {args.models}')
    specs = []
    for model in args.models:
        path, _, rest = model.partition('@')
        backend, _, precision = rest.partition(':')
        if not path.endswith('.onnx') or not osp.isfile(path):
            raise SystemExit(f'not an .onnx file: {path} (of {model})')
        specs.append((model, path, backend or None, precision or None))
    try:
        pairs = {ts: test_set_pairs(args.data_root, ts)
                 for ts in args.test_sets}
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err))
    try:
        predictors = [(model, build_predictor(
            path, backend=backend, precision=precision, threads=args.threads))
            for model, path, backend, precision in specs]
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err))
    try:
        results = {ts: set_accuracy(predictors, pairs[ts]) for ts in pairs}
    except ValueError as err:
        raise SystemExit(str(err))
    failed = []
    for ts, by_model in results.items():
        print(f'{ts} ({len(pairs[ts])} frames):')
        print('| model | input | mDice | change | max |prob change| | '
              'mask pixels that differ |')
        print('|---|---|---|---|---|---|')
        for (name, predictor), figures in zip(predictors, by_model.values()):
            h, w = predictor.spec.input_size
            row = f'| {name} | {h}x{w} | {figures["mDice"]:.4f} |'
            if 'delta_mDice' in figures:
                row += (f' {figures["delta_mDice"]:+.4f} | '
                        f'{figures["max_abs_prob_diff"]:.3f} | '
                        f'{100 * figures["mask_share_differ"]:.3f} % |')
                if (args.max_delta is not None
                        and abs(figures['delta_mDice']) > args.max_delta):
                    failed.append(f'{name} on {ts}')
            else:
                row += ' reference | | |'
            print(row)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
    if failed:
        print(f'mean Dice changed by more than {args.max_delta:g}: '
              + ', '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

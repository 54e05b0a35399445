"""Write a tiny synthetic polyp data set in the PraNet layout.

    python tools/dataset_converters/make_synthetic_polyp.py OUT_DIR \
        [--num-train 8] [--num-test 4] [--size 64 64] \
        [--test-sets Kvasir CVC-ClinicDB] [--seed 0]

Images are JPEG, masks PNG (0 / 255): a drop-in stand-in for
``data/polyp`` in smoke tests and demos (``data_root=OUT_DIR``).
"""
import argparse

from mmseg_kdas.datasets.synthetic import make_synthetic_polyp_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a synthetic polyp data set (PraNet layout)')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--num-train', type=int, default=8)
    parser.add_argument('--num-test', type=int, default=4)
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(64, 64),
        metavar=('H', 'W'),
        help='image height and width')
    parser.add_argument(
        '--test-sets',
        nargs='+',
        default=['Kvasir'],
        help='names of the test sets (folders under TestDataset)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    root = make_synthetic_polyp_dataset(
        args.out_dir,
        num_train=args.num_train,
        num_test=args.num_test,
        size=tuple(args.size),
        test_sets=tuple(args.test_sets),
        seed=args.seed)
    print(f'synthetic polyp data set written to {root}: '
          f'{args.num_train} training pairs, {args.num_test} pairs in each '
          f'of {", ".join(args.test_sets)}')


if __name__ == '__main__':
    main()

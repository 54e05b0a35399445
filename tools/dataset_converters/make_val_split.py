"""Write the validation split of the PraNet training set.

    python tools/dataset_converters/make_val_split.py
        [--from-data DATA_ROOT] [--fraction 0.1] [--seed 0]
        [--train-list mmseg_kdas/datasets/splits/pranet_train.txt]
        [--out mmseg_kdas/datasets/splits/pranet_val.txt] [--check]

Holds out about ``--fraction`` of each source of the 1,450 PraNet training
images: Kvasir-SEG images one by one, CVC-ClinicDB frames by whole video
sequences (runs of consecutive frame numbers), see
:mod:`mmseg_kdas.datasets.pranet_split`. The input is the list of training
stems, ``--train-list`` (names only); ``--from-data`` rewrites that list
from ``DATA_ROOT/TrainDataset/images`` first. The output depends on the set
of stems, the fraction and the seed only. ``--check`` writes nothing and
exits with status 1 when ``--out`` differs from what would be written.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

from mmseg_kdas.datasets.polyp import index_by_stem
from mmseg_kdas.datasets.pranet_split import (PRANET_TRAIN_FILE,
                                              PRANET_VAL_FILE,
                                              format_split_file,
                                              make_val_split, read_split_file)
from mmseg_kdas.utils.atomic import atomic_write_text

_DEFAULTS = dict(fraction=0.1, seed=0)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--from-data',
        metavar='DATA_ROOT',
        help='rewrite --train-list from DATA_ROOT/TrainDataset/images')
    parser.add_argument('--fraction', type=float,
                        default=_DEFAULTS['fraction'])
    parser.add_argument('--seed', type=int, default=_DEFAULTS['seed'])
    parser.add_argument('--train-list', default=PRANET_TRAIN_FILE)
    parser.add_argument('--out', default=PRANET_VAL_FILE)
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 if --out is not what would be written')
    return parser.parse_args(argv)


def command_line(args: argparse.Namespace) -> str:
    """The command, as the header of the file records it."""
    parts = ['python tools/dataset_converters/make_val_split.py']
    for key, default in _DEFAULTS.items():
        value = getattr(args, key)
        if value != default:
            parts.append(f'--{key} {value:g}')
    return ' '.join(parts)


def train_stems_of(data_root: str) -> List[str]:
    """The stems of ``DATA_ROOT/TrainDataset/images``, sorted."""
    return sorted(index_by_stem(osp.join(data_root, 'TrainDataset',
                                         'images')))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.from_data:
        stems = train_stems_of(args.from_data)
        text = (f'# Stems of the PraNet TrainDataset/images ({len(stems)}), '
                'the input of make_val_split.py\n' +
                ''.join(f'{s}\n' for s in stems))
        if args.check:
            if read_split_file(args.train_list) != stems:
                print(f'{args.train_list} differs from the images of '
                      f'{args.from_data}')
                return 1
        else:
            atomic_write_text(args.train_list, text)
    train = read_split_file(args.train_list)
    val = make_val_split(train, args.fraction, args.seed)
    text = format_split_file(val, train, command_line(args))
    if args.check:
        current = open(args.out).read() if osp.isfile(args.out) else None
        if current != text:
            print(f'{args.out} is not the split of {args.train_list} '
                  f'(fraction {args.fraction:g}, seed {args.seed}); rerun '
                  'without --check to rewrite it')
            return 1
        print(f'{args.out} is up to date')
        return 0
    atomic_write_text(args.out, text)
    print(''.join(line + '\n' for line in text.splitlines()
                  if line.startswith('#')), end='')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Write a validation split: of your own data, or of the PraNet training set.

    # your own data: hold out 10 % of the images (or of the groups)
    python tools/dataset_converters/make_val_split.py \
        --images DATA_ROOT/TrainDataset/images --out DATA_ROOT/val.txt \
        [--group-by REGEX] [--fraction 0.1] [--seed 0] [--check]

    # the packaged PraNet split
    python tools/dataset_converters/make_val_split.py
        [--from-data DATA_ROOT] [--fraction 0.1] [--seed 0]
        [--train-list mmseg_kdas/datasets/splits/pranet_train.txt]
        [--out mmseg_kdas/datasets/splits/pranet_val.txt] [--check]

With ``--images``, the images of that folder are held out one by one in a
seeded hashed order, or by whole groups with ``--group-by``: a regular
expression whose first group, matched at the start of a file's stem, names
its patient or video (``'(.+)_\\d+$'`` for ``p07_0001.png``); images of one
patient never end up on both sides
(:func:`mmseg_kdas.datasets.pranet_split.make_grouped_val_split`). The
configs of ``configs/own_data`` read ``DATA_ROOT/val.txt``.

Without ``--images``, the tool holds out about ``--fraction`` of each
source of the 1,450 PraNet training images: Kvasir-SEG images one by one,
CVC-ClinicDB frames by whole video sequences (runs of consecutive frame
numbers), see
:mod:`mmseg_kdas.datasets.pranet_split`. The input is the list of training
stems, ``--train-list`` (names only); ``--from-data`` rewrites that list
from ``DATA_ROOT/TrainDataset/images`` first. The output depends on the set
of stems, the fraction and the seed only. ``--check`` writes nothing and
exits with status 1 when ``--out`` differs from what would be written.
"""
import argparse
import os.path as osp
import shlex
import sys
from typing import List, Optional, Sequence

from mmseg_kdas.datasets.polyp import index_by_stem
from mmseg_kdas.datasets.pranet_split import (PRANET_TRAIN_FILE,
                                              PRANET_VAL_FILE,
                                              format_grouped_split_file,
                                              format_split_file,
                                              make_grouped_val_split,
                                              make_val_split, read_split_file)
from mmseg_kdas.utils.atomic import atomic_write_text

_DEFAULTS = dict(fraction=0.1, seed=0)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--from-data',
        metavar='DATA_ROOT',
        help='rewrite --train-list from DATA_ROOT/TrainDataset/images')
    parser.add_argument(
        '--images',
        metavar='FOLDER',
        help='your own data: split the images of FOLDER (needs --out)')
    parser.add_argument(
        '--group-by',
        metavar='REGEX',
        help='with --images: hold out whole groups, named by the first '
        'group of REGEX matched at the start of each stem')
    parser.add_argument('--fraction', type=float,
                        default=_DEFAULTS['fraction'])
    parser.add_argument('--seed', type=int, default=_DEFAULTS['seed'])
    parser.add_argument('--train-list', default=PRANET_TRAIN_FILE)
    parser.add_argument('--out', default=None)
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 if --out is not what would be written')
    args = parser.parse_args(argv)
    if args.images is None:
        if args.group_by is not None:
            parser.error('--group-by needs --images')
        args.out = args.out or PRANET_VAL_FILE
    else:
        if args.from_data is not None:
            parser.error('give --images or --from-data, not both')
        if args.out is None:
            parser.error('--images needs --out (e.g. DATA_ROOT/val.txt)')
        if osp.abspath(args.out) in (osp.abspath(PRANET_VAL_FILE),
                                     osp.abspath(PRANET_TRAIN_FILE)):
            parser.error(f'--out {args.out} is the packaged PraNet split; '
                         'write your own next to your data')
    return args


def command_line(args: argparse.Namespace) -> str:
    """The command, as the header of the file records it."""
    parts = ['python tools/dataset_converters/make_val_split.py']
    if args.images is not None:
        parts += ['--images', args.images, '--out', args.out]
        if args.group_by is not None:
            parts += ['--group-by', args.group_by]
        parts = [shlex.quote(p) if i else p for i, p in enumerate(parts)]
    for key, default in _DEFAULTS.items():
        value = getattr(args, key)
        if value != default:
            parts.append(f'--{key} {value:g}')
    return ' '.join(parts)


def train_stems_of(data_root: str) -> List[str]:
    """The stems of ``DATA_ROOT/TrainDataset/images``, sorted."""
    return sorted(index_by_stem(osp.join(data_root, 'TrainDataset',
                                         'images')))


def _write_or_check(args: argparse.Namespace, text: str, what: str) -> int:
    """Write ``text`` to ``--out``, or compare it with ``--check``."""
    if args.check:
        current = open(args.out).read() if osp.isfile(args.out) else None
        if current != text:
            print(f'{args.out} is not the split of {what} (fraction '
                  f'{args.fraction:g}, seed {args.seed}); rerun without '
                  '--check to rewrite it')
            return 1
        print(f'{args.out} is up to date')
        return 0
    atomic_write_text(args.out, text)
    print(''.join(line + '\n' for line in text.splitlines()
                  if line.startswith('#')), end='')
    print(f'wrote {args.out}')
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.images is not None:
        if not osp.isdir(args.images):
            raise SystemExit(f'error: no folder {args.images}')
        stems = sorted(index_by_stem(args.images))
        if not stems:
            raise SystemExit(f'error: no image in {args.images}')
        try:
            val = make_grouped_val_split(stems, args.fraction, args.seed,
                                         args.group_by)
        except ValueError as e:
            raise SystemExit(f'error: {e}')
        text = format_grouped_split_file(val, stems, args.images,
                                         command_line(args))
        return _write_or_check(args, text, args.images)
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
    return _write_or_check(args, text, args.train_list)


if __name__ == '__main__':
    sys.exit(main())

"""Arrange downloaded polyp data sets into the PraNet layout.

    OUT/TrainDataset/{images,masks}
    OUT/TestDataset/<set>/{images,masks}

Sources (a folder or a .zip archive each):

    # PraNet's TrainDataset / TestDataset folders (or their archives)
    python tools/dataset_converters/polyp.py pranet TrainDataset.zip \
        TestDataset.zip -o data/polyp

    # raw Kvasir-SEG (images/, masks/ with JPEG masks) and CVC-ClinicDB
    # (Original/, Ground Truth/ with TIFF frames); with --test-list the
    # listed stems go to TestDataset/<name>, the others to TrainDataset;
    # without it, every pair goes to TestDataset/<name>
    python tools/dataset_converters/polyp.py kvasir-seg kvasir-seg.zip \
        -o data/polyp --name Kvasir [--test-list kvasir_test.txt]
    python tools/dataset_converters/polyp.py cvc-clinicdb CVC-ClinicDB.zip \
        -o data/polyp --name CVC-ClinicDB [--test-list clinicdb_test.txt]

Images and masks are matched by file stem. Every pair is read and checked
(both readable and complete, same size); JPEG and PNG images are copied as
they are (or linked with --link), other formats (TIFF, BMP) are written as
PNG; masks are binarised at half their range and written as PNG with values
0 / 255. A missing mask, an unreadable or truncated file, a size mismatch or
a name clash in the output stops the conversion with the file names.

Before training, check a data root (any layout with image and mask folders
side by side, e.g. the PraNet one) in one pass; every problem is listed and
the exit status is 1 if there is one:

    python tools/dataset_converters/polyp.py --check data/polyp
"""
import argparse
import os.path as osp
import sys
import tempfile
import zipfile
from typing import List

from mmseg_kdas.datasets.layout import (check_data_root, convert_pranet,
                                        convert_raw)


def _unpacked(path: str, workdir: str) -> str:
    """``path`` itself if a folder, else the folder a zip is unpacked in."""
    if osp.isdir(path):
        return path
    if not osp.isfile(path):
        raise FileNotFoundError(f'source not found: {path}')
    if not zipfile.is_zipfile(path):
        raise ValueError(f'{path} is neither a folder nor a zip archive')
    target = tempfile.mkdtemp(dir=workdir)
    with zipfile.ZipFile(path) as archive:
        archive.extractall(target)
    return target


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Arrange polyp data sets into the PraNet layout, or '
        'check a data root')
    parser.add_argument(
        '--check',
        metavar='DATA_ROOT',
        help='check every image / mask pair under DATA_ROOT (readable, '
        'complete, a mask of the image size) and list all problems')
    sub = parser.add_subparsers(dest='kind')
    pranet = sub.add_parser(
        'pranet', help="PraNet's TrainDataset / TestDataset folders")
    pranet.add_argument('sources', nargs='+', help='folders or zip files')
    for kind, default in (('kvasir-seg', 'Kvasir-SEG'), ('cvc-clinicdb',
                                                         'CVC-ClinicDB')):
        raw = sub.add_parser(kind, help=f'raw {default} (folder or zip)')
        raw.add_argument('source', help='folder or zip file')
        raw.add_argument(
            '--name', default=default, help='test set name in TestDataset')
        raw.add_argument(
            '--test-list',
            help='file of stems for TestDataset/<name> (others: '
            'TrainDataset); default: all pairs to TestDataset/<name>')
    for p in sub.choices.values():
        p.add_argument('-o', '--out-dir', required=True, help='output root')
        p.add_argument(
            '--link',
            action='store_true',
            help='symlink JPEG / PNG images instead of copying them')
    args = parser.parse_args(argv)
    if (args.check is None) == (args.kind is None):
        parser.error('give either --check DATA_ROOT or a source kind '
                     f'({", ".join(sub.choices)})')
    return args


def main(argv=None) -> List[str]:
    """Convert, or check with ``--check``; returns the lines printed.

    Raises:
        ValueError: ``--check`` found problems (all listed).
    """
    args = parse_args(argv)
    if args.check is not None:
        checked, problems = check_data_root(args.check)
        if problems:
            raise ValueError(
                f'{len(problems)} problem(s) in {args.check} ({checked} '
                'image / mask pairs read):\n  ' +
                '\n  '.join(problems))
        report = [f'{checked} image / mask pairs in {args.check}: no problem']
        print(report[0])
        return report
    with tempfile.TemporaryDirectory() as workdir:
        if args.kind == 'pranet':
            sources = [_unpacked(s, workdir) for s in args.sources]
            if args.link and any(s.startswith(workdir) for s in sources):
                raise ValueError('--link needs folders, not zip archives '
                                 '(their files are deleted after unpacking)')
            report = convert_pranet(sources, args.out_dir, args.link)
        else:
            source = _unpacked(args.source, workdir)
            if args.link and source.startswith(workdir):
                raise ValueError('--link needs a folder, not a zip archive')
            report = convert_raw(source, args.out_dir, args.name,
                                 args.test_list, args.link)
    for line in report:
        print(line)
    return report


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')

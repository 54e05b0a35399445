"""The study's validation split: the config's list, or one made and kept.

A study config names a list file (``val_split.file``, e.g. PraNet's), or
has one made from ``TrainDataset/images`` (:func:`make_study_val_split`:
seeded, in proportion to the sources, whole runs of video frames). A made
split is written to the work dir and the ledger (``val_split.txt``) and
reused from either, so every machine of a ledger validates on the same
images.
"""
import argparse
import os
import os.path as osp
import shutil
from typing import List, Optional, Tuple

from mmseg_kdas.datasets.polyp import index_by_stem
from mmseg_kdas.datasets.pranet_split import read_split_file
from mmseg_kdas.datasets.study_split import (make_study_val_split,
                                             write_study_val_split)

#: The made split's file, in the work dir and the ledger.
SPLIT_FILE = 'val_split.txt'


def validation_split(args: argparse.Namespace, work: str,
                     ledger: Optional[str],
                     write: bool = True) -> Tuple[List[str], str]:
    """The validation stems of the study; sets ``args.split_file``.

    Args:
        args: The study's settings (``val_split``, ``split_file``,
            ``data_root``).
        work: The work dir.
        ledger: The ledger folder, or None.
        write: Write a made split (a dry run makes it in memory only).

    Returns:
        tuple: The stems, and where they come from (for the plan).

    Raises:
        FileNotFoundError: If the list file or the training images are
            missing (naming the path).
        ValueError: If a split cannot be made (the message says why).
    """
    if args.split_file is not None:
        if not osp.isfile(args.split_file):
            raise FileNotFoundError(
                f'val_split.file {args.split_file} does not exist')
        return (read_split_file(args.split_file),
                f'the list {osp.basename(args.split_file)}')
    spec = args.val_split
    options = dict(
        fraction=spec.get('fraction', 0.1),
        seed=spec.get('seed', 0),
        sources=spec.get('sources'),
        videos=list(spec.get('videos') or []),
        max_gap=spec.get('max_gap', 1))
    here = osp.join(work, SPLIT_FILE)
    kept = osp.join(ledger, SPLIT_FILE) if ledger else None
    for path, where in ((here, 'the work dir'), (kept, 'the ledger')):
        if path and osp.isfile(path):
            if write and path != here:
                os.makedirs(work, exist_ok=True)
                shutil.copyfile(path, here)
            args.split_file = here if write else path
            return read_split_file(path), f'made before, from {where}'
    if not write:
        images = osp.join(args.data_root, 'TrainDataset', 'images')
        if not osp.isdir(images):
            raise FileNotFoundError(f'no training images: {images}')
        val = make_study_val_split(sorted(index_by_stem(images)), **options)
        args.split_file = here
        return val, 'to be made, seeded'
    os.makedirs(work, exist_ok=True)
    val = write_study_val_split(args.data_root, here, **options)
    if kept:
        os.makedirs(ledger, exist_ok=True)
        shutil.copyfile(here, kept)
    args.split_file = here
    return val, f'made, seeded: {SPLIT_FILE}'

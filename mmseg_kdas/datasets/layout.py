"""Polyp data sets arranged into the PraNet layout, and data roots checked.

The PraNet layout, which the configs of this project read::

    OUT/TrainDataset/{images,masks}
    OUT/TestDataset/<set>/{images,masks}

:func:`convert_pranet` copies PraNet's own ``TrainDataset`` /
``TestDataset`` folders into it, :func:`convert_raw` a raw Kvasir-SEG
(``images`` / ``masks``) or CVC-ClinicDB (``Original`` / ``Ground Truth``)
download. Images and masks are matched by file stem and every pair is read
and checked (:func:`read_checked`); masks are binarised at half their range
(:func:`~mmseg_kdas.datasets.transforms.binarize_mask`) and written as 0 /
255 PNG. :func:`check_data_root` lists every problem of the pairs of a data
root in one pass, before training. ``tools/dataset_converters/polyp.py`` is
the command line of this module.
"""
import os
import os.path as osp
import shutil
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .polyp import index_by_stem, list_polyp_pairs
from .transforms import binarize_mask

__all__ = [
    'find_pair_dirs', 'read_complete', 'read_checked', 'write_pairs',
    'convert_pranet', 'convert_raw', 'check_data_root'
]

#: Names of image folders (lower case): Kvasir-SEG's, CVC-ClinicDB's.
IMAGE_DIR_NAMES = ('images', 'image', 'original')
#: Names of mask folders (lower case).
MASK_DIR_NAMES = ('masks', 'mask', 'ground truth', 'groundtruth',
                  'ground_truth', 'gt')
#: Image formats copied (or linked) as they are; others are written as PNG.
KEEP_SUFFIXES = ('.jpg', '.jpeg', '.png')
#: Formats whose truncation Pillow reports and OpenCV may not.
VERIFY_SUFFIXES = ('.jpg', '.jpeg', '.png')
#: Folders of archives that hold no data (lower case).
SKIP_DIRS = ('__macosx', )

#: ``(stem, image path, mask path)``.
Pair = Tuple[str, str, str]


def _walk_dirs(root: str) -> Iterator[str]:
    """Every folder under ``root`` (included), sorted, without junk."""
    for current, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d.lower() not in SKIP_DIRS)
        yield current


def _child(folder: str, names: Sequence[str]) -> Optional[str]:
    """The subfolder of ``folder`` whose lower-cased name is in ``names``."""
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if osp.isdir(path) and name.lower() in names:
            return path
    return None


def find_pair_dirs(root: str) -> List[Tuple[str, str, str]]:
    """Folders holding an image folder and a mask folder side by side.

    Args:
        root: Folder to search, recursively.

    Returns:
        ``[(parent, image folder, mask folder)]`` in walk order.
    """
    found = []
    for folder in _walk_dirs(root):
        img_dir = _child(folder, IMAGE_DIR_NAMES)
        mask_dir = _child(folder, MASK_DIR_NAMES)
        if img_dir and mask_dir:
            found.append((folder, img_dir, mask_dir))
    return found


def read_complete(path: str, what: str) -> np.ndarray:
    """Read an image file as stored, checking that it is complete.

    Whether OpenCV rejects a truncated JPEG depends on its build (libjpeg
    reports "premature end of data" as a warning, and some builds return
    the image with grey rows), so JPEG and PNG files are also fully decoded
    by Pillow, which reports truncation.

    Args:
        path: The file.
        what: ``'image'`` or ``'mask'``, for the messages.

    Returns:
        The array ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` gives.

    Raises:
        OSError: The file cannot be read or decoded, or is truncated.
    """
    if path.lower().endswith(VERIFY_SUFFIXES):
        try:
            with Image.open(path) as pil:
                pil.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise OSError(f'cannot decode {what} {path} (truncated or '
                          f'corrupt): {e}') from e
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise OSError(f'cannot read {what} {path}')
    return array


def read_checked(img_path: str, mask_path: str) -> np.ndarray:
    """Read a pair, check it, and return the binarised mask (0 / 255).

    Args:
        img_path: The image.
        mask_path: Its mask.

    Returns:
        The mask as ``uint8`` 0 / 255, of the image's height and width.

    Raises:
        OSError: A file cannot be read, or is truncated.
        ValueError: The sizes differ, or the mask is not a mask image.
    """
    img = read_complete(img_path, 'image')
    mask = read_complete(mask_path, 'mask')
    if img.shape[:2] != mask.shape[:2]:
        raise ValueError(f'size mismatch: image {img_path} is '
                         f'{img.shape[:2]}, mask {mask_path} is '
                         f'{mask.shape[:2]}')
    return binarize_mask(mask, name=mask_path) * np.uint8(255)


def write_pairs(pairs: Sequence[Pair],
                img_out: str,
                mask_out: str,
                link: bool = False) -> int:
    """Check and write pairs into an images / masks folder pair.

    Args:
        pairs: ``[(stem, image path, mask path)]``.
        img_out: Output image folder (created).
        mask_out: Output mask folder (created).
        link: Symlink JPEG / PNG images instead of copying them.

    Returns:
        The number of pairs written.

    Raises:
        FileExistsError: An output stem already exists (two sources with the
            same file name).
    """
    os.makedirs(img_out, exist_ok=True)
    os.makedirs(mask_out, exist_ok=True)
    taken = {osp.splitext(n)[0] for n in os.listdir(img_out)}
    for stem, img_path, mask_path in pairs:
        if stem in taken:
            raise FileExistsError(
                f'{stem!r} ({img_path}) is already in {img_out}: two sources '
                'share a file name')
        taken.add(stem)
        mask = read_checked(img_path, mask_path)
        suffix = osp.splitext(img_path)[1].lower()
        if suffix in KEEP_SUFFIXES:
            target = osp.join(img_out, stem + suffix)
            if link:
                os.symlink(osp.abspath(img_path), target)
            else:
                shutil.copyfile(img_path, target)
        else:
            img = cv2.imread(img_path, cv2.IMREAD_COLOR)
            if not cv2.imwrite(osp.join(img_out, stem + '.png'), img):
                raise OSError(f'cannot write {osp.join(img_out, stem)}.png')
        if not cv2.imwrite(osp.join(mask_out, stem + '.png'), mask):
            raise OSError(f'cannot write {osp.join(mask_out, stem)}.png')
    return len(pairs)


def _pairs(img_dir: str, mask_dir: str) -> List[Pair]:
    """The pairs of two folders (:func:`list_polyp_pairs`), as triples."""
    return [(s, i, m) for s, i, m in list_polyp_pairs(img_dir, mask_dir)
            if m is not None]


def convert_pranet(sources: Sequence[str], out_dir: str,
                   link: bool = False) -> List[str]:
    """Copy PraNet's TrainDataset / TestDataset folders into ``out_dir``.

    Args:
        sources: Folders containing ``TrainDataset`` and / or
            ``TestDataset`` (or being one), each possibly unpacked.
        out_dir: Output root.
        link: Symlink JPEG / PNG images instead of copying them.

    Returns:
        Lines describing what was written.
    """
    report = []
    for source in sources:
        found = False
        for folder in _walk_dirs(source):
            name = osp.basename(osp.normpath(folder))
            if name.lower() == 'traindataset':
                dirs = find_pair_dirs(folder)
                if not dirs or dirs[0][0] != folder:
                    raise FileNotFoundError(
                        f'{folder} has no images/ and masks/ folders')
                n = write_pairs(
                    _pairs(dirs[0][1], dirs[0][2]),
                    osp.join(out_dir, 'TrainDataset', 'images'),
                    osp.join(out_dir, 'TrainDataset', 'masks'), link)
                report.append(f'TrainDataset: {n} pairs from {folder}')
                found = True
            elif name.lower() == 'testdataset':
                for parent, img_dir, mask_dir in find_pair_dirs(folder):
                    test_set = osp.basename(osp.normpath(parent))
                    n = write_pairs(
                        _pairs(img_dir, mask_dir),
                        osp.join(out_dir, 'TestDataset', test_set,
                                 'images'),
                        osp.join(out_dir, 'TestDataset', test_set, 'masks'),
                        link)
                    report.append(f'TestDataset/{test_set}: {n} pairs from '
                                  f'{parent}')
                    found = True
        if not found:
            raise FileNotFoundError(
                f'no TrainDataset or TestDataset folder with image / mask '
                f'folders in {source}')
    return report


def convert_raw(source: str,
                out_dir: str,
                name: str,
                test_list: Optional[str] = None,
                link: bool = False) -> List[str]:
    """Convert a raw Kvasir-SEG or CVC-ClinicDB folder.

    Args:
        source: Folder containing the image and mask folders (``images`` /
            ``masks``, or ``Original`` / ``Ground Truth``), at any depth;
            the first such pair of folders is used.
        out_dir: Output root.
        name: Name of the test set in ``TestDataset``.
        test_list: File of stems (one per line) going to
            ``TestDataset/<name>``; the other pairs go to ``TrainDataset``.
            Without it, every pair goes to ``TestDataset/<name>``.
        link: Symlink JPEG / PNG images instead of copying them.

    Returns:
        Lines describing what was written.
    """
    dirs = find_pair_dirs(source)
    if not dirs:
        raise FileNotFoundError(
            f'no image folder ({"/".join(IMAGE_DIR_NAMES)}) next to a mask '
            f'folder ({"/".join(MASK_DIR_NAMES)}) in {source}')
    _, img_dir, mask_dir = dirs[0]
    pairs = _pairs(img_dir, mask_dir)
    test_dir = osp.join(out_dir, 'TestDataset', name)
    if test_list is None:
        n = write_pairs(pairs, osp.join(test_dir, 'images'),
                        osp.join(test_dir, 'masks'), link)
        return [f'TestDataset/{name}: {n} pairs from {img_dir}']
    with open(test_list) as f:
        wanted = [line.strip() for line in f if line.strip()]
    stems = {p[0] for p in pairs}
    unknown = [s for s in wanted if s not in stems]
    if unknown:
        raise FileNotFoundError(
            f'{len(unknown)} stem(s) of {test_list} are not in {img_dir}: '
            f'{", ".join(unknown[:10])}')
    wanted_set = set(wanted)
    test = [p for p in pairs if p[0] in wanted_set]
    train = [p for p in pairs if p[0] not in wanted_set]
    n_test = write_pairs(test, osp.join(test_dir, 'images'),
                         osp.join(test_dir, 'masks'), link)
    n_train = write_pairs(train,
                          osp.join(out_dir, 'TrainDataset', 'images'),
                          osp.join(out_dir, 'TrainDataset', 'masks'), link)
    return [
        f'TestDataset/{name}: {n_test} pairs from {img_dir}',
        f'TrainDataset: {n_train} pairs from {img_dir}'
    ]


def check_data_root(root: str) -> Tuple[int, List[str]]:
    """Find every problem of the image / mask pairs under ``root``.

    What ``PolypDataset`` and ``LoadPolypAnnotations`` would report one at a
    time, possibly mid-epoch, all in one pass: images without a mask, two
    files of one stem, unreadable or truncated files, masks that are not
    mask images, and masks whose size differs from their image's.

    Args:
        root: A data root; every folder below it holding an image folder
            and a mask folder side by side (``images`` / ``masks`` ...) is
            checked.

    Returns:
        ``(number of pairs checked, problems)``, one line per problem.

    Raises:
        FileNotFoundError: No image / mask folders under ``root``.
    """
    dirs = find_pair_dirs(root)
    if not dirs:
        raise FileNotFoundError(
            f'no image folder ({"/".join(IMAGE_DIR_NAMES)}) next to a mask '
            f'folder ({"/".join(MASK_DIR_NAMES)}) in {root}')
    checked, problems = 0, []
    for _, img_dir, mask_dir in dirs:
        try:
            images = index_by_stem(img_dir)
            masks = index_by_stem(mask_dir)
        except ValueError as e:
            problems.append(str(e))
            continue
        for stem, name in sorted(images.items()):
            img_path = osp.join(img_dir, name)
            if stem not in masks:
                problems.append(f'image {img_path} has no mask (no file of '
                                f'stem {stem!r} in {mask_dir})')
                continue
            checked += 1
            try:
                read_checked(img_path, osp.join(mask_dir, masks[stem]))
            except (OSError, ValueError) as e:
                problems.append(str(e))
    return checked, problems

"""Polyp segmentation data sets (PraNet split, Kvasir-SEG, CVC-ClinicDB)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mmengine
import mmengine.fileio as fileio
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .pranet_split import PRANET_VAL_FILE, SPLITS, select_split

__all__ = [
    'PolypDataset', 'POLYP_SUFFIXES', 'index_by_stem', 'list_polyp_pairs'
]

#: File suffixes of images and masks found in the public polyp data sets.
POLYP_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')


def index_by_stem(folder: str,
                  suffixes: Sequence[str] = POLYP_SUFFIXES,
                  backend_args: Optional[dict] = None) -> Dict[str, str]:
    """Map file stem -> file name for the files of ``folder``.

    A file matches the longest suffix it ends with (case-insensitive); the
    stem is the name without that suffix. Hidden files are skipped.

    Args:
        folder: The folder (not searched recursively).
        suffixes: Suffixes of the files to index.
        backend_args: Arguments of the file backend (mmengine.fileio).

    Returns:
        ``{stem: file name}``.

    Raises:
        ValueError: Two files share a stem (e.g. ``1.jpg`` and ``1.png``).
    """
    lowered = sorted({s.lower() for s in suffixes}, key=len, reverse=True)
    index: Dict[str, str] = {}
    names = fileio.list_dir_or_file(
        folder, list_dir=False, recursive=False, backend_args=backend_args)
    for name in sorted(names):
        suffix = next((s for s in lowered if name.lower().endswith(s)), None)
        if suffix is None or name.startswith('.'):
            continue
        stem = name[:-len(suffix)]
        if stem in index:
            raise ValueError(
                f'two files of stem {stem!r} in {folder}: {index[stem]} and '
                f'{name}; keep one')
        index[stem] = name
    return index


def list_polyp_pairs(
        img_dir: str,
        mask_dir: Optional[str],
        img_suffixes: Sequence[str] = POLYP_SUFFIXES,
        mask_suffixes: Sequence[str] = POLYP_SUFFIXES,
        backend_args: Optional[dict] = None
) -> List[Tuple[str, str, Optional[str]]]:
    """Match the images of a folder with their masks by file stem.

    ``1.jpg`` matches ``1.png``, ``1.tif`` or ``1.jpg`` in ``mask_dir``, so
    images and masks may have different formats.

    Args:
        img_dir: Folder of the images.
        mask_dir: Folder of the masks, or None for images only.
        img_suffixes: Suffixes of image files (case-insensitive).
        mask_suffixes: Suffixes of mask files (case-insensitive).
        backend_args: Arguments of the file backend (mmengine.fileio).

    Returns:
        ``[(stem, image path, mask path or None)]`` sorted by stem.

    Raises:
        FileNotFoundError: A folder is missing, or an image has no mask (the
            message names the images, at most ten).
        ValueError: No image in ``img_dir``, or two files share a stem.
    """
    for folder, what in ((img_dir, 'image'), (mask_dir, 'mask')):
        if folder is not None and not fileio.isdir(
                folder, backend_args=backend_args):
            raise FileNotFoundError(f'{what} folder not found: {folder}')
    images = index_by_stem(img_dir, img_suffixes, backend_args)
    if not images:
        raise ValueError(f'no image with a suffix in {tuple(img_suffixes)} '
                         f'in {img_dir}')
    if mask_dir is None:
        return [(stem, osp.join(img_dir, name), None)
                for stem, name in sorted(images.items())]

    masks = index_by_stem(mask_dir, mask_suffixes, backend_args)
    missing = sorted(set(images) - set(masks))
    if missing:
        names = ', '.join(osp.join(img_dir, images[s]) for s in missing[:10])
        more = f' and {len(missing) - 10} more' if len(missing) > 10 else ''
        raise FileNotFoundError(
            f'{len(missing)} image(s) without a mask (a file of the same '
            f'stem in {mask_dir}): {names}{more}')
    orphans = sorted(set(masks) - set(images))
    if orphans:
        print_log(
            f'{len(orphans)} mask(s) in {mask_dir} without an image, not '
            f'used: {", ".join(masks[s] for s in orphans[:5])}'
            f'{" ..." if len(orphans) > 5 else ""}',
            logger='current',
            level=30)
    return [(stem, osp.join(img_dir, name), osp.join(mask_dir, masks[stem]))
            for stem, name in sorted(images.items())]


@DATASETS.register_module()
class PolypDataset(BaseSegDataset):
    """Binary polyp segmentation data set: one folder of images, one of masks.

    Images and masks are matched by file stem, whatever their formats
    (``.jpg``, ``.png``, ``.tif`` ...). Every sample carries the name of its
    test set (``test_set`` in its data info; add ``'test_set'`` to the
    ``meta_keys`` of ``PackSegInputs``), so that ``PolypMetric`` reports one
    row per test set when several data sets are evaluated together through
    a ``ConcatDataset``. Load masks with ``LoadPolypAnnotations``, which
    binarises 0 / 255 masks to the labels 0 (background) and 1 (polyp).

    Layouts (``data_root`` / ``data_prefix``):

    - PraNet split: ``data_prefix=dict(img_path='TrainDataset/images',
      seg_map_path='TrainDataset/masks')`` and, for a test set,
      ``TestDataset/<Name>/images`` and ``TestDataset/<Name>/masks``;
    - raw Kvasir-SEG: ``images`` and ``masks`` (JPEG masks), the default;
    - raw CVC-ClinicDB: ``Original`` and ``Ground Truth`` (TIFF).

    A missing mask is reported when the data set is built; an unreadable
    file or a mask of another size than its image when the sample is loaded,
    with the file names. ``tools/dataset_converters/polyp.py --check
    DATA_ROOT`` finds all such problems of a data root in one pass, before
    training.

    Images only (inference on new frames): ``seg_map_path=None``. The
    samples then have no ``seg_map_path``; ``LoadPolypAnnotations`` passes
    them through and they carry no ground truth (predict, but do not
    evaluate, with such a data set).

    Args:
        data_prefix: ``img_path`` and ``seg_map_path`` folders, relative to
            ``data_root``; ``seg_map_path=None`` for images without masks.
        test_set: Name of the test set of every sample. Defaults to the
            name of the folder above the image folder (``Kvasir`` for
            ``TestDataset/Kvasir/images``).
        img_suffix: Suffix or suffixes of image files.
        seg_map_suffix: Suffix or suffixes of mask files.
        ann_file: Optional text file of the stems to use, one per line
            (relative to ``data_root``); default: every image of the folder.
        split: ``'val'``: only the images listed in ``split_file``;
            ``'train-minus-val'``: all the others; None (default): every
            image (of ``ann_file`` if given). Every listed image must be in
            the folder, else the error names the file and the images.
        split_file: The validation list, one stem per line (``#`` lines
            are comments); absolute or relative to the working directory.
            Defaults to the packaged PraNet validation split,
            ``mmseg_kdas/datasets/splits/pranet_val.txt`` (150 of the
            1,450 training images, see
            :mod:`mmseg_kdas.datasets.pranet_split`).
        **kwargs: Other arguments of ``BaseSegDataset`` (``pipeline``,
            ``data_root``, ``test_mode``, ``indices`` ...).

    Example:
        >>> dataset = PolypDataset(
        ...     data_root='data/polyp',
        ...     data_prefix=dict(img_path='TestDataset/Kvasir/images',
        ...                      seg_map_path='TestDataset/Kvasir/masks'),
        ...     pipeline=[])  # doctest: +SKIP
        >>> dataset[0]['test_set']  # doctest: +SKIP
        'Kvasir'
        >>> val = PolypDataset(
        ...     data_root='data/polyp', split='val', test_set='PraNet-val',
        ...     data_prefix=dict(img_path='TrainDataset/images',
        ...                      seg_map_path='TrainDataset/masks'),
        ...     pipeline=[])  # doctest: +SKIP
        >>> len(val)  # doctest: +SKIP
        150
    """

    METAINFO = dict(
        classes=('background', 'polyp'), palette=[[0, 0, 0], [255, 0, 0]])

    def __init__(self,
                 data_prefix: dict = dict(
                     img_path='images', seg_map_path='masks'),
                 test_set: Optional[str] = None,
                 img_suffix: Union[str, Sequence[str]] = POLYP_SUFFIXES,
                 seg_map_suffix: Union[str, Sequence[str]] = POLYP_SUFFIXES,
                 ann_file: str = '',
                 split: Optional[str] = None,
                 split_file: str = PRANET_VAL_FILE,
                 **kwargs) -> None:
        if split is not None and split not in SPLITS:
            raise ValueError(f'PolypDataset: split must be one of {SPLITS} '
                             f'or None, got {split!r}')
        self.split = split
        self.split_file = split_file
        if kwargs.get('reduce_zero_label', False):
            raise ValueError('PolypDataset does not support '
                             'reduce_zero_label=True: 0 is the background')
        if 'img_path' not in data_prefix or \
                'seg_map_path' not in data_prefix:
            raise KeyError('data_prefix needs the keys img_path and '
                           f'seg_map_path, got {data_prefix}')
        self.test_set = test_set
        # mmengine joins every prefix with data_root and rejects None: an
        # images-only data set leaves seg_map_path out of its data_prefix.
        data_prefix = dict(data_prefix)
        self.with_masks = data_prefix['seg_map_path'] is not None
        if not self.with_masks:
            del data_prefix['seg_map_path']
        super().__init__(
            ann_file=ann_file,
            img_suffix=_as_tuple(img_suffix),
            seg_map_suffix=_as_tuple(seg_map_suffix),
            data_prefix=data_prefix,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List the image / mask pairs of the folders.

        Returns:
            list[dict]: Data infos with ``img_path``, ``seg_map_path``,
            ``test_set``, ``label_map``, ``reduce_zero_label`` and
            ``seg_fields``.
        """
        img_dir = self.data_prefix['img_path']
        mask_dir = self.data_prefix['seg_map_path'] if self.with_masks \
            else None
        pairs = list_polyp_pairs(img_dir, mask_dir, self.img_suffix,
                                 self.seg_map_suffix, self.backend_args)
        if self.ann_file:
            if not fileio.isfile(self.ann_file,
                                 backend_args=self.backend_args):
                raise FileNotFoundError(
                    f'ann_file not found: {self.ann_file}')
            wanted = [
                line.strip() for line in mmengine.list_from_file(
                    self.ann_file, backend_args=self.backend_args)
                if line.strip()
            ]
            by_stem = {stem: (stem, img, mask) for stem, img, mask in pairs}
            unknown = [s for s in wanted if s not in by_stem]
            if unknown:
                raise FileNotFoundError(
                    f'{len(unknown)} stem(s) of {self.ann_file} have no '
                    f'image in {img_dir}: {", ".join(unknown[:10])}')
            pairs = [by_stem[s] for s in wanted]
        if self.split is not None:
            by_stem = {stem: (stem, img, mask) for stem, img, mask in pairs}
            kept = select_split([stem for stem, _, _ in pairs], self.split,
                                self.split_file, where=img_dir)
            pairs = [by_stem[s] for s in kept]

        test_set = self.test_set or osp.basename(
            osp.dirname(osp.normpath(img_dir))) or osp.basename(
                osp.normpath(img_dir))
        data_list = []
        for _, img_path, mask_path in pairs:
            info = dict(
                img_path=img_path,
                test_set=test_set,
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[])
            if mask_path is not None:
                info['seg_map_path'] = mask_path
            data_list.append(info)
        return data_list

    def prepare_data(self, idx: int):
        """Run the pipeline on one sample; errors name its files.

        Args:
            idx: Index of the sample.

        Returns:
            The output of the pipeline.
        """
        try:
            return super().prepare_data(idx)
        except Exception as e:
            info = self.get_data_info(idx)
            raise RuntimeError(
                f'failed to load sample {idx} of {type(self).__name__} '
                f'(image {info.get("img_path")}, mask '
                f'{info.get("seg_map_path")}): {type(e).__name__}: {e}'
            ) from e


def _as_tuple(suffix: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """A suffix or a sequence of suffixes as a tuple."""
    return (suffix, ) if isinstance(suffix, str) else tuple(suffix)

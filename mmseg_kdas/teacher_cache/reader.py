"""Read a teacher cache: the teacher's maps of a batch, as it gives them.

Each array is opened as a read-only numpy memory map
(``np.load(mmap_mode='r')``, which never unpickles), so any number of
processes (``tools/dist_train.sh``) share one copy in the page cache. Maps
the cache stores before the head's fixed upsampling are upsampled on load
with the same ``F.interpolate`` arguments: the same operation on the same
values, so the same bits.
"""
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .identity import TeacherCacheError, image_key
from .manifest import check_data_match, check_model_match, read_manifest
from .randomness import check_deterministic

__all__ = ['TeacherCache']


class TeacherCache:
    """A teacher cache folder, read-only (see :mod:`mmseg_kdas.teacher_cache`).

    Args:
        root (str): The cache folder (``manifest.json`` and its arrays).

    Raises:
        FileNotFoundError: If ``root`` or its manifest does not exist.
        TeacherCacheError: If the manifest is not a cache of this format.
    """

    def __init__(self, root: str) -> None:
        self.root = osp.abspath(root)
        self.manifest = read_manifest(self.root)
        self.images: List[dict] = self.manifest['images']
        self.index: Dict[str, int] = {
            rec['path']: i
            for i, rec in enumerate(self.images)
        }
        self.sources: List[str] = list(self.manifest['sources'])
        self.sizes: List[Tuple[int, int]] = [
            tuple(s) for s in self.manifest['sizes']
        ]
        self._arrays: Dict[Tuple[str, Tuple[int, int]], dict] = {
            (a['source'], tuple(a['size'])): a
            for a in self.manifest['arrays']
        }
        self._maps: Dict[Tuple[str, Tuple[int, int]], np.ndarray] = {}
        self.preprocessor_cfg: Optional[dict] = None
        self.data_checked = False

    def __repr__(self) -> str:
        return (f'TeacherCache({self.root!r}: {len(self.images)} images, '
                f'sources {self.sources}, sizes {self.sizes})')

    def check_model(self, teacher_cfg: dict, teacher_ckpt: Optional[str],
                    preprocessor_cfg: Optional[dict],
                    sources: Iterable[str]) -> None:
        """Check the teacher, its checkpoint, the preprocessing, the sources.

        Args:
            teacher_cfg: The run's teacher model config.
            teacher_ckpt: The run's teacher checkpoint, or None to take the
                cache's teacher as it is.
            preprocessor_cfg: The distiller's data preprocessor config.
            sources: Keys (``Source.key``) of the teacher maps the run
                consumes.

        Raises:
            TeacherCacheError: At the first mismatch, naming it (see
                :func:`~.manifest.check_model_match`).
        """
        check_model_match(self.manifest, self.root, teacher_cfg,
                          teacher_ckpt, preprocessor_cfg, sources)
        self.preprocessor_cfg = preprocessor_cfg

    def check_data(self, pipeline: Sequence[dict],
                   image_paths: Sequence[str],
                   preprocessor_cfg: Optional[dict] = None) -> None:
        """Check the training pipeline and every training image.

        Args:
            pipeline: The run's training pipeline (transform configs).
            image_paths: Every image path of the training set.
            preprocessor_cfg: The distiller's data preprocessor config, for
                the randomness check of its batch augmentations (default:
                the one :meth:`check_model` was given).

        Raises:
            TeacherCacheError: If the run is random (see
                :func:`~.randomness.check_deterministic`), the pipeline
                differs, or an image is not in the cache or has changed
                (see :func:`~.manifest.check_data_match`); the first one is
                named.
        """
        if preprocessor_cfg is None:
            preprocessor_cfg = self.preprocessor_cfg
        check_deterministic(pipeline, preprocessor_cfg)
        check_data_match(self.manifest, self.root, pipeline, image_paths)
        self.data_checked = True

    def _map(self, key: str, size: Tuple[int, int]) -> Tuple[np.ndarray,
                                                             dict]:
        entry = self._arrays.get((key, size))
        if entry is None:
            raise TeacherCacheError(
                f'teacher cache {self.root} has no {key} at size '
                f'{size[0]}x{size[1]} (cached sizes: '
                f'{[f"{h}x{w}" for h, w in self.sizes]}); the run produces '
                'a size the cache was not made for')
        if (key, size) not in self._maps:
            path = osp.join(self.root, entry['file'])
            arr = np.load(path, mmap_mode='r', allow_pickle=False)
            if list(arr.shape) != list(entry['shape']) or str(
                    arr.dtype) != entry['dtype']:
                raise TeacherCacheError(
                    f'{path}: shape {arr.shape} {arr.dtype}, the manifest '
                    f'says {entry["shape"]} {entry["dtype"]} (truncated or '
                    'corrupt)')
            self._maps[(key, size)] = arr
        return self._maps[(key, size)], entry

    def rows(self, image_paths: Sequence[str]) -> List[int]:
        """Rows of images; an image not in the cache is an error naming it."""
        rows = []
        for path in image_paths:
            row = self.index.get(image_key(path)) if path else None
            if row is None:
                raise TeacherCacheError(
                    f'image {path} is not in the teacher cache {self.root} '
                    f'({len(self.images)} images); the teacher is not run '
                    'in a cached run')
            rows.append(row)
        return rows

    def lookup(self, image_paths: Sequence[str], size: Sequence[int],
               keys: Iterable[str],
               device: torch.device) -> Dict[str, Tensor]:
        """The teacher's maps of a batch, as the online teacher gives them.

        Args:
            image_paths: ``img_path`` of every sample, in batch order.
            size: ``(H, W)`` of the batch's inputs.
            keys: The sources to return.
            device: Where the maps go.

        Returns:
            dict[str, Tensor]: ``N x C x h x w`` float32 per source,
            upsampled as the teacher's head does where the cache stores
            the maps before that upsampling.
        """
        rows = self.rows(image_paths)
        size = (int(size[0]), int(size[1]))
        out = {}
        for key in keys:
            arr, entry = self._map(key, size)
            maps = torch.from_numpy(np.stack([arr[r] for r in rows]))
            maps = maps.to(device)
            if entry.get('upsample'):
                maps = F.interpolate(maps, **entry['upsample'])
            out[key] = maps
        return out

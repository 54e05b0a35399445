"""Write a teacher cache: the teacher's maps, then the manifest.

Decode heads with ``forward_lowres`` and ``output_upsample``
(:class:`~mmseg_kdas.models.decode_heads.PolypPVTHead`) are stored before
their fixed x8 upsampling, in 1/64 of the space; the reader upsamples them
on load (:meth:`~.reader.TeacherCache.lookup`).
"""
import os.path as osp
import re
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..utils.map_sources import Source, select_map
from .manifest import write_manifest

__all__ = ['array_file_name', 'teacher_maps', 'TeacherCacheWriter']

MapsWithUpsample = Dict[str, Tuple[Tensor, Optional[dict]]]


def array_file_name(number: int, key: str, size: Sequence[int]) -> str:
    """File name of the array of one source at one size."""
    slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', key)
    return f'{number:02d}_{slug}_{size[0]}x{size[1]}.npy'


def teacher_maps(teacher: torch.nn.Module, inputs: Tensor,
                 sources: Sequence[Source]) -> MapsWithUpsample:
    """Run the frozen teacher once; the maps of ``sources`` as cached.

    Decode-head outputs come before the head's fixed upsampling where the
    head has ``forward_lowres`` and ``output_upsample``; module sources are
    recorded with forward hooks, as the distiller records them.

    Args:
        teacher: The teacher segmentor, in eval mode.
        inputs: A preprocessed batch ``N x 3 x H x W``.
        sources: The parsed sources.

    Returns:
        dict: ``{key: (float32 maps, upsample kwargs or None)}``.
    """
    head = teacher.decode_head
    lowres = callable(getattr(head, 'forward_lowres', None)) and hasattr(
        head, 'output_upsample')
    modules = dict(teacher.named_modules())
    records: Dict[str, Any] = {}
    handles = []
    for name in sorted({s.module for s in sources} - {None}):
        if name not in modules:
            raise KeyError(f'the teacher has no module named {name!r}')
        handles.append(modules[name].register_forward_hook(
            lambda module, args, output, name=name: records.__setitem__(
                name, output)))
    try:
        with torch.no_grad():
            feats = teacher.extract_feat(inputs)
            head_out = head.forward_lowres(feats) if lowres else head(feats)
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for source in sources:
        maps = select_map(source, head_out, records, 'teacher')
        upsample = dict(head.output_upsample) if (
            lowres and source.module is None) else None
        out[source.key] = (maps.detach().float().contiguous(), upsample)
    return out


class TeacherCacheWriter:
    """Fill a cache folder: arrays first, the manifest last.

    Used by :func:`~.builder.build_teacher_cache`: :meth:`allocate` creates
    every array (rank 0 of a distributed fill), :meth:`write` fills rows
    (each process its share of the images), :meth:`finish` writes the
    manifest (rank 0, after every process wrote).

    Args:
        folder (str): The folder being filled (a temporary one, renamed by
            the caller when the manifest is written).
        num_images (int): Rows of every array.
    """

    def __init__(self, folder: str, num_images: int) -> None:
        self.folder = folder
        self.num_images = num_images
        self.entries: Dict[Tuple[str, Tuple[int, int]], dict] = {}
        self._maps: Dict[Tuple[str, Tuple[int, int]], np.ndarray] = {}

    def plan(self, size: Sequence[int], probe: MapsWithUpsample) -> None:
        """Record the array of each source at ``size`` from a probe batch."""
        size = (int(size[0]), int(size[1]))
        for key, (maps, upsample) in probe.items():
            if (key, size) in self.entries:
                continue
            number = len(self.entries)
            self.entries[(key, size)] = dict(
                source=key,
                size=list(size),
                file=array_file_name(number, key, size),
                shape=[self.num_images] + list(maps.shape[1:]),
                dtype='float32',
                upsample=upsample)

    def allocate(self) -> None:
        """Create every planned array (zeros) on disk."""
        for entry in self.entries.values():
            np.lib.format.open_memmap(
                osp.join(self.folder, entry['file']),
                mode='w+',
                dtype=np.float32,
                shape=tuple(entry['shape'])).flush()

    def write(self, rows: Sequence[int], size: Sequence[int],
              maps: MapsWithUpsample) -> None:
        """Store the maps of the images ``rows`` at ``size``."""
        size = (int(size[0]), int(size[1]))
        for key, (value, _) in maps.items():
            entry = self.entries[(key, size)]
            if (key, size) not in self._maps:
                self._maps[(key, size)] = np.load(
                    osp.join(self.folder, entry['file']), mmap_mode='r+')
            if list(value.shape[1:]) != entry['shape'][1:]:
                raise ValueError(
                    f'the teacher gave {key} of shape {tuple(value.shape)} '
                    f'at {size}, earlier images {entry["shape"][1:]}: the '
                    'training images must all have one size after the '
                    'pipeline (add a fixed Resize)')
            self._maps[(key, size)][list(rows)] = value.cpu().numpy()

    def flush(self) -> None:
        """Write the filled rows to disk and close the arrays."""
        for arr in self._maps.values():
            arr.flush()
        self._maps.clear()

    def finish(self, record: dict) -> None:
        """Write ``manifest.json`` with the arrays' entries (last).

        Args:
            record: What the cache records of its run
                (:func:`~.manifest.run_record`).
        """
        self.flush()
        write_manifest(self.folder, record, self.entries.values())

"""An exact, shared cache of a frozen teacher's distilled maps.

In the reference recipe nothing random reaches the teacher: augmentation is
off, the multi-scale rates are a fixed set, and the frozen teacher runs in
eval mode. Its output for an image at a given size is then the same at every
epoch and in every run that distils from it (seeds, alpha / T sweeps,
ablations, the KD baselines). ``tools/cache_teacher.py`` runs the teacher
once over the training set at every size the run's multi-scale training
produces and stores the maps the run's ``at_pairs`` / ``sgm_pairs`` consume;
:class:`~mmseg_kdas.models.distillers.KDASDistiller` with
``teacher_cache=DIR`` reads them instead of building, loading or running
the teacher.

Layout of ``DIR`` (written under a temporary name and renamed when complete,
so a folder with the final name is a finished cache):

- ``manifest.json``: what the cache was made from (the format, the teacher
  config, the teacher checkpoint's SHA-256, the preprocessing and
  multi-scale settings, the training pipeline, the sources, every image
  with its size, modification time and SHA-256) and its arrays;
- one ``.npy`` file per (source, size): float32, ``N x C x h x w``, row
  ``i`` for image ``i`` of the manifest. They are opened as read-only numpy
  memory maps (``np.load(mmap_mode='r')``, which never unpickles), so any
  number of processes (``tools/dist_train.sh``) share one copy in the page
  cache.

Decode heads with ``forward_lowres`` and ``output_upsample``
(:class:`~mmseg_kdas.models.decode_heads.PolypPVTHead`) are stored before
their fixed x8 upsampling and upsampled on load with the same
``F.interpolate`` arguments: the same operation on the same values, so the
same bits, in 1/64 of the space.

A cache is checked before it is used, and every mismatch is an error that
names it (:class:`TeacherCacheError`): the teacher config, checkpoint,
preprocessing and sources when the distiller is built
(:meth:`TeacherCache.check_model`); the training pipeline and every image of
the training set before training (:meth:`TeacherCache.check_data`, run by
:class:`~mmseg_kdas.engine.hooks.TeacherCacheHook`); the image and size of
every sample at every step (:meth:`TeacherCache.lookup`). Training pipelines
with anything random beyond a fixed set of sizes are refused
(:func:`randomness_problems`).
"""
import hashlib
import json
import os
import os.path as osp
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...utils.atomic import atomic_write_text
from .sources import Source, select_map

__all__ = [
    'CACHE_FORMAT', 'MANIFEST', 'DETERMINISTIC_TRANSFORMS',
    'TeacherCacheError', 'TeacherCache', 'canonical', 'first_difference',
    'sha256_file', 'image_record', 'teacher_identity',
    'preprocessing_identity', 'randomness_problems', 'check_deterministic',
    'array_file_name', 'teacher_maps', 'TeacherCacheWriter'
]

CACHE_FORMAT = 'mmseg_kdas.teacher_cache/1'
MANIFEST = 'manifest.json'

#: Pipeline transforms whose output is a function of the image alone.
DETERMINISTIC_TRANSFORMS = frozenset({
    'LoadImageFromFile', 'LoadImageFromNDArray', 'LoadAnnotations',
    'LoadPolypAnnotations', 'Resize', 'SoftMaskResize', 'ResizeToMultiple',
    'PackSegInputs', 'PackPolypInputs', 'RGB2Gray', 'AdjustGamma', 'CLAHE'
})
# Random transforms by what they change, for the refusal message.
_RANDOM_KINDS = (
    ('flips and rotations', ('Flip', 'Rotate', 'RotFlip')),
    ('continuous random scaling or cropping',
     ('Resize', 'Crop', 'Mosaic', 'Scale')),
    ('photometric augmentation',
     ('PhotoMetric', 'Gaussian', 'Gamma', 'CutOut', 'Albu', 'Noise', 'Blur',
      'Color', 'Brightness', 'Contrast')),
)
# Keys of a teacher config that do not change its outputs.
_NOT_IDENTITY = ('init_cfg', 'data_preprocessor', 'loss_decode', 'train_cfg',
                 'pretrained')
# Preprocessing options that change the teacher's input.
_NORMALISATION = ('mean', 'std', 'bgr_to_rgb', 'rgb_to_bgr', 'size',
                  'size_divisor', 'pad_val')


class TeacherCacheError(ValueError):
    """A teacher cache that does not fit the run, or a refused run."""


def canonical(obj: Any) -> Any:
    """A config value as plain JSON data (dicts sorted, tuples as lists).

    Args:
        obj: Nested dicts (``ConfigDict`` included), lists, tuples, numbers,
            strings, booleans or None; anything else becomes ``repr``.

    Returns:
        The same data, comparable across processes and JSON round trips.
    """
    if isinstance(obj, dict):
        return {str(k): canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def first_difference(cached: Any, current: Any, path: str = '') -> \
        Optional[str]:
    """The first place where two canonical values differ, or None.

    Args:
        cached: The value recorded in the cache.
        current: The value of this run.
        path: Where the values sit (for the message).

    Returns:
        str: e.g. ``"backbone.arch is 'b2' in the cache and 'b0' in this
        run"``, or None when equal.
    """
    where = path or 'the value'
    if isinstance(cached, dict) and isinstance(current, dict):
        for key in sorted(set(cached) | set(current)):
            sub = f'{path}.{key}' if path else key
            if key not in current:
                return f'{sub} is in the cache ({cached[key]!r}) and not ' \
                       'in this run'
            if key not in cached:
                return f'{sub} is in this run ({current[key]!r}) and not ' \
                       'in the cache'
            diff = first_difference(cached[key], current[key], sub)
            if diff:
                return diff
        return None
    if isinstance(cached, list) and isinstance(current, list):
        if len(cached) != len(current):
            return (f'{where} has {len(cached)} items in the cache and '
                    f'{len(current)} in this run')
        for i, (a, b) in enumerate(zip(cached, current)):
            diff = first_difference(a, b, f'{path}[{i}]')
            if diff:
                return diff
        return None
    numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        for v in (cached, current))
    if cached != current or (not numbers
                             and type(cached) is not type(current)):
        return f'{where} is {cached!r} in the cache and {current!r} in ' \
               'this run'
    return None


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def image_record(path: str) -> dict:
    """What the cache keeps of one training image."""
    stat = os.stat(path)
    return dict(
        path=_norm(path),
        bytes=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sha256=sha256_file(path))


def _norm(path: str) -> str:
    return osp.normpath(osp.abspath(path))


def _strip(obj: Any, keys: Sequence[str]) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, (list, tuple)):
        return [_strip(v, keys) for v in obj]
    return obj


def teacher_identity(teacher_cfg: dict) -> dict:
    """The parts of a teacher config that decide its outputs.

    Initialisation (``init_cfg``: the checkpoint overrides it), the data
    preprocessor (the distiller's is recorded instead) and the losses are
    left out.
    """
    return canonical(_strip(teacher_cfg, _NOT_IDENTITY))


def _multiscale_cfg(preprocessor_cfg: dict) -> List[dict]:
    augments = (preprocessor_cfg or {}).get('batch_augments') or []
    return [a for a in augments if isinstance(a, dict)]


def preprocessing_identity(preprocessor_cfg: Optional[dict]) -> dict:
    """The preprocessing settings that decide the teacher's input.

    Normalisation and padding, and the multi-scale rates (with their size
    divisor and ``align_corners``). The multi-scale *mode* is left out:
    ``'all'``, ``'cycle'`` and ``'random'`` draw from the same set of sizes,
    so one cache serves them all.
    """
    cfg = preprocessor_cfg or {}
    normalise = {k: cfg.get(k) for k in _NORMALISATION}
    multiscale = []
    for aug in _multiscale_cfg(cfg):
        if aug.get('type') == 'BatchMultiScaleResize':
            multiscale.append(
                dict(
                    rates=[float(r) for r in aug.get('rates',
                                                     (0.75, 1.0, 1.25))],
                    size_divisor=aug.get('size_divisor', 32),
                    align_corners=aug.get('align_corners', True)))
    return canonical(dict(normalise=normalise, multiscale=multiscale))


def _random_kind(name: str) -> Optional[str]:
    for kind, words in _RANDOM_KINDS:
        if any(word in name for word in words):
            return kind
    return None


def randomness_problems(pipeline: Sequence[dict],
                        preprocessor_cfg: Optional[dict]) -> List[str]:
    """Why the teacher's input would not be a fixed function of the image.

    Args:
        pipeline: The training pipeline (transform configs).
        preprocessor_cfg: The distiller's data preprocessor config.

    Returns:
        list[str]: One reason per refused transform or batch augmentation;
        empty when the teacher sees each image at a fixed set of sizes.
    """
    problems = []
    for i, step in enumerate(pipeline or []):
        name = step.get('type') if isinstance(step, dict) else None
        if not isinstance(name, str):
            name = getattr(name, '__name__', repr(name))
        if name in DETERMINISTIC_TRANSFORMS:
            continue
        if name == 'RandomFlip' and not step.get('prob'):
            continue  # prob 0 (or None): never flips
        kind = _random_kind(name)
        if 'Random' in name or kind is not None:
            problems.append(
                f'train pipeline step {i} ({name}) is random'
                f'{f" ({kind})" if kind else ""}: the teacher would see '
                'another input for the same image from one epoch to the '
                'next')
        else:
            problems.append(
                f'train pipeline step {i} ({name}) is not known to be '
                'deterministic (the cache accepts '
                f'{", ".join(sorted(DETERMINISTIC_TRANSFORMS))})')
    augments = (preprocessor_cfg or {}).get('batch_augments') or []
    for i, aug in enumerate(augments):
        name = aug.get('type') if isinstance(aug, dict) else type(aug).__name__
        if name != 'BatchMultiScaleResize':
            problems.append(
                f'data_preprocessor.batch_augments[{i}] ({name}) is not '
                'BatchMultiScaleResize, the one batch augmentation whose '
                'sizes the cache knows (a fixed set of rates)')
    return problems


def check_deterministic(pipeline: Sequence[dict],
                        preprocessor_cfg: Optional[dict]) -> None:
    """Raise :class:`TeacherCacheError` if the teacher's input is random."""
    problems = randomness_problems(pipeline, preprocessor_cfg)
    if problems:
        raise TeacherCacheError(
            'a teacher cache is exact only when nothing random reaches the '
            'teacher, and this run refuses it: ' + '; '.join(problems) +
            '. Train with the online teacher (no model.teacher_cache) or '
            'make the pipeline deterministic.')


def array_file_name(number: int, key: str, size: Sequence[int]) -> str:
    """File name of the array of one source at one size."""
    slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', key)
    return f'{number:02d}_{slug}_{size[0]}x{size[1]}.npy'


class TeacherCache:
    """A teacher cache folder, read-only (see the module docstring).

    Args:
        root (str): The cache folder (``manifest.json`` and its arrays).

    Raises:
        FileNotFoundError: If ``root`` or its manifest does not exist.
        TeacherCacheError: If the manifest is not a cache of this format.
    """

    def __init__(self, root: str) -> None:
        self.root = osp.abspath(root)
        manifest = osp.join(self.root, MANIFEST)
        if not osp.isdir(self.root):
            raise FileNotFoundError(f'teacher cache not found: {self.root} '
                                    '(make it with tools/cache_teacher.py)')
        if not osp.isfile(manifest):
            raise FileNotFoundError(
                f'{manifest} not found: {self.root} is not a teacher cache '
                '(or not a finished one)')
        try:
            with open(manifest) as f:
                self.manifest = json.load(f)
        except (OSError, ValueError) as err:
            raise TeacherCacheError(f'{manifest} cannot be read: {err}')
        if self.manifest.get('format') != CACHE_FORMAT:
            raise TeacherCacheError(
                f'{manifest}: format {self.manifest.get("format")!r}, '
                f'expected {CACHE_FORMAT!r}')
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

    def _mismatch(self, what: str, diff: str) -> TeacherCacheError:
        return TeacherCacheError(
            f'teacher cache {self.root} does not match this run: {what}: '
            f'{diff}. Make a new cache for this run with '
            'tools/cache_teacher.py (or train without model.teacher_cache)')

    def check_model(self, teacher_cfg: dict, teacher_ckpt: Optional[str],
                    preprocessor_cfg: Optional[dict],
                    sources: Iterable[str]) -> None:
        """Check the teacher, its checkpoint, the preprocessing, the sources.

        Args:
            teacher_cfg: The run's teacher model config.
            teacher_ckpt: The run's teacher checkpoint, or None to take the
                cache's teacher as it is.
            preprocessor_cfg: The distiller's data preprocessor config.
            sources: Keys (:attr:`Source.key`) of the teacher maps the run
                consumes.

        Raises:
            TeacherCacheError: At the first mismatch, naming it.
        """
        cached = self.manifest['teacher']
        diff = first_difference(cached['config'],
                                teacher_identity(teacher_cfg))
        if diff:
            raise self._mismatch('the teacher config differs', diff)
        if teacher_ckpt is not None:
            if not osp.isfile(teacher_ckpt):
                raise FileNotFoundError(
                    f'teacher checkpoint file not found: {teacher_ckpt} (it '
                    'is hashed to check the teacher cache; set '
                    'model.teacher_ckpt=None to take the cache\'s teacher, '
                    f'{cached["checkpoint"]["path"]}, as it is)')
            digest = sha256_file(teacher_ckpt)
            if digest != cached['checkpoint']['sha256']:
                raise self._mismatch(
                    'the teacher checkpoint differs',
                    f'{teacher_ckpt} has SHA-256 {digest[:16]}..., the cache '
                    f'was made from {cached["checkpoint"]["path"]} '
                    f'({cached["checkpoint"]["sha256"][:16]}...)')
        diff = first_difference(self.manifest['preprocessing'],
                                preprocessing_identity(preprocessor_cfg))
        if diff:
            raise self._mismatch('the preprocessing differs', diff)
        self.preprocessor_cfg = preprocessor_cfg
        missing = [s for s in sources if s not in self.sources]
        if missing:
            raise self._mismatch(
                'teacher maps the run consumes are not cached',
                f'{missing} (cached: {self.sources})')

    def check_data(self, pipeline: Sequence[dict],
                   image_paths: Sequence[str],
                   preprocessor_cfg: Optional[dict] = None) -> None:
        """Check the training pipeline and every training image.

        An image whose modification time changed is hashed again: only a
        change of content is a mismatch.

        Args:
            pipeline: The run's training pipeline (transform configs).
            image_paths: Every image path of the training set.
            preprocessor_cfg: The distiller's data preprocessor config, for
                the randomness check of its batch augmentations (default:
                the one :meth:`check_model` was given).

        Raises:
            TeacherCacheError: If the run is random (see
                :func:`check_deterministic`), the pipeline differs, or an
                image is not in the cache or has changed; the first one is
                named.
        """
        if preprocessor_cfg is None:
            preprocessor_cfg = self.preprocessor_cfg
        check_deterministic(pipeline, preprocessor_cfg)
        diff = first_difference(self.manifest['pipeline'],
                                canonical(list(pipeline)), 'pipeline')
        if diff:
            raise self._mismatch('the training pipeline differs', diff)
        for path in image_paths:
            norm = _norm(path)
            row = self.index.get(norm)
            if row is None:
                raise self._mismatch(
                    'a training image is not in the cache',
                    f'{norm} (the cache holds {len(self.images)} images, '
                    f'e.g. {self.images[0]["path"] if self.images else ""})')
            rec = self.images[row]
            try:
                stat = os.stat(norm)
            except OSError as err:
                raise self._mismatch('a cached training image cannot be '
                                     'read', f'{norm}: {err}')
            if stat.st_size != rec['bytes'] or (
                    stat.st_mtime_ns != rec['mtime_ns']
                    and sha256_file(norm) != rec['sha256']):
                raise self._mismatch(
                    'a training image has changed since the cache was made',
                    f'{norm}')
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
            row = self.index.get(_norm(path)) if path else None
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


MapsWithUpsample = Dict[str, Tuple[Tensor, Optional[dict]]]


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

    Used by ``tools/cache_teacher.py``: :meth:`allocate` creates every array
    (rank 0 of a distributed fill), :meth:`write` fills rows (each process
    its share of the images), :meth:`finish` writes the manifest (rank 0,
    after every process wrote).

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

    def finish(self, manifest: dict) -> None:
        """Write ``manifest.json`` with the arrays' entries (last)."""
        self.flush()
        manifest = dict(manifest)
        manifest['format'] = CACHE_FORMAT
        manifest['arrays'] = list(self.entries.values())
        manifest['sizes'] = sorted({k[1] for k in self.entries})
        atomic_write_text(
            osp.join(self.folder, MANIFEST),
            json.dumps(manifest, indent=1, sort_keys=True))

"""What identifies a cache's teacher, preprocessing and images.

A cache records these as plain JSON data (:func:`canonical`) and compares
them with the run's by :func:`first_difference`, whose message names the
first key that differs. :class:`TeacherCacheError` is the error of every
mismatch and refusal of the package.
"""
import os
import os.path as osp
from typing import Any, List, Optional, Sequence

from ..utils.checkpoint_file import sha256_file

__all__ = [
    'TeacherCacheError', 'canonical', 'first_difference', 'image_key',
    'image_record', 'teacher_identity', 'preprocessing_identity'
]

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


def image_key(path: str) -> str:
    """How a cache names an image: its absolute, normalised path."""
    return osp.normpath(osp.abspath(path))


def image_record(path: str) -> dict:
    """What the cache keeps of one training image."""
    stat = os.stat(path)
    return dict(
        path=image_key(path),
        bytes=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sha256=sha256_file(path))


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

"""The manifest of a teacher cache: its one schema, written and checked here.

``manifest.json`` is written last, when every array is complete
(:func:`write_manifest`), and holds:

- ``format``: :data:`CACHE_FORMAT`;
- ``teacher``: ``config``, the teacher config's
  :func:`~.identity.teacher_identity`, and ``checkpoint``, the teacher
  file's ``path``, ``bytes`` and ``sha256`` (:func:`checkpoint_record`);
- ``preprocessing``: the distiller's
  :func:`~.identity.preprocessing_identity`;
- ``pipeline``: the training pipeline, :func:`~.identity.canonical`;
- ``sources``: the keys of the cached teacher maps (``'head:0'``,
  ``'backbone:3'``);
- ``images``: one :func:`~.identity.image_record` per image (path, bytes,
  modification time, SHA-256), in the order of the arrays' rows;
- ``config``: the config file the cache was made from, or None;
- ``arrays``: one entry per (source, size): ``source``, ``size``,
  ``file``, ``shape``, ``dtype`` and ``upsample`` (the ``F.interpolate``
  arguments applied on load, or None);
- ``sizes``: the ``[H, W]`` of the arrays, sorted.

:func:`read_manifest` reads it back; :func:`check_model_match` and
:func:`check_data_match` compare it with a run and raise
:class:`~.identity.TeacherCacheError` at the first difference, naming it.
"""
import json
import os
import os.path as osp
from typing import Iterable, Optional, Sequence

from ..utils.atomic import atomic_write_text
from ..utils.checkpoint_file import sha256_file
from .identity import (TeacherCacheError, canonical, first_difference,
                       image_key, image_record, preprocessing_identity,
                       teacher_identity)

__all__ = [
    'CACHE_FORMAT', 'MANIFEST', 'checkpoint_record', 'run_record',
    'write_manifest', 'read_manifest', 'check_model_match',
    'check_data_match'
]

CACHE_FORMAT = 'mmseg_kdas.teacher_cache/1'
MANIFEST = 'manifest.json'


def checkpoint_record(path: str) -> dict:
    """What the manifest keeps of the teacher checkpoint file."""
    return dict(
        path=osp.abspath(path),
        bytes=osp.getsize(path),
        sha256=sha256_file(path))


def run_record(teacher_cfg: dict,
               teacher_ckpt: Optional[str],
               preprocessor_cfg: Optional[dict],
               pipeline: Sequence[dict],
               sources: Sequence[str],
               image_paths: Sequence[str],
               config: Optional[str] = None) -> dict:
    """What a cache records of the run it is made for (all but its arrays).

    Args:
        teacher_cfg: The teacher model config.
        teacher_ckpt: The teacher checkpoint file, or None for a cache of
            an in-memory batch (``benchmark_kd_step.py``), whose teacher
            and images are then recorded by name only, with no content.
        preprocessor_cfg: The distiller's data preprocessor config.
        pipeline: The training pipeline (transform configs).
        sources: Keys of the cached teacher maps.
        image_paths: The training images, in the order of the rows.
        config: The config file the cache is made from, if any.

    Returns:
        dict: The manifest's keys but ``format``, ``arrays`` and ``sizes``
        (:func:`write_manifest` adds them).
    """
    if teacher_ckpt is None:
        checkpoint = dict(path=None, bytes=0, sha256='')
        images = [
            dict(path=p, bytes=0, mtime_ns=0, sha256='') for p in image_paths
        ]
    else:
        checkpoint = checkpoint_record(teacher_ckpt)
        images = [image_record(p) for p in image_paths]
    return dict(
        teacher=dict(
            config=teacher_identity(teacher_cfg), checkpoint=checkpoint),
        preprocessing=preprocessing_identity(preprocessor_cfg),
        pipeline=canonical(list(pipeline)),
        sources=list(sources),
        images=images,
        config=config)


def write_manifest(folder: str, record: dict,
                   arrays: Iterable[dict]) -> None:
    """Write ``folder/manifest.json`` atomically.

    Args:
        folder: The cache folder, its arrays complete.
        record: What the cache records of its run (:func:`run_record`).
        arrays: The entries of its arrays (see the module docstring).
    """
    manifest = dict(record)
    manifest['format'] = CACHE_FORMAT
    manifest['arrays'] = list(arrays)
    manifest['sizes'] = sorted({tuple(a['size']) for a in manifest['arrays']})
    atomic_write_text(
        osp.join(folder, MANIFEST),
        json.dumps(manifest, indent=1, sort_keys=True))


def read_manifest(root: str) -> dict:
    """The manifest of the cache folder ``root``.

    Raises:
        FileNotFoundError: If ``root`` or its manifest does not exist.
        TeacherCacheError: If the manifest cannot be read or is not of
            :data:`CACHE_FORMAT`.
    """
    path = osp.join(root, MANIFEST)
    if not osp.isdir(root):
        raise FileNotFoundError(f'teacher cache not found: {root} '
                                '(make it with tools/cache_teacher.py)')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: {root} is not a teacher cache (or not a '
            'finished one)')
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        raise TeacherCacheError(f'{path} cannot be read: {err}')
    if manifest.get('format') != CACHE_FORMAT:
        raise TeacherCacheError(
            f'{path}: format {manifest.get("format")!r}, expected '
            f'{CACHE_FORMAT!r}')
    return manifest


def _mismatch(root: str, what: str, diff: str) -> TeacherCacheError:
    return TeacherCacheError(
        f'teacher cache {root} does not match this run: {what}: {diff}. '
        'Make a new cache for this run with tools/cache_teacher.py (or '
        'train without model.teacher_cache)')


def check_model_match(manifest: dict, root: str, teacher_cfg: dict,
                      teacher_ckpt: Optional[str],
                      preprocessor_cfg: Optional[dict],
                      sources: Iterable[str]) -> None:
    """Check the teacher, its checkpoint, the preprocessing, the sources.

    Args:
        manifest: The cache's manifest (:func:`read_manifest`).
        root: The cache folder, for the messages.
        teacher_cfg: The run's teacher model config.
        teacher_ckpt: The run's teacher checkpoint, or None to take the
            cache's teacher as it is.
        preprocessor_cfg: The distiller's data preprocessor config.
        sources: Keys of the teacher maps the run consumes.

    Raises:
        TeacherCacheError: At the first mismatch, naming it.
        FileNotFoundError: If ``teacher_ckpt`` does not exist.
    """
    cached = manifest['teacher']
    diff = first_difference(cached['config'], teacher_identity(teacher_cfg))
    if diff:
        raise _mismatch(root, 'the teacher config differs', diff)
    if teacher_ckpt is not None:
        if not osp.isfile(teacher_ckpt):
            raise FileNotFoundError(
                f'teacher checkpoint file not found: {teacher_ckpt} (it is '
                'hashed to check the teacher cache; set '
                'model.teacher_ckpt=None to take the cache\'s teacher, '
                f'{cached["checkpoint"]["path"]}, as it is)')
        digest = sha256_file(teacher_ckpt)
        if digest != cached['checkpoint']['sha256']:
            raise _mismatch(
                root, 'the teacher checkpoint differs',
                f'{teacher_ckpt} has SHA-256 {digest[:16]}..., the cache '
                f'was made from {cached["checkpoint"]["path"]} '
                f'({cached["checkpoint"]["sha256"][:16]}...)')
    diff = first_difference(manifest['preprocessing'],
                            preprocessing_identity(preprocessor_cfg))
    if diff:
        raise _mismatch(root, 'the preprocessing differs', diff)
    missing = [s for s in sources if s not in manifest['sources']]
    if missing:
        raise _mismatch(root, 'teacher maps the run consumes are not cached',
                        f'{missing} (cached: {list(manifest["sources"])})')


def check_data_match(manifest: dict, root: str, pipeline: Sequence[dict],
                     image_paths: Sequence[str]) -> None:
    """Check the training pipeline and every training image.

    An image whose modification time changed is hashed again: only a
    change of content is a mismatch.

    Args:
        manifest: The cache's manifest (:func:`read_manifest`).
        root: The cache folder, for the messages.
        pipeline: The run's training pipeline (transform configs).
        image_paths: Every image path of the training set.

    Raises:
        TeacherCacheError: If the pipeline differs, or an image is not in
            the cache or has changed; the first one is named.
    """
    diff = first_difference(manifest['pipeline'], canonical(list(pipeline)),
                            'pipeline')
    if diff:
        raise _mismatch(root, 'the training pipeline differs', diff)
    images = manifest['images']
    records = {rec['path']: rec for rec in images}
    for path in image_paths:
        key = image_key(path)
        rec = records.get(key)
        if rec is None:
            raise _mismatch(
                root, 'a training image is not in the cache',
                f'{key} (the cache holds {len(images)} images, e.g. '
                f'{images[0]["path"] if images else ""})')
        try:
            stat = os.stat(key)
        except OSError as err:
            raise _mismatch(root, 'a cached training image cannot be read',
                            f'{key}: {err}')
        if stat.st_size != rec['bytes'] or (
                stat.st_mtime_ns != rec['mtime_ns']
                and sha256_file(key) != rec['sha256']):
            raise _mismatch(
                root, 'a training image has changed since the cache was made',
                key)

"""An exact, shared cache of a frozen teacher's distilled maps.

In the reference recipe nothing random reaches the teacher: augmentation is
off, the multi-scale rates are a fixed set, and the frozen teacher runs in
eval mode. Its output for an image at a given size is then the same at every
epoch and in every run that distils from it (seeds, alpha / T sweeps,
ablations, the KD baselines). ``tools/cache_teacher.py``
(:func:`build_teacher_cache`) runs the teacher once over the training set at
every size the run's multi-scale training produces and stores the maps the
run's ``at_pairs`` / ``sgm_pairs`` consume, head outputs and module outputs
(``'backbone:3'``) alike;
:class:`~mmseg_kdas.models.distillers.KDASDistiller` with
``teacher_cache=DIR`` reads them (:class:`TeacherCache`) instead of
building, loading or running the teacher.

Layout of ``DIR`` (written under a temporary name and renamed when complete,
so a folder with the final name is a finished cache):

- ``manifest.json``: what the cache was made from and its arrays (the
  schema is in :mod:`~mmseg_kdas.teacher_cache.manifest`);
- one ``.npy`` file per (source, size): float32, ``N x C x h x w``, row
  ``i`` for image ``i`` of the manifest, read as shared memory maps.

A cache is checked before it is used, and every mismatch is an error that
names it (:class:`TeacherCacheError`): the teacher config, checkpoint,
preprocessing and sources when the distiller is built
(:meth:`TeacherCache.check_model`); the training pipeline and every image of
the training set before training (:meth:`TeacherCache.check_data`, run by
:class:`TeacherCacheHook`); the image and size of every sample at every step
(:meth:`TeacherCache.lookup`). Training pipelines with anything random
beyond a fixed set of sizes are refused (:func:`randomness_problems`).

Modules, from the bottom up: ``identity`` (what identifies a teacher, its
preprocessing and an image), ``randomness`` (the runs a cache can serve),
``manifest``, ``reader``, ``writer``, ``hook`` and ``builder``. The package
imports nothing of :mod:`mmseg_kdas.models` or :mod:`mmseg_kdas.engine`;
the distiller imports its reader.
"""
from .builder import build_teacher_cache
from .hook import TeacherCacheHook, dataset_image_paths, dataset_pipelines
from .identity import (TeacherCacheError, canonical, first_difference,
                       image_record, preprocessing_identity, teacher_identity)
from .manifest import CACHE_FORMAT, MANIFEST, run_record
from .randomness import (DETERMINISTIC_TRANSFORMS, check_deterministic,
                         randomness_problems)
from .reader import TeacherCache
from .writer import TeacherCacheWriter, array_file_name, teacher_maps

__all__ = [
    'CACHE_FORMAT', 'MANIFEST', 'DETERMINISTIC_TRANSFORMS',
    'TeacherCacheError', 'TeacherCache', 'TeacherCacheWriter',
    'TeacherCacheHook', 'build_teacher_cache', 'canonical',
    'first_difference', 'image_record', 'teacher_identity',
    'preprocessing_identity', 'randomness_problems', 'check_deterministic',
    'array_file_name', 'teacher_maps', 'run_record', 'dataset_pipelines',
    'dataset_image_paths'
]

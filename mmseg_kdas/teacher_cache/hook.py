"""Check a distiller's teacher cache against the training data.

:class:`TeacherCacheHook` runs the check before training;
:func:`dataset_pipelines` and :func:`dataset_image_paths` give it (and the
builder) the pipelines and images of a training set.
"""
import logging
from typing import List

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from .identity import TeacherCacheError

__all__ = ['dataset_pipelines', 'dataset_image_paths', 'TeacherCacheHook']


def dataset_pipelines(dataset_cfg: dict) -> List[list]:
    """The pipelines of a dataset config, through dataset wrappers.

    Args:
        dataset_cfg: A dataset config: one with a ``pipeline``, or a wrapper
            with ``dataset`` (``RepeatDataset``, ``ClassBalancedDataset``)
            or ``datasets`` (``ConcatDataset``).

    Returns:
        list[list[dict]]: Every pipeline found, in order.
    """
    if 'pipeline' in dataset_cfg:
        return [list(dataset_cfg['pipeline'])]
    if 'dataset' in dataset_cfg:
        return dataset_pipelines(dataset_cfg['dataset'])
    found = []
    for sub in dataset_cfg.get('datasets', []):
        found += dataset_pipelines(sub)
    return found


def dataset_image_paths(dataset) -> List[str]:
    """``img_path`` of every sample of a built dataset, each once."""
    seen = dict()
    for i in range(len(dataset)):
        path = dataset.get_data_info(i).get('img_path')
        if path is not None:
            seen.setdefault(path, None)
    return list(seen)


@HOOKS.register_module()
class TeacherCacheHook(Hook):
    """Check the teacher cache of a distiller before training starts.

    ``tools/train.py`` adds this hook to every run; it does nothing unless
    the model is a :class:`~mmseg_kdas.models.KDASDistiller` built with
    ``teacher_cache``. It then checks, before the first iteration, that the
    training pipeline is deterministic and the one the cache was made with,
    and that every training image is in the cache with unchanged content
    (:meth:`~mmseg_kdas.teacher_cache.TeacherCache.check_data`); the
    distiller refuses to train from a cache that was not checked so.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        cache = getattr(model, 'teacher_cache', None)
        if cache is None:
            return
        dataset_cfg = runner.cfg.train_dataloader.dataset
        pipelines = dataset_pipelines(dataset_cfg)
        if not pipelines:
            raise TeacherCacheError(
                'train_dataloader.dataset has no pipeline to check against '
                f'the teacher cache {cache.root}')
        paths = dataset_image_paths(runner.train_dataloader.dataset)
        for pipeline in pipelines:
            cache.check_data(pipeline, paths)
        print_log(
            f'TeacherCacheHook: {len(paths)} training images and the '
            f'pipeline match {cache}',
            logger='current',
            level=logging.INFO)

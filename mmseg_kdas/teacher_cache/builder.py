"""Fill a teacher cache: the frozen teacher once over the training set.

The command line is ``tools/cache_teacher.py``. The distiller is built from
the config through mmseg's ``MODELS`` registry and used through what every
``KDASDistiller`` has (``teacher``, ``data_preprocessor``,
``preprocessor_cfg``, ``teacher_sources``), so that this package imports
nothing of :mod:`mmseg_kdas.models`.
"""
import copy
import math
import os
import os.path as osp
import shutil
import time
from typing import Any, List, Optional

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.dist import barrier, get_dist_info
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS

from ..utils.atomic import fsync_dir
from ..utils.distributed import setup_cpu_distributed
from ..utils.model_config import load_model_config
from .hook import dataset_pipelines
from .identity import TeacherCacheError, canonical
from .manifest import MANIFEST, run_record
from .randomness import check_deterministic
from .writer import TeacherCacheWriter, teacher_maps

__all__ = ['build_teacher_cache']


def _multiscale_augment(preprocessor: torch.nn.Module) -> Optional[Any]:
    """The ``BatchMultiScaleResize`` of a data preprocessor, or None.

    :func:`~.randomness.check_deterministic` has refused every other batch
    augmentation, so each one the preprocessor built is one.
    """
    built = getattr(
        getattr(preprocessor, 'batch_augments', None), 'augments', None) or []
    if len(built) > 1:
        raise ValueError('the data preprocessor has more than one '
                         f'BatchMultiScaleResize: {built}')
    return built[0] if built else None


def _rates(augment) -> List[Optional[int]]:
    return list(range(len(augment.rates))) if augment is not None else [None]


def _preprocess(preprocessor, augment, data: dict, rate_index):
    batch = copy.deepcopy(data)  # the preprocessor resizes samples in place
    if rate_index is not None:
        augment.set_rate_index(rate_index)
    return preprocessor(batch, True)['inputs']


def build_teacher_cache(cfg: Config,
                        out: str,
                        batch_size: Optional[int] = None,
                        estimate: bool = False,
                        launcher: str = 'none') -> Optional[str]:
    """Run the teacher of a distiller config once; write its cache to ``out``.

    See ``tools/cache_teacher.py`` (its command line) and
    :mod:`mmseg_kdas.teacher_cache` (the cache).

    Args:
        cfg: A config whose ``model`` is a ``KDASDistiller`` with a
            ``teacher_ckpt``; its ``train_dataloader.dataset`` is cached.
        out: The cache folder; it must not exist. It is filled as
            ``<out>.partial`` and renamed when complete.
        batch_size: Images per teacher forward (default: the training
            batch size).
        estimate: Only print the size the cache would take.
        launcher: ``'none'``, or the launcher of a distributed fill
            (each process caches every ``world_size``-th image).

    Returns:
        ``out`` (None with ``estimate``).

    Raises:
        TeacherCacheError: If the training input of the teacher is random,
            or the images differ in size after the pipeline.
        ValueError: If ``model.teacher_ckpt`` is None.
        FileExistsError: If ``out`` exists.
    """
    name = cfg.filename or 'the config'
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    out = osp.abspath(out)
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('type') != 'KDASDistiller':
        raise TypeError(f'{name}: model.type is '
                        f'{model_cfg.get("type")!r}; a teacher cache is made '
                        'for a KDASDistiller config')
    model_cfg.pop('teacher_cache', None)
    ckpt = model_cfg.get('teacher_ckpt')
    if ckpt is None and not estimate:
        raise ValueError(
            f'{name}: model.teacher_ckpt is None; the cache is made '
            'from a teacher file (--cfg-options model.teacher_ckpt=PATH)')
    if osp.exists(out) and not estimate:
        raise FileExistsError(f'{out} exists; remove it to rebuild the '
                              'cache, or train from it as it is')

    dataset_cfg = cfg.train_dataloader.dataset
    pipelines = dataset_pipelines(dataset_cfg)
    if not pipelines:
        raise TeacherCacheError(
            f'{name}: train_dataloader.dataset has no pipeline')
    if any(canonical(p) != canonical(pipelines[0]) for p in pipelines):
        raise TeacherCacheError(
            f'{name}: the training datasets have different pipelines; '
            'a cache records one')
    distiller = MODELS.build(model_cfg)
    preprocessor_cfg = distiller.preprocessor_cfg
    check_deterministic(pipelines[0], preprocessor_cfg)
    distributed = setup_cpu_distributed(cfg, launcher)
    if launcher != 'none' and not distributed:
        from mmengine.dist import init_dist
        init_dist(launcher)
    rank, world_size = get_dist_info()
    device = torch.device(
        f'cuda:{torch.cuda.current_device()}'
        if torch.cuda.is_available() else 'cpu')
    teacher = distiller.teacher.to(device).eval()
    preprocessor = distiller.data_preprocessor.to(device)
    augment = _multiscale_augment(preprocessor)
    sources = distiller.teacher_sources
    if not sources:
        raise ValueError(f'{name}: no distillation term is active '
                         '(alpha, at_weight, sgm_weight or the pairs), so '
                         'nothing of the teacher is consumed')

    dataset = DATASETS.build(dataset_cfg)
    # each image once: its first sample
    first_index = {}
    for i in range(len(dataset)):
        first_index.setdefault(dataset.get_data_info(i).get('img_path'), i)
    first_index.pop(None, None)
    paths = list(first_index)
    batch_size = batch_size or cfg.train_dataloader.batch_size
    writer = TeacherCacheWriter(out + '.partial', len(paths))

    # one image at every size: the arrays' shapes
    probe = pseudo_collate([dataset[first_index[paths[0]]]])
    image_shape = tuple(probe['inputs'][0].shape)
    for rate in _rates(augment):
        inputs = _preprocess(preprocessor, augment, probe, rate)
        writer.plan(inputs.shape[-2:],
                    teacher_maps(teacher, inputs, sources))
    per_image = sum(
        4 * math.prod(e['shape'][1:])
        for e in writer.entries.values())
    print(f'{len(paths)} images at sizes '
          f'{sorted({k[1] for k in writer.entries})}, sources '
          f'{[s.key for s in sources]}: {per_image * len(paths) / 2**20:.1f} '
          f'MiB ({per_image} bytes per image)')
    if estimate:
        return None

    if rank == 0:
        shutil.rmtree(writer.folder, ignore_errors=True)  # a killed fill
        os.makedirs(writer.folder)
        writer.allocate()
    barrier()
    start = time.time()
    mine = list(range(rank, len(paths), world_size))
    for done, begin in enumerate(range(0, len(mine), batch_size)):
        rows = mine[begin:begin + batch_size]
        samples = [dataset[first_index[paths[r]]] for r in rows]
        for sample in samples:
            if tuple(sample['inputs'].shape) != image_shape:
                raise TeacherCacheError(
                    f'{sample["data_samples"].img_path} is '
                    f'{tuple(sample["inputs"].shape)} after the pipeline and '
                    f'{paths[0]} {image_shape}: the teacher input would '
                    'depend on the batch (padding); add a fixed Resize')
        data = pseudo_collate(samples)
        for rate in _rates(augment):
            inputs = _preprocess(preprocessor, augment, data, rate)
            writer.write(rows, inputs.shape[-2:],
                         teacher_maps(teacher, inputs, sources))
        if done % 20 == 0 or begin + batch_size >= len(mine):
            print(f'[rank {rank}] {min(begin + batch_size, len(mine))}/'
                  f'{len(mine)} images, {time.time() - start:.0f} s',
                  flush=True)
    writer.flush()
    barrier()
    if rank == 0:
        writer.finish(
            run_record(
                teacher_cfg=load_model_config(model_cfg.teacher, 'teacher'),
                teacher_ckpt=ckpt,
                preprocessor_cfg=preprocessor_cfg,
                pipeline=pipelines[0],
                sources=[s.key for s in sources],
                image_paths=paths,
                config=osp.abspath(cfg.filename) if cfg.filename else None))
        fsync_dir(writer.folder)
        os.rename(writer.folder, out)
        fsync_dir(osp.dirname(out))
        total = sum(
            osp.getsize(osp.join(out, f)) for f in os.listdir(out))
        print(f'wrote {out}: {len(paths)} images, '
              f'{total / 2**20:.1f} MiB ({MANIFEST} and '
              f'{len(writer.entries)} arrays) in {time.time() - start:.0f} s')
    barrier()
    return out

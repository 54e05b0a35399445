"""The study's configs: a shipped config under the reduced protocol.

:func:`protocol_config` builds the config of every run (its text is
written to the run's folder and the ledger holds the digests of the
weights it trained), the teacher caches the KD families read, and the
settings ``protocol.json`` holds.
"""
import argparse
import copy
import hashlib
import os.path as osp
import sys
from typing import Dict, FrozenSet, List, Optional, Sequence

from mmengine.config import Config, ConfigDict

from .protocol import (FAMILIES, GRIDS, RATES, ROOT, VAL_KEY, VAL_SET, Setting,
                       setting_label)
from .runner import reproducible_env


def _set(cfg: ConfigDict, dotted: str, value) -> None:
    *parents, last = dotted.split('.')
    node = cfg
    for i, part in enumerate(parents):
        if part not in node:
            raise KeyError(f'{".".join(parents[:i + 1])} not in the config')
        node = node[part]
    node[last] = value


_LOADED: Dict[str, Config] = {}


def _load(base: str) -> Config:
    """A copy of a config file of the repository (each parsed once).

    Its text is written without yapf's formatting, which takes seconds per
    config.
    """
    if base not in _LOADED:
        # (Config.fromfile drops format_python_code for a plain .py file)
        _LOADED[base] = Config(
            Config.fromfile(osp.join(ROOT, base)).to_dict(),
            format_python_code=False)
    return copy.deepcopy(_LOADED[base])


def _test_dataset(data_root: str, test_sets: Sequence[str],
                  pipeline: list) -> dict:
    """The test sets of ``data_root`` as one dataset of a test loader."""
    datasets = [
        dict(
            type='PolypDataset',
            data_root=data_root,
            data_prefix=dict(
                img_path=f'TestDataset/{name}/images',
                seg_map_path=f'TestDataset/{name}/masks'),
            test_set=name,
            test_mode=True,
            pipeline=pipeline) for name in test_sets
    ]
    if len(datasets) == 1:
        return datasets[0]
    return dict(type='ConcatDataset', datasets=datasets)


def test_config(cfg_file: str, data_root: str,
                test_sets: Sequence[str]) -> Config:
    """The config a run was tested with, testing ``test_sets`` only.

    The config of the test of a set added to the data root after the run
    was tested: the model and the test pipeline stay as they were.

    Args:
        cfg_file: The config the run is tested with.
        data_root: The data root that holds the sets.
        test_sets: The sets to test.

    Returns:
        Config: Its text written without yapf's formatting.
    """
    cfg = Config.fromfile(cfg_file, import_custom_modules=False)
    dataset = cfg.test_dataloader.dataset
    pipeline = dataset.get('datasets', [dataset])[0].pipeline
    cfg.test_dataloader.dataset = _test_dataset(data_root, test_sets,
                                                pipeline)
    return Config(cfg.to_dict(), format_python_code=False)


def protocol_config(base: str,
                    args: argparse.Namespace,
                    test_sets: Sequence[str],
                    iters: int,
                    val_interval: int,
                    seed: int,
                    teacher_ckpt: Optional[str] = None,
                    setting: Setting = (),
                    teacher_cache: Optional[str] = None,
                    save_best: bool = False) -> Config:
    """``base`` under the reduced protocol of this experiment.

    Everything that decides what a run does is set here, not inherited, so
    that every method trains under one protocol whatever the shipped
    configs default to.

    Args:
        base: A config file, relative to the repository.
        args: The tool's arguments (``data_root``, ``size``,
            ``batch_size``, ``lr``, ``num_workers``, ``split_file``).
        test_sets: The test sets of ``test_dataloader``.
        iters: Training iterations.
        val_interval: Validation and checkpoint interval.
        seed: The run's seed.
        teacher_ckpt: The teacher file of a distiller.
        setting: Values under ``model`` (:data:`Setting`).
        teacher_cache: The teacher cache folder of a distiller, or None.
        save_best: Keep the checkpoint of the best validation mean Dice.

    Returns:
        Config: The run's config.
    """
    cfg = _load(base)
    size = (args.size, args.size)
    meta_keys = cfg.meta_keys
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadPolypAnnotations'),
        dict(type='Resize', scale=size, keep_ratio=False, backend='pillow'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=size, keep_ratio=False, backend='pillow'),
        dict(type='LoadPolypAnnotations'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    workers = dict(
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0)
    train_images = dict(
        img_path='TrainDataset/images', seg_map_path='TrainDataset/masks')

    def split_of_train(split: str, pipeline: list, **extra) -> dict:
        # a split of TrainDataset (the keys in the order of the config text)
        return dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=train_images,
            split=split,
            split_file=args.split_file,
            **extra,
            pipeline=pipeline)

    cfg.train_dataloader = ConfigDict(
        batch_size=args.batch_size,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=split_of_train('train-minus-val', train_pipeline),
        **workers)
    loader = dict(
        batch_size=1,
        sampler=dict(type='DefaultSampler', shuffle=False),
        **workers)
    cfg.val_dataloader = ConfigDict(
        dataset=split_of_train(
            'val', test_pipeline, test_set=VAL_SET, test_mode=True),
        **loader)
    cfg.test_dataloader = ConfigDict(
        dataset=_test_dataset(args.data_root, test_sets, test_pipeline),
        **copy.deepcopy(loader))
    cfg.val_evaluator = cfg.test_evaluator = ConfigDict(type='PolypMetric')
    cfg.train_cfg = ConfigDict(
        type='MultiScaleIterBasedTrainLoop',
        max_iters=iters,
        val_interval=val_interval)
    # a converging schedule: cosine decay to 0 over the run, by iteration
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            T_max=iters,
            eta_min=0.0,
            by_epoch=False,
            begin=0,
            end=iters)
    ]
    cfg.default_hooks.checkpoint = ConfigDict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=1)
    if save_best:
        cfg.default_hooks.checkpoint.update(save_best=VAL_KEY, rule='greater')
    cfg.default_hooks.logger = ConfigDict(
        type='LoggerHook', interval=50, log_metric_by_epoch=False)
    cfg.log_processor = ConfigDict(by_epoch=False)
    cfg.optim_wrapper.optimizer.lr = args.lr
    cfg.randomness = ConfigDict(seed=seed)
    # each iteration draws from (seed, iteration): a resumed run trains to
    # the same bits as an uninterrupted one
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') != 'IterationSeedHook'
    ] + [dict(type='IterationSeedHook')]

    model = cfg.model
    segmentors = [model]
    if model.type == 'KDASDistiller':
        segmentors = [model.student, model.teacher]
        model.teacher_ckpt = teacher_ckpt
        if teacher_cache is not None:
            model.teacher_cache = teacher_cache
        if model.get('data_preprocessor') is None:
            model.data_preprocessor = copy.deepcopy(
                model.student.data_preprocessor)
    elif setting or teacher_cache:
        raise ValueError(f'{base} is not a distiller: it takes no setting '
                         'and no teacher cache')
    for key, value in setting:
        _set(model, key, value)
    model.data_preprocessor.batch_augments = [
        dict(type='BatchMultiScaleResize', rates=RATES, mode='cycle')
    ]
    for segmentor in segmentors:
        segmentor.backbone.init_cfg = None  # from scratch
    return cfg


def teacher_sources(model: ConfigDict) -> FrozenSet[str]:
    """The teacher maps a distiller config reads (``'head:0'``, ...).

    Args:
        model: A ``model`` config; not a distiller: no maps.

    Returns:
        frozenset: ``'head:<i>'`` for a decode-head output, the module name
        (``'backbone:3'``) otherwise.
    """
    if model.get('type') != 'KDASDistiller':
        return frozenset()
    sources = set()
    for pairs in ('at_pairs', 'sgm_pairs'):
        for pair in model.get(pairs) or []:
            t = pair['teacher']
            sources.add(f'head:{t}' if isinstance(t, int) else str(t))
    return frozenset(sources)


def family_sources(family: str) -> FrozenSet[str]:
    """The teacher maps of a family, from its shipped config."""
    return teacher_sources(_load(FAMILIES[family]).model)


def plan_caches(
        needs: Dict[str, FrozenSet[str]]) -> Dict[str, FrozenSet[str]]:
    """One cache per set of teacher maps no other set contains.

    Args:
        needs: ``{name: teacher maps it reads}`` (names of families or
            runs).

    Returns:
        dict: ``{name: the maps of the cache it trains from}`` (a superset
        of its own), for the names that read any.
    """
    sets = sorted({s for s in needs.values() if s},
                  key=lambda s: (-len(s), sorted(s)))
    caches: List[FrozenSet[str]] = []
    for s in sets:
        if not any(s <= c for c in caches):
            caches.append(s)
    return {
        key: next(c for c in caches if s <= c)
        for key, s in needs.items() if s
    }


def cache_name(sources: FrozenSet[str]) -> str:
    """A folder name for a cache: ``'head0-head1'``."""
    return '-'.join(s.replace(':', '') for s in sorted(sources))


def cache_command(cfg_file: str, out: str, teacher_ckpt: str) -> List[str]:
    """The command that builds a teacher cache from a KD config."""
    return [
        sys.executable, 'tools/cache_teacher.py', cfg_file, '--out', out,
        '--cfg-options', f'model.teacher_ckpt={teacher_ckpt}'
    ]


def protocol_settings(args: argparse.Namespace) -> dict:
    """The settings ``protocol.json`` holds (a work dir of others is
    refused): sizes, schedule, iterations, teacher seeds, the split's
    SHA-1 and the grids."""
    with open(args.split_file, 'rb') as f:
        split = hashlib.sha1(f.read()).hexdigest()
    return dict(
        size=args.size,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule='cosine to 0 by iteration',
        teacher_iters=args.teacher_iters,
        teacher_val_interval=args.teacher_val_interval,
        teacher_seeds=list(args.teacher_seeds),
        iters=args.iters,
        val_interval=args.val_interval,
        split_sha1=split,
        grids={f: [setting_label(s) for s in g]
               for f, g in GRIDS.items()},
        cpu_env=reproducible_env(args.threads),
        randomness='IterationSeedHook')

"""The study's run configs: a shipped config under the study config's
protocol.

:func:`protocol_config` builds the config of every run from the study
config (:mod:`.settings`) with :class:`mmengine.config.Config`: the shipped
config of its family, ``run_replace`` (keys replaced), ``run_merge``
(merged) and ``run_hooks``, then the values that vary per run. Its text is
written to the run's folder and the ledger holds the digests of the
weights it trained. Also: the teacher caches the KD families read, and
the settings ``protocol.json`` holds.
"""
import argparse
import copy
import hashlib
import os.path as osp
import sys
from typing import Dict, FrozenSet, List, Optional, Sequence

from mmengine.config import Config, ConfigDict

from .protocol import ROOT, Setting, setting_label
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


def _test_dataset(template: dict, data_root: str,
                  test_sets: Sequence[str]) -> dict:
    """The test sets of ``data_root`` as one dataset of a test loader, each
    from the study config's ``test_dataloader.dataset``."""
    datasets = []
    for name in test_sets:
        dataset = copy.deepcopy(dict(template))
        dataset.update(
            data_root=data_root,
            data_prefix=dict(
                img_path=f'TestDataset/{name}/images',
                seg_map_path=f'TestDataset/{name}/masks'),
            test_set=name)
        datasets.append(dataset)
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
    first = dataset.get('datasets', [dataset])[0]
    if 'data_prefix' in first:  # a test set: the others are made like it
        template = copy.deepcopy(first)
    else:  # a wrapper (the student's export: one pipeline for all sets)
        template = dict(type='PolypDataset', test_mode=True,
                        pipeline=copy.deepcopy(first.pipeline))
    cfg.test_dataloader.dataset = _test_dataset(template, data_root,
                                                test_sets)
    return Config(cfg.to_dict(), format_python_code=False)


def protocol_config(args: argparse.Namespace,
                    base: str,
                    test_sets: Sequence[str],
                    seed: int,
                    teacher: bool = False,
                    teacher_ckpt: Optional[str] = None,
                    setting: Setting = (),
                    teacher_cache: Optional[str] = None) -> Config:
    """``base`` under the protocol of the study config.

    The study config's ``run_replace`` replaces keys of ``base`` whole,
    ``run_merge`` is merged into it (:meth:`Config.merge_from_dict`),
    ``run_hooks`` are appended to its ``custom_hooks``; then the engine
    sets what varies per run, and nothing else: the data root, the
    validation list and the test sets, the size of the pipelines' resize
    (``size``), the seed, the iterations (the loop's
    and the scheduler's), the validation and checkpoint interval, the
    teacher's checkpoint and cache, a setting of a grid, a teacher's
    ``save_best``, and (``from_scratch``) no pretrained backbone. A
    distiller without its own data preprocessor takes its student's.

    Args:
        args: The study's settings (:func:`.settings.load_study`) with
            ``data_root`` and ``split_file``.
        base: A config file, relative to the repository.
        test_sets: The test sets of ``test_dataloader``.
        seed: The run's seed.
        teacher: A teacher run (``teacher_iters``, ``save_best``) or a
            student run (``iters``).
        teacher_ckpt: The teacher file of a distiller.
        setting: Values under ``model`` (:data:`Setting`).
        teacher_cache: The teacher cache folder of a distiller, or None.

    Returns:
        Config: The run's config.
    """
    cfg = _load(base)
    for key, value in args.run_replace.items():
        cfg[key] = copy.deepcopy(value)
    model = cfg.model
    if model.type == 'KDASDistiller':
        model.teacher_ckpt = teacher_ckpt
        if teacher_cache is not None:
            model.teacher_cache = teacher_cache
        if model.get('data_preprocessor') is None:
            model.data_preprocessor = copy.deepcopy(
                model.student.data_preprocessor)
    elif setting or teacher_cache:
        raise ValueError(f'{base} is not a distiller: it takes no setting '
                         'and no teacher cache')
    cfg.merge_from_dict(copy.deepcopy(args.run_merge.to_dict()))
    types = {h['type'] for h in args.run_hooks}
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', []) if h.get('type') not in types
    ] + copy.deepcopy(list(args.run_hooks))

    for loader in ('train_dataloader', 'val_dataloader'):
        dataset = cfg[loader].dataset
        dataset.data_root = args.data_root
        dataset.split_file = args.split_file
    cfg.val_dataloader.dataset.test_set = args.val_set
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for transform in cfg[loader].dataset.pipeline:
            if 'scale' in transform:
                transform.scale = (args.size, args.size)
    cfg.test_dataloader.dataset = _test_dataset(
        cfg.test_dataloader.dataset, args.data_root, test_sets)
    iters = args.teacher_iters if teacher else args.iters
    interval = (args.teacher_val_interval if teacher else args.val_interval)
    cfg.train_cfg.update(max_iters=iters, val_interval=interval)
    for scheduler in cfg.param_scheduler:
        if scheduler.get('by_epoch', True):
            raise ValueError('the study schedules by iteration: '
                             f'run_replace.param_scheduler {scheduler}')
        scheduler.update(T_max=iters, end=iters)
    cfg.default_hooks.checkpoint.interval = interval
    if teacher:
        cfg.default_hooks.checkpoint.update(save_best=args.val_key,
                                            rule='greater')
    cfg.randomness = ConfigDict(seed=seed)
    model = cfg.model  # merge_from_dict made a new one
    for key, value in setting:
        _set(model, key, value)
    if args.from_scratch:
        for segmentor in ([model.student, model.teacher] if
                          model.type == 'KDASDistiller' else [model]):
            segmentor.backbone.init_cfg = None
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


def family_sources(args: argparse.Namespace,
                   family: str) -> FrozenSet[str]:
    """The teacher maps of a family, from its shipped config."""
    return teacher_sources(_load(args.families[family]).model)


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
    SHA-1, the grids, and the CPU settings (a CUDA study: the device and
    GPUs instead)."""
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
               for f, g in args.grids.items()},
        **(dict(cpu_env=reproducible_env(args.threads)) if args.device ==
           'cpu' else dict(device=args.device, gpus=args.gpus)),
        randomness='IterationSeedHook')


#: The work dir's full-scale KDAS config of the selected setting.
SELECTED_CONFIG = 'kdas_selected.py'


def selected_config(args: argparse.Namespace, test_sets: Sequence[str],
                    setting: Setting) -> str:
    """The shipped KDAS config (full scale: its size, pipeline, schedule
    and pretrained backbones) at the setting the grid chose, on the study's
    data root, validation split and test sets; the text of
    :data:`SELECTED_CONFIG`.

    Args:
        args: The study's settings (``families['KDAS']``, ``data_root``,
            ``split_file``, ``val_set``).
        test_sets: The test sets of the data root.
        setting: The grid's choice for KDAS.

    Returns:
        str: A config for ``tools/train.py``; its header says what to set
        (the teacher's checkpoint, trained on this data).
    """
    base = args.families['KDAS']
    cfg = _load(base)
    if cfg.get('train_dataloader') is None:  # a model without data: the
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                    'val_evaluator', 'test_evaluator'):  # study's
            cfg[key] = copy.deepcopy(args.run_replace[key])
    train = cfg.train_dataloader.dataset
    train.update(data_root=args.data_root, split='train-minus-val',
                 split_file=args.split_file)
    shipped_test = cfg.test_dataloader.dataset
    template = copy.deepcopy(
        shipped_test.get('datasets', [shipped_test])[0])
    val = copy.deepcopy(template)
    val.update(data_root=args.data_root,
               data_prefix=copy.deepcopy(train.data_prefix), split='val',
               split_file=args.split_file, test_set=args.val_set)
    cfg.val_dataloader.dataset = val
    cfg.test_dataloader.dataset = _test_dataset(template, args.data_root,
                                                test_sets)
    for key, value in setting:
        _set(cfg.model, key, value)
    header = (
        f'# KDAS at the setting the study chose on {args.val_set} '
        f'({setting_label(setting)}),\n# for {args.data_root}, at full '
        f'scale: {base} with this data.\n# Set model.teacher_ckpt to a '
        'teacher trained on this data at full scale\n# (e.g. '
        f'{args.teacher} with the data settings below), then:\n'
        f'#   python tools/train.py {SELECTED_CONFIG}\n')
    return header + cfg.pretty_text

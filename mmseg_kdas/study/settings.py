"""A study config (``configs/kd_study/*.py``) as the engine's settings.

:func:`load_study` reads a study config with :class:`mmengine.config.Config`
(``--cfg-options`` merged), checks every key and returns the settings every
module of the engine reads: the plain keys as attributes, the grids and
methods as :data:`~.protocol.Setting` tuples, and the protocol values the
run configs hold (batch, learning rate, workers, multi-scale rates) read
from them.
"""
import argparse
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config

from .protocol import ROOT, ProtocolError, Setting

#: Keys a study config must have, with the type of their value.
_KEYS = dict(
    teacher=str,
    families=dict,
    grids=dict,
    methods=list,
    seeds=list,
    teacher_seeds=list,
    size=int,
    teacher_iters=int,
    teacher_val_interval=int,
    iters=int,
    val_interval=int,
    teacher_tolerance=float,
    gate_margin=float,
    teacher_cache=bool,
    from_scratch=bool,
    budget_minutes=float,
    device=str,
    gpus=int,
    threads=int,
    val_split=dict,
    run_replace=dict,
    run_merge=dict,
    run_hooks=list,
)
#: The keys of ``speed`` (seconds per training iteration, per evaluated
#: image, per cached image and rate).
SPEED_KEYS = ('teacher', 'student', 'kd_cached', 'kd_online', 'eval_teacher',
              'eval_student', 'cache_per_image_rate')


def _setting(value, where: str) -> Setting:
    """``[('alpha', 0.3), ...]`` of a config as a :data:`Setting`."""
    try:
        return tuple((str(k), float(v)) for k, v in value)
    except (TypeError, ValueError):
        raise ProtocolError(f'{where}: a setting is a list of (key under '
                            f'model, number) pairs, got {value!r}') from None


def _check_resize(pipeline: Sequence[dict], where: str) -> None:
    """A pipeline of the study resizes once (a transform with ``scale``,
    which the engine sets to ``size`` x ``size``)."""
    if sum('scale' in t for t in pipeline) != 1:
        raise ProtocolError(f'{where}: the pipeline must have one transform '
                            'with a scale (its resize to size x size), got '
                            f'{[t.get("type") for t in pipeline]}')


def load_study(study_file: str,
               cfg_options: Optional[dict] = None,
               **flags) -> argparse.Namespace:
    """The settings of a study config.

    Args:
        study_file: A study config (``configs/kd_study/*.py``).
        cfg_options: Keys to override (``--cfg-options``), mmengine's
            dotted form.
        **flags: Set as attributes too (the tool's arguments: ``data_root``,
            ``work_dir``, ``ledger``, ``dry_run``, ``rerun``, ...).

    Returns:
        argparse.Namespace: Every key of the config as an attribute, plus
        ``study`` (the :class:`Config`), ``grids`` ``{family: [Setting]}``,
        ``methods`` ``[(name, family, Setting or 'tuned')]``, ``val_set``
        and ``val_key`` (``'<name>/mDice'``), ``batch_size``,
        ``lr``, ``num_workers`` and the multi-scale ``rates`` (read from
        ``run_replace`` and ``run_merge``), ``no_teacher_cache``.

    Raises:
        FileNotFoundError: If the file or a config it names is missing.
        ProtocolError: If a key is missing or wrong, naming it.
    """
    if not osp.isfile(study_file):
        raise FileNotFoundError(f'no study config {study_file}')
    cfg = Config.fromfile(study_file)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    where = osp.relpath(osp.abspath(study_file), ROOT)
    values = {}
    for key, kind in _KEYS.items():
        if key not in cfg:
            raise ProtocolError(f'{where}: no key {key!r} (a study config '
                                'has: ' + ', '.join(_KEYS) + ')')
        value = cfg[key]
        if kind is float and isinstance(value, int) and not isinstance(
                value, bool):
            value = float(value)
        if kind is list and isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, kind) or (kind is int
                                           and isinstance(value, bool)):
            raise ProtocolError(f'{where}: {key} must be a {kind.__name__}, '
                                f'got {value!r}')
        values[key] = value
    args = argparse.Namespace(study=cfg, study_file=osp.abspath(study_file),
                              **values)
    for name in [args.teacher] + list(args.families.values()):
        if not osp.isfile(osp.join(ROOT, name)):
            raise FileNotFoundError(f'{where}: no config {name} in {ROOT}')
    if 'student' not in args.families:
        raise ProtocolError(f'{where}: families must have a "student"')
    args.families = dict(args.families)
    args.grids = {}
    for family, grid in cfg.grids.items():
        if family not in args.families:
            raise ProtocolError(f'{where}: grids.{family} is not a family')
        args.grids[family] = [
            _setting(s, f'{where}: grids.{family}') for s in grid
        ]
        if not args.grids[family]:
            raise ProtocolError(f'{where}: grids.{family} is empty')
    args.methods = []
    for method in cfg.methods:
        name, family = method.get('name'), method.get('family')
        if family not in args.families:
            raise ProtocolError(f'{where}: method {name!r}: family '
                                f'{family!r} is not in families')
        setting = method.get('setting', [])
        if setting == 'tuned':
            if family not in args.grids:
                raise ProtocolError(f'{where}: method {name!r} is tuned but '
                                    f'{family} has no grid')
        else:
            setting = _setting(setting, f'{where}: method {name!r}')
        args.methods.append((name, family, setting))
    if not args.methods or args.methods[0][:2] != ('student', 'student'):
        raise ProtocolError(f'{where}: the first method must be the plain '
                            "student: dict(name='student', family='student')")
    names = [m[0] for m in args.methods]
    args.head_to_head = cfg.get('head_to_head') or []
    if not isinstance(args.head_to_head, (list, tuple)) or not all(
            isinstance(n, str) for n in args.head_to_head):
        raise ProtocolError(f'{where}: head_to_head must be a list of '
                            f'method names, got {args.head_to_head!r}')
    args.head_to_head = list(args.head_to_head)
    for name in args.head_to_head:
        if name not in names:
            raise ProtocolError(f'{where}: head_to_head: {name!r} is not a '
                                f'method (the methods: {names})')
    if args.device not in ('cpu', 'cuda'):
        raise ProtocolError(f"{where}: device must be 'cpu' or 'cuda', got "
                            f'{args.device!r}')
    if args.gpus < 1 or (args.gpus > 1 and args.device != 'cuda'):
        raise ProtocolError(f'{where}: gpus {args.gpus}: more than one '
                            "needs device 'cuda', at least one")
    args.speed = cfg.get('speed')
    if args.speed is not None:
        missing = [k for k in SPEED_KEYS if k not in args.speed]
        if missing:
            raise ProtocolError(f'{where}: speed lacks {missing}')
        args.speed = {k: float(args.speed[k]) for k in SPEED_KEYS}
    split = args.val_split
    args.val_set = split.get('name') or 'val'
    args.val_key = f'{args.val_set}/mDice'
    train = args.run_replace.get('train_dataloader', {})
    try:
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            _check_resize(args.run_replace[loader]['dataset']['pipeline'],
                          f'{where}: run_replace.{loader}')
        args.batch_size = int(train['batch_size'])
        args.num_workers = int(train.get('num_workers', 0))
        args.lr = float(args.run_merge['optim_wrapper']['optimizer']['lr'])
    except KeyError as err:
        raise ProtocolError(f'{where}: no {err} in run_replace.'
                            'train_dataloader or run_merge.optim_wrapper.'
                            'optimizer') from None
    augments = args.run_merge.get('model', {}).get(
        'data_preprocessor', {}).get('batch_augments') or []
    args.rates = tuple(augments[0]['rates']) if augments else (1.0, )
    for key in ('teacher_iters', 'iters', 'val_interval',
                'teacher_val_interval'):
        if getattr(args, key) <= 0:
            raise ProtocolError(f'{where}: {key} must be > 0')
    for key in ('iters', 'teacher_iters'):
        interval = getattr(args, key.replace('iters', 'val_interval'))
        if getattr(args, key) % interval:
            raise ProtocolError(
                f'{where}: {key} must be a multiple of its validation '
                f'interval ({interval}), so that the last iteration is '
                'validated')
    if 0 not in args.seeds:
        raise ProtocolError(f'{where}: seeds must include 0, the seed of '
                            'the grid')
    args.seeds = [int(s) for s in args.seeds]
    args.teacher_seeds = [int(s) for s in args.teacher_seeds]
    args.no_teacher_cache = not args.teacher_cache
    # the list file, relative to the repository; a made one: the work dir's
    args.split_file = (osp.join(ROOT, split['file'])
                       if split.get('file') else None)
    for key, value in flags.items():
        setattr(args, key, value)
    return args

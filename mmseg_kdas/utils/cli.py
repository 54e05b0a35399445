"""The command line the plugin's tools share with MMSegmentation's.

``tools/train.py``, ``tools/test.py`` and ``tools/cache_teacher.py`` take
a config file and MMSegmentation's run arguments: ``--work-dir``,
``--cfg-options`` (mmengine's :class:`~mmengine.config.DictAction`),
``--launcher`` and the ``--local_rank`` / ``--local-rank`` that
``torch.distributed.launch`` passes (torchrun sets ``LOCAL_RANK`` in the
environment instead). :func:`add_run_arguments` adds them,
:func:`parse_run_args` parses them and sets ``LOCAL_RANK``, and
:func:`load_config` / :func:`run_config` apply them to the config.

:func:`ignore_pkg_resources_warning` is the first call of every tool that
reads a config.
"""
import argparse
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

from mmengine.config import Config, DictAction

__all__ = [
    'LAUNCHERS', 'add_run_arguments', 'parse_run_args', 'load_config',
    'run_config', 'ignore_pkg_resources_warning'
]

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

CFG_OPTIONS_HELP = (
    'override some settings in the used config, the key-value pair '
    'in xxx=yyy format will be merged into config file. If the value to '
    'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
    'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
    'Note that the quotation marks are necessary and that no white space '
    'is allowed.')


def ignore_pkg_resources_warning() -> None:
    """Silence setuptools' deprecation warning of ``pkg_resources``.

    mmengine 0.10's ``is_installed`` (called by ``Config.fromfile`` for
    every ``mmseg::`` base config) imports ``pkg_resources`` and reloads
    it, and setuptools < 81 warns at each: once from mmengine's module,
    once from ``importlib`` (the reload). Only that warning, from those two
    places, is filtered.
    """
    warnings.filterwarnings(
        'ignore',
        message='pkg_resources is deprecated as an API',
        category=UserWarning,
        module=r'(mmengine\.utils\.package_utils|importlib)$')


def add_run_arguments(parser: argparse.ArgumentParser,
                      work_dir_help: Optional[str] = None,
                      launchers: Sequence[str] = LAUNCHERS,
                      launcher_help: str = 'job launcher',
                      cfg_options_help: str = CFG_OPTIONS_HELP) -> None:
    """Add MMSegmentation's run arguments to a tool's parser.

    Args:
        parser: The tool's parser.
        work_dir_help: The help of ``--work-dir``; None: the tool has no
            ``--work-dir``.
        launchers: The choices of ``--launcher`` (default ``'none'``).
        launcher_help: The help of ``--launcher``.
        cfg_options_help: The help of ``--cfg-options``.
    """
    if work_dir_help is not None:
        parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument(
        '--launcher',
        choices=list(launchers),
        default='none',
        help=launcher_help)
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_run_args(parser: argparse.ArgumentParser,
                   argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` (default: the command line); set ``LOCAL_RANK``.

    ``LOCAL_RANK`` is set from ``--local-rank`` unless the launcher has set
    it already.
    """
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                launcher: Optional[str] = None) -> Config:
    """The config file ``path`` with the command line's changes.

    Args:
        path: The config file.
        cfg_options: ``--cfg-options``, merged into the config.
        launcher: ``--launcher``, set as the config's ``launcher`` (before
            ``cfg_options`` are merged); None leaves it unset.

    Returns:
        The config.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if launcher is not None:
        cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    return cfg


def run_config(args: argparse.Namespace) -> Config:
    """The config of a training or test run from its run arguments.

    :func:`load_config` of ``args.config`` with ``--cfg-options`` and
    ``--launcher``; ``work_dir`` is ``--work-dir``, else the config's, else
    ``./work_dirs/<config name>``.
    """
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg

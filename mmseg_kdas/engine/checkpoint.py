"""Checkpoints that resume under ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` only unpickles tensors and plain Python
containers by default. mmengine 0.10 saves its message hub as
:class:`~mmengine.logging.HistoryBuffer` objects holding numpy arrays and
numpy scalars, so ``--resume`` fails on the run's own checkpoints. Rather
than let arbitrary pickles run (``weights_only=False``),
:class:`PlainCheckpointHook` writes that state as plain containers when a
checkpoint is saved and rebuilds the objects when one is loaded. Every
checkpoint, the run's own and those from elsewhere (teacher, pretrained,
``load_from``), then loads weights-only, and
:func:`load_from_local_weights_only` makes that the rule for local files
under older torch releases as well.
"""
import os.path as osp
from typing import Any, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
from mmseg.registry import HOOKS

_TAG = '__plain__'


def to_plain(obj: Any) -> Any:
    """Replace numpy values and history buffers by plain containers.

    Args:
        obj: Any nesting of dicts, lists and tuples.

    Returns:
        The same nesting in which every :class:`numpy.ndarray`, numpy scalar
        and :class:`HistoryBuffer` is a tagged dict of Python numbers that
        :func:`from_plain` turns back into the original object.
    """
    if isinstance(obj, HistoryBuffer):
        return {
            _TAG: 'HistoryBuffer',
            'log_history': to_plain(obj._log_history),
            'count_history': to_plain(obj._count_history),
            'max_length': int(obj.max_length),
        }
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError('cannot store a numpy array of dtype object in '
                            'a weights-only checkpoint')
        return {
            _TAG: 'ndarray',
            'data': obj.tolist(),
            'dtype': obj.dtype.str,
            'shape': list(obj.shape)
        }
    if isinstance(obj, np.generic):
        return {_TAG: 'scalar', 'data': obj.item(), 'dtype': obj.dtype.str}
    if isinstance(obj, dict):
        return type(obj)((k, to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain`."""
    if isinstance(obj, dict):
        kind = obj.get(_TAG)
        if kind == 'HistoryBuffer':
            buffer = HistoryBuffer(max_length=obj['max_length'])
            buffer._log_history = from_plain(obj['log_history'])
            buffer._count_history = from_plain(obj['count_history'])
            return buffer
        if kind == 'ndarray':
            return np.array(
                obj['data'], dtype=np.dtype(obj['dtype'])).reshape(
                    obj['shape'])
        if kind == 'scalar':
            return np.dtype(obj['dtype']).type(obj['data'])
        return type(obj)((k, from_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(from_plain(v) for v in obj)
    return obj


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Save checkpoints as plain state so that they resume weights-only.

    ``tools/train.py`` adds this hook to every run. Runs that build their
    runner elsewhere add ``dict(type='PlainCheckpointHook')`` to
    ``custom_hooks``.
    """

    # Last on save, so it sees what other hooks add; last on load too.
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key != 'state_dict':
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key != 'state_dict':
                checkpoint[key] = from_plain(checkpoint[key])


def load_from_local_weights_only(filename: str,
                                 map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint with ``torch.load(weights_only=True)``.

    Args:
        filename: Path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        RuntimeError: If the file holds more than weights and plain state.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors come in several types
        raise RuntimeError(
            f'{filename} cannot be loaded weights-only ({err}). mmseg-kdas '
            'never unpickles arbitrary objects; re-save the checkpoint as '
            'tensors and plain containers (a run that resumes must have '
            'been saved with PlainCheckpointHook).') from err


# Local paths (mmengine's default scheme, prefix '') load weights-only, also
# under torch < 2.6 where torch.load would unpickle anything by default.
CheckpointLoader.register_scheme(
    prefixes='', loader=load_from_local_weights_only, force=True)

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

Faults. mmengine writes a checkpoint, and ``last_checkpoint``, straight
under the final name without fsync, so a kill, a full disk or a power loss
during the save can leave a short file that ``--resume`` then names.
Importing the plugin replaces mmengine's local file backend by
:class:`AtomicLocalBackend`, through which every checkpoint of the process
is written (temporary file in the same folder, fsync, rename), and
:class:`AtomicCheckpointHook` (which ``tools/train.py`` puts in place of
``CheckpointHook``) writes ``last_checkpoint`` so too. A file that is
truncated or corrupt all the same (a copy, a disk fault) is reported as
such (:class:`~mmseg_kdas.utils.checkpoint_file.CorruptCheckpointError`),
and :func:`find_resumable_checkpoint` resumes past it.
"""
import glob
import os
import os.path as osp
import re
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
from mmseg.registry import HOOKS

from mmseg_kdas.utils.atomic import atomic_write, atomic_write_text
from mmseg_kdas.utils.checkpoint_file import (CorruptCheckpointError,
                                              load_weights_only)

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
    """mmengine's loader of local checkpoints: :func:`load_weights_only`.

    Args:
        filename: Path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        CorruptCheckpointError: If the file is truncated or corrupt.
        WeightsOnlyError: A ``RuntimeError``, if the file holds more than
            weights and plain state.
    """
    return load_weights_only(filename, map_location=map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with atomic writes.

    :meth:`put` and :meth:`put_text` write through
    :func:`~mmseg_kdas.utils.atomic.atomic_write`: the file appears under
    its name only once all of it is on disk, and a failed write (a full
    disk) raises an ``OSError`` naming the file and leaves what had the name
    before intact. ``mmengine.runner.save_checkpoint`` writes every local
    checkpoint through this backend.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically."""
        with atomic_write(str(filepath), 'wb') as f:
            f.write(obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically."""
        self.put(obj.encode(encoding), filepath)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, writing ``last_checkpoint`` atomically.

    The checkpoints themselves are atomic through
    :class:`AtomicLocalBackend`; ``CheckpointHook`` writes
    ``last_checkpoint`` with a plain ``open``, so a kill between its
    truncation and its write leaves it empty and mmengine's ``--resume``
    fails on the empty path. This hook writes it atomically and, before
    training, removes the temporary files that killed saves left in its
    checkpoint folder. It takes ``CheckpointHook``'s arguments;
    ``tools/train.py`` uses it in place of ``CheckpointHook``.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and osp.isdir(str(self.out_dir)):
            for tmp in glob.glob(osp.join(glob.escape(str(self.out_dir)),
                                          '.*.tmp')):
                if _is_checkpoint_temp(osp.basename(tmp)):
                    os.remove(tmp)
                    runner.logger.info(f'removed {tmp}, left by a killed '
                                       'checkpoint save')

    def _save_checkpoint_with_step(self, runner, step, meta):
        # mmengine 0.10.7's, with the last line atomic
        if self.max_keep_ckpts > 0:
            if len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step:
                pass
            else:
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    _step = self.keep_ckpt_ids.popleft()
                    if is_main_process():
                        ckpt_path = self.file_backend.join_path(
                            self.out_dir, self.filename_tmpl.format(_step))
                        if self.file_backend.isfile(ckpt_path):
                            self.file_backend.remove(ckpt_path)
                        elif self.file_backend.isdir(ckpt_path):
                            self.file_backend.rmtree(ckpt_path)
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids',
                                               list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return
        atomic_write_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)


_CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def _is_checkpoint_temp(name: str) -> bool:
    """Whether ``name`` is a temporary file of an atomic checkpoint save."""
    match = re.match(r'^\.(.+)\.[^.]+\.tmp$', name)
    return match is not None and (
        match.group(1) == 'last_checkpoint'
        or match.group(1).endswith('.pth'))


def find_resumable_checkpoint(
        work_dir: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest checkpoint of a run that loads, and those passed over.

    The candidates are the file that ``work_dir/last_checkpoint`` names
    (mmengine's choice for ``--resume``), then the ``iter_<n>.pth`` /
    ``epoch_<n>.pth`` files beside it of a smaller ``n``, newest first; if
    ``last_checkpoint`` is missing, empty or names no file, every such file
    of ``work_dir``. Each is loaded weights-only (its CRC-32 sums checked);
    the first that loads is returned. One that is truncated or corrupt is
    passed over.

    Args:
        work_dir: The run's work directory.

    Returns:
        The checkpoint to resume from (None: none found, train from
        scratch) and ``(path, reason)`` for each candidate passed over.

    Raises:
        WeightsOnlyError: If an intact candidate cannot be loaded
            weights-only (it holds objects): resuming from an older one
            instead would hide that.
    """
    skipped: List[Tuple[str, str]] = []
    record = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip() or None
        if named is None:
            skipped.append((record, 'empty'))
        elif not osp.isfile(named):
            skipped.append((named, f'named by {record} but not a file'))
            named = None
    candidates = [named] if named else []
    folder = osp.dirname(named) if named else work_dir
    newest = _checkpoint_step(named) if named else None
    numbered = []
    if osp.isdir(folder):
        for name in os.listdir(folder):
            match = _CHECKPOINT_NAME.match(name)
            if match and (newest is None or int(match.group(1)) < newest):
                numbered.append((int(match.group(1)), osp.join(folder, name)))
    candidates += [path for _, path in sorted(numbered, reverse=True)]
    for path in candidates:
        try:
            load_from_local_weights_only(path, map_location='cpu')
        except CorruptCheckpointError as err:
            skipped.append((path, err.fault))
            continue
        return path, skipped
    return None, skipped


def _checkpoint_step(path: str) -> Optional[int]:
    match = _CHECKPOINT_NAME.match(osp.basename(path))
    return int(match.group(1)) if match else None


# Local paths (mmengine's default scheme, prefix '') load weights-only, also
# under torch < 2.6 where torch.load would unpickle anything by default.
CheckpointLoader.register_scheme(
    prefixes='', loader=load_from_local_weights_only, force=True)
# Local files (prefix '') are written atomically: every checkpoint.
register_backend('local', AtomicLocalBackend, force=True, prefixes='')

"""Read checkpoint files weights-only, and tell a damaged file from the rest.

``torch.load`` reports a damaged file in ways that do not say so, and never
names it: a truncated archive is ``RuntimeError: PytorchStreamReader failed
reading zip archive: failed finding central directory``, an empty file an
``EOFError``, a short read ``OSError: [Errno 22] Invalid argument``; and a
flipped byte inside a tensor loads without complaint, since ``torch.load``
does not check the archive's CRC-32 sums. A file that weights-only loading
refuses because it holds objects is an ``UnpicklingError``.

:func:`load_weights_only` checks the container first: since torch 1.6
``torch.save`` writes an uncompressed zip archive with a CRC-32 per record,
so a truncated or corrupt file is found by reading it once
(:func:`checkpoint_fault`) and reported as :class:`CorruptCheckpointError`,
naming the file and saying "truncated or corrupt". Only an intact file goes
to ``torch.load(weights_only=True)``, whose refusal the callers report in
their own words. Files of the legacy (pre-1.6, pickle) format carry no
checksum; for them a short read is the only sign of damage.
"""
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Optional

import torch
from torch import Tensor

__all__ = [
    'CorruptCheckpointError', 'checkpoint_fault', 'load_weights_only',
    'load_state_dict_file'
]

StateDict = Dict[str, Tensor]

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'  # legacy torch.save: a pickle, protocol 2
_CHUNK = 1 << 20


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or corrupt.

    Raised instead of what ``torch.load`` would raise, with the file's path
    (:attr:`path`) and the damage found (:attr:`fault`) in the message.
    """

    def __init__(self, path: str, fault: str) -> None:
        self.path = path
        self.fault = fault
        super().__init__(
            f'{path} is truncated or corrupt ({fault}); write it again or '
            'use an intact copy')


def checkpoint_fault(path: str) -> Optional[str]:
    """What is wrong with the container of a ``torch.save`` file, if any.

    A zip archive (``torch.save`` since torch 1.6) is read whole and every
    record's CRC-32 is checked. A file in the legacy pickle format cannot
    be checked (None, unless it is empty).

    Args:
        path: A local file.

    Returns:
        None if the container is intact (or cannot be checked), otherwise
        the damage in a few words.
    """
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        return 'empty file'
    if head.startswith(_PICKLE_PROTO):
        return None
    if head != _ZIP_MAGIC:
        return (f'neither a zip archive nor a pickle: starts with '
                f'{head!r}')
    if not zipfile.is_zipfile(path):
        return (f'zip archive without its end record: cut short at '
                f'{osp.getsize(path)} bytes')
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as record:
                    while record.read(_CHUNK):
                        pass
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        return f'damaged zip archive: {err}'
    return None


def load_weights_only(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` after a container check.

    Args:
        path: A local checkpoint file.
        map_location: As for :func:`torch.load`. Defaults to 'cpu'.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CorruptCheckpointError: If the file is truncated or corrupt.
        pickle.UnpicklingError: As ``torch.load`` raises it, if an intact
            file holds objects that weights-only loading refuses.
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    fault = checkpoint_fault(path)
    if fault is not None:
        raise CorruptCheckpointError(path, fault)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError) as err:
        with open(path, 'rb') as f:
            legacy = f.read(1) == _PICKLE_PROTO
        # a legacy file has no checksum: a short read is all that shows
        if legacy and (not isinstance(err, pickle.UnpicklingError)
                       or 'truncated' in str(err)):
            raise CorruptCheckpointError(
                path, f'{type(err).__name__}: {err}') from err
        raise


def load_state_dict_file(path: str) -> StateDict:
    """Read a checkpoint file, weights only, onto the CPU.

    A ``{'state_dict': ...}`` or ``{'model': ...}`` wrapper is unwrapped
    and a ``module.`` prefix (DataParallel) is removed.

    Args:
        path (str): Local checkpoint file.

    Returns:
        dict[str, Tensor]: The state dict.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CorruptCheckpointError: If the file is truncated or corrupt.
        ValueError: If the file does not hold a dict of tensors or cannot
            be read weights-only.
    """
    try:
        obj = load_weights_only(path, map_location='cpu')
    except pickle.UnpicklingError as err:
        raise ValueError(
            f'{path}: cannot be read weights-only (it holds objects other '
            f'than tensors and plain containers); save its state dict '
            f'alone and load that: {err}') from err
    for wrapper in ('state_dict', 'model'):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f'{path}: expected a non-empty state dict, got '
                         f'{type(obj).__name__}')
    not_tensors = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise ValueError(f'{path}: entries that are not tensors: '
                         f'{not_tensors[:10]}')
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return OrderedDict(obj)

"""Checkpoint files: read weights-only, take out the state dict, load it
strictly, digest it. The one module of the package that calls
``torch.load``.

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
to ``torch.load(weights_only=True)``; a refusal is a
:class:`WeightsOnlyError`. Files of the legacy (pre-1.6, pickle) format
carry no checksum; for them a short read is the only sign of damage.

:func:`extract_state_dict` takes the state dict out of what a file holds
(:func:`load_state_dict_file` does both), :func:`load_state_dict_strict`
loads it into a module or raises :class:`StateDictMismatchError`, which
names the tensors of another shape, the missing and the unexpected keys in
one format for every caller. Every error is a :class:`CheckpointError`;
each also derives from the built-in type its readers raised before this
module gathered them.
"""
import hashlib
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'WeightsOnlyError',
    'NotAStateDictError', 'StateDictMismatchError', 'checkpoint_fault',
    'load_weights_only', 'extract_state_dict', 'load_state_dict_file',
    'state_dict_mismatch', 'load_state_dict_strict', 'format_keys',
    'sha256_file', 'state_dict_digest', 'weights_digest'
]

StateDict = Dict[str, Tensor]

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'  # legacy torch.save: a pickle, protocol 2
_CHUNK = 1 << 20
# The wrappers a state dict may come in: mmengine's, then others'.
_WRAPPERS = ('state_dict', 'model')


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names it."""

    def __str__(self) -> str:
        # KeyError, a base of one subclass, would quote the message
        return str(self.args[0]) if self.args else ''


class CorruptCheckpointError(CheckpointError, RuntimeError):
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


class WeightsOnlyError(CheckpointError, RuntimeError, ValueError):
    """An intact file that ``torch.load(weights_only=True)`` refuses."""

    def __init__(self, path: str, err: Exception) -> None:
        self.path = path
        super().__init__(
            f'{path} cannot be loaded weights-only ({type(err).__name__}: '
            f'{err}). mmseg-kdas never unpickles arbitrary objects: a file '
            'that cannot be read weights-only must be saved again as '
            'tensors and plain containers (its state dict alone; a run that '
            'resumes must have been saved with PlainCheckpointHook).')


class NotAStateDictError(CheckpointError, ValueError):
    """A checkpoint that holds no state dict (a non-empty dict of tensors).
    """


class StateDictMismatchError(CheckpointError, KeyError):
    """A state dict that does not fit a model: keys missing, unexpected or
    of another shape, or none under an expected prefix."""


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
        path: A local checkpoint file (``~`` is expanded).
        map_location: As for :func:`torch.load`. Defaults to 'cpu'.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CorruptCheckpointError: If the file is truncated or corrupt.
        WeightsOnlyError: If an intact file cannot be loaded weights-only
            (it holds objects other than tensors and plain containers).
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    fault = checkpoint_fault(path)
    if fault is not None:
        raise CorruptCheckpointError(path, fault)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors come in several types
        with open(path, 'rb') as f:
            legacy = f.read(1) == _PICKLE_PROTO
        # a legacy file has no checksum: a short read is all that shows
        if legacy and (not isinstance(err, pickle.UnpicklingError)
                       or 'truncated' in str(err)):
            raise CorruptCheckpointError(
                path, f'{type(err).__name__}: {err}') from err
        raise WeightsOnlyError(path, err) from err


def extract_state_dict(obj: Any,
                       source: str,
                       prefix: Optional[str] = None) -> StateDict:
    """The state dict in what a checkpoint file holds.

    A ``{'state_dict': ...}`` (mmengine) or ``{'model': ...}`` wrapper is
    unwrapped and a ``module.`` prefix (DataParallel) on every key is
    removed.

    Args:
        obj: What the file holds (:func:`load_weights_only`).
        source: The file (or what else ``obj`` is), for error messages.
        prefix: Keep only the keys that start with it, without it (e.g.
            ``'backbone.'``). None keeps every key.

    Returns:
        The state dict, in its order.

    Raises:
        NotAStateDictError: If ``obj`` holds no non-empty dict of tensors.
        StateDictMismatchError: If no key starts with ``prefix``.
    """
    for wrapper in _WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj:
        raise NotAStateDictError(f'{source}: expected a non-empty state '
                                 f'dict, got {type(obj).__name__}')
    not_tensors = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise NotAStateDictError(f'{source}: entries that are not tensors: '
                                 f'{not_tensors[:10]}')
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    if prefix:
        obj = {
            k[len(prefix):]: v
            for k, v in obj.items() if k.startswith(prefix)
        }
        if not obj:
            raise StateDictMismatchError(
                f'{source}: no key starts with {prefix!r}')
    return OrderedDict(obj)


def load_state_dict_file(path: str,
                         prefix: Optional[str] = None) -> StateDict:
    """Read the state dict of a checkpoint file, weights only, on the CPU.

    :func:`load_weights_only`, then :func:`extract_state_dict`.

    Args:
        path: A local checkpoint file.
        prefix: As for :func:`extract_state_dict`.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CorruptCheckpointError: If the file is truncated or corrupt.
        WeightsOnlyError: If it cannot be read weights-only.
        NotAStateDictError: If it holds no state dict.
        StateDictMismatchError: If no key starts with ``prefix``.
    """
    return extract_state_dict(
        load_weights_only(path, map_location='cpu'), path, prefix)


def format_keys(keys: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` of ``keys``, comma-separated, and how many more.
    """
    shown = ', '.join(keys[:limit])
    more = len(keys) - limit
    return shown + (f' (and {more} more)' if more > 0 else '')


def state_dict_mismatch(own: Mapping[str, Tensor],
                        loaded: Mapping[str, Tensor],
                        target: str = 'model') -> List[str]:
    """What keeps ``loaded`` from loading strictly where ``own`` is, in words.

    Args:
        own: The state dict of the module to load into.
        loaded: The state dict read from the file.
        target: The module, as the sentences name it (``'teacher'``).

    Returns:
        Nothing if ``loaded`` fits, otherwise one sentence each for the
        tensors of another shape (the first 5, with both shapes), the
        missing keys and the unexpected keys (the first 10 of each); keys
        of the first two in the module's order, of the last in the file's.

    Example:
        >>> own = dict(w=torch.zeros(2), b=torch.zeros(2))
        >>> state_dict_mismatch(own, dict(w=torch.zeros(2), c=own['b']))
        ['missing keys: b', 'unexpected keys: c']
    """
    misshaped = [
        f'{key} is {tuple(loaded[key].shape)} in the file and '
        f'{tuple(value.shape)} in the {target}'
        for key, value in own.items()
        if key in loaded and tuple(loaded[key].shape) != tuple(value.shape)
    ]
    missing = [key for key in own if key not in loaded]
    unexpected = [key for key in loaded if key not in own]
    problems = []
    if misshaped:
        more = len(misshaped) - 5
        problems.append(
            f'{len(misshaped)} tensor(s) of another shape (a checkpoint of '
            'another variant?): ' + '; '.join(misshaped[:5]) +
            (f' (and {more} more)' if more > 0 else ''))
    if missing:
        problems.append(f'missing keys: {format_keys(missing)}')
    if unexpected:
        problems.append(f'unexpected keys: {format_keys(unexpected)}')
    return problems


def load_state_dict_strict(module: nn.Module,
                           state_dict: Mapping[str, Tensor],
                           source: str,
                           target: str = 'model') -> None:
    """Load ``state_dict`` into ``module``; every key must fit.

    Args:
        module: The module to load into.
        state_dict: Its weights, e.g. from :func:`load_state_dict_file`.
        source: Where the weights come from (the file), for the error.
        target: What ``module`` is (``'teacher'``), for the error.

    Raises:
        StateDictMismatchError: ``'{source} does not fit the {target}. '``
            followed by :func:`state_dict_mismatch`'s sentences.
    """
    problems = state_dict_mismatch(module.state_dict(), state_dict, target)
    if problems:
        raise StateDictMismatchError(f'{source} does not fit the {target}. ' +
                                     '. '.join(problems))
    module.load_state_dict(state_dict, strict=True)


def sha256_file(path: str, chunk: int = _CHUNK) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def state_dict_digest(state_dict: Mapping[str, Tensor]) -> str:
    """SHA-256 of weights, in hex: equal for weights of the same bits.

    Over each tensor's name, dtype, shape and bytes, in name order::

        sha256(for name in sorted: f'{name}|{dtype}|{shape}|' + bytes)

    Args:
        state_dict: The weights (CPU tensors).

    Returns:
        The digest; the study's ledger (``tools/kd_study.py``) stores it,
        so it must not change for the same weights.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'
                      .encode())
        digest.update(tensor.contiguous().view(-1).view(
            torch.uint8).numpy().tobytes() if tensor.numel() else b'')
    return digest.hexdigest()


def weights_digest(path: str) -> str:
    """:func:`state_dict_digest` of a checkpoint file's state dict: equal
    for runs that trained to the same bits, whatever else the files hold.
    """
    return state_dict_digest(load_state_dict_file(path))

"""Atomic file writes: a half-written file never carries its final name.

Every writer goes to a temporary file in the destination's own folder (so
that the final rename stays on one file system), flushes and fsyncs it,
renames it over the destination with :func:`os.replace` (atomic on POSIX)
and fsyncs the folder, so that the rename itself survives a power loss. A
write that fails (an exception, a full disk) removes its temporary file and
leaves whatever had the final name before untouched; a process killed
mid-write leaves at most a ``.<name>.*.tmp`` file beside it, never a short
file under the final name.
"""
import contextlib
import os
import os.path as osp
import shutil
import tempfile
from typing import IO, Any, Iterator

__all__ = [
    'atomic_write', 'atomic_write_text', 'atomic_torch_save', 'atomic_dir',
    'fsync_dir'
]

# mkstemp creates 0600 files; the final file gets open()'s usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def fsync_dir(path: str) -> None:
    """fsync a folder, so that renames inside it are durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a file system that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb') -> Iterator[IO[Any]]:
    """Open ``path`` for writing; it appears only when the block succeeds.

    Args:
        path: The destination file.
        mode: ``'wb'`` or ``'w'``.

    Yields:
        The open temporary file.

    Raises:
        OSError: If the write fails; the message names ``path``, the
            temporary file is removed and an existing ``path`` is kept.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        # a writer may turn the OSError into its own error (torch.save: a
        # RuntimeError of its zip writer); the OSError is then its context
        cause = err if isinstance(err, OSError) else err.__context__
        if isinstance(cause, OSError) and path not in str(err):
            raise type(cause)(cause.errno, f'writing {path} failed: '
                              f'{cause.strerror or cause}') from err
        raise
    fsync_dir(folder)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, 'w') as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`atomic_write`)."""
    import torch
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)


@contextlib.contextmanager
def atomic_dir(path: str) -> Iterator[str]:
    """Build a folder under a temporary name; rename it to ``path`` at the end.

    Args:
        path: The destination folder. It must not exist yet.

    Yields:
        The temporary folder to fill (a sibling of ``path``).

    Raises:
        FileExistsError: If ``path`` exists.
    """
    path = osp.abspath(path)
    if osp.exists(path):
        raise FileExistsError(f'{path} exists; remove it or choose another '
                              'folder')
    parent = osp.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=parent)
    try:
        yield tmp
        for name in os.listdir(tmp):  # the files' data, then their names
            file = osp.join(tmp, name)
            if osp.isfile(file):
                with open(file, 'rb+') as f:
                    os.fsync(f.fileno())
        fsync_dir(tmp)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(parent)

"""Hooks used only by the tools' tests (imported via custom_imports)."""
import builtins
import contextlib
import errno
import io
import json
import os
import os.path as osp
import re
import signal

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class KDASTestKillAtIterHook(Hook):
    """SIGKILL the process after iteration ``iter`` (after its checkpoint)."""

    priority = 'LOWEST'

    def __init__(self, iter: int):
        self.iter = iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KDASTestRecordHook(Hook):
    """Save each rank's weights where training (re)starts and at its end.

    ``start_rank<rank>.pth`` also holds the iteration, the world size, the
    optimizer state and the logged losses; ``end_rank<rank>.pth`` the
    iteration.
    """

    def before_train(self, runner):
        rank = dist.get_rank() if dist.is_initialized() else 0
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        torch.save(
            dict(
                iter=runner.iter,
                world_size=(dist.get_world_size()
                            if dist.is_initialized() else 1),
                state_dict=model.state_dict(),
                optimizer=runner.optim_wrapper.state_dict(),
                loss_history=runner.message_hub.get_scalar(
                    'train/loss').data[0].tolist()
                if 'train/loss' in runner.message_hub.log_scalars else []),
            osp.join(runner.work_dir, f'start_rank{rank}.pth'))

    def after_train(self, runner):
        rank = dist.get_rank() if dist.is_initialized() else 0
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        torch.save(
            dict(iter=runner.iter, state_dict=model.state_dict()),
            osp.join(runner.work_dir, f'end_rank{rank}.pth'))


@HOOKS.register_module()
class KDASTestNaNTeacherHook(Hook):
    """Fill the teacher's decode head with NaN before iteration ``iter``.

    The teacher's maps, hence the distillation terms, turn NaN; the
    student's own segmentation losses stay finite.
    """

    def __init__(self, iter: int):
        self.iter = iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iter:
            model = runner.model.module if hasattr(
                runner.model, 'module') else runner.model
            for param in model.teacher.decode_head.parameters():
                param.data.fill_(float('nan'))


@HOOKS.register_module()
class KDASTestAutocastHook(Hook):
    """Write the dtype of the student's and the teacher's decode-head
    outputs and of the distillation terms to ``work_dir/dtypes.json``."""

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        self.seen = {}

        def record(name):

            def hook(module, args, output):
                out = output[0] if isinstance(output, (list, tuple)) \
                    else output
                self.seen[name] = str(out.dtype)

            return hook

        model.student.decode_head.register_forward_hook(record('student'))
        model.teacher.decode_head.register_forward_hook(record('teacher'))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        for key, value in outputs.items():
            if key.startswith(('loss_at', 'loss_sgm')):
                self.seen[key] = str(value.dtype)
        with open(osp.join(runner.work_dir, 'dtypes.json'), 'w') as f:
            json.dump(self.seen, f)


_TEMP_OF = re.compile(r'^\.(.+)\.[^.]+\.tmp$')  # atomic_write's temp names


class _FaultyFile:
    """A file that lets ``budget`` bytes through, then calls ``fault``."""

    def __init__(self, file, budget: int, fault) -> None:
        self._file = file
        self._budget = budget
        self._fault = fault

    def write(self, data):
        if len(data) > self._budget:
            self._file.write(data[:self._budget])
            self._file.flush()
            self._fault()
        self._budget -= len(data)
        return self._file.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._file, name)


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _enospc():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@contextlib.contextmanager
def write_fault(action: str, name: str, budget: int):
    """SIGKILL the process, or fail as a full disk, while it writes a file.

    Within the block, the first time the process opens for writing a file
    called ``name``, or a temporary file of one (``.<name>.<random>.tmp``,
    what an atomic write writes first), the first ``budget`` bytes (or
    characters) written to it go through; then the process kills itself
    with SIGKILL (``action='kill'``) or the write raises ``OSError(ENOSPC)``
    (``'enospc'``), as a kill or a full disk in the middle of the write
    would. Files opened from Python are seen (``open``, ``io.open``,
    ``os.fdopen``), whatever the writer.
    """
    fault = dict(kill=_kill, enospc=_enospc)[action]
    original = io.open
    armed = [True]

    def faulty_open(file, mode='r', *args, **kwargs):
        f = original(file, mode, *args, **kwargs)
        if not armed[0] or not any(c in mode for c in 'wax+'):
            return f
        path = os.readlink(f'/proc/self/fd/{file}') if isinstance(
            file, int) else os.fspath(file)
        temp = _TEMP_OF.match(osp.basename(path))
        if name not in (osp.basename(path), temp and temp.group(1)):
            return f
        armed[0] = False
        return _FaultyFile(f, budget, fault)

    builtins.open = io.open = faulty_open
    try:
        yield
    finally:
        builtins.open = io.open = original


@HOOKS.register_module()
class KDASTestWriteFaultHook(Hook):
    """Arm :func:`write_fault` for the whole run, from the environment.

    ``KDAS_TEST_FAULT=<kill|enospc>:<name>:<bytes>`` arms it (unset: the
    hook does nothing), e.g. ``kill:iter_4.pth:4096`` kills the run 4 KiB
    into writing its checkpoint of iteration 4.
    """

    def __init__(self) -> None:
        spec = os.environ.get('KDAS_TEST_FAULT')
        if spec:
            action, name, budget = spec.split(':')
            # kept: a dropped context would close and undo the patch
            self._fault = write_fault(action, name, int(budget))
            self._fault.__enter__()

"""Hooks used only by the tools' tests (imported via custom_imports)."""
import json
import os
import os.path as osp
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
    """Save where training (re)starts and the weights at that point."""

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

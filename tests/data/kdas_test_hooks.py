"""Hooks used only by the tools' tests (imported via custom_imports)."""
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

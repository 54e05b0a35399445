"""Stop training at the first non-finite loss term."""
import logging
from typing import Dict, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

DATA_BATCH = Optional[Sequence[dict]]


def non_finite_terms(outputs: Dict[str, object]) -> Dict[str, float]:
    """The loss terms of a ``train_step`` output that are NaN or infinite.

    Args:
        outputs: The ``log_vars`` of ``train_step``: the total ``loss`` and
            one value (a tensor or a number) per logged term.

    Returns:
        ``{name: value}`` of every term whose name contains ``'loss'`` and
        whose value is not finite.
    """
    bad = {}
    for name, value in outputs.items():
        if 'loss' not in name:
            continue
        tensor = torch.as_tensor(value).detach().float()
        if not torch.isfinite(tensor).all():
            bad[name] = float(tensor.sum())
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at once when a loss term is NaN or infinite.

    After every training iteration it checks the logged terms of
    ``train_step`` (``loss``, ``seg.decode.loss_structure_p1``,
    ``loss_at_0``, ...) and raises :class:`FloatingPointError` naming the
    iteration, each non-finite term and the last checkpoint written, which
    still holds finite weights: this iteration's checkpoint is not written,
    since the hook runs before :class:`~mmengine.hooks.CheckpointHook`.
    Neither mmengine nor mmseg checks this: without it a NaN trains on
    silently (and under ``--amp`` the gradient scaler skips every step).

    ``tools/train.py`` adds this hook to every run. Runs that build their
    runner elsewhere add ``dict(type='NonFiniteLossHook')`` to
    ``custom_hooks``.
    """

    # before the logger (BELOW_NORMAL) and the checkpoint hook (VERY_LOW)
    priority = 'ABOVE_NORMAL'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Raise if a loss term of this iteration is not finite."""
        if not outputs:
            return
        bad = non_finite_terms(outputs)
        if not bad:
            return
        terms = ', '.join(f'{name} = {value}' for name, value in bad.items()
                          if name != 'loss')
        if 'loss' in bad:
            total = f'total loss = {bad["loss"]}'
            terms = f'{terms} ({total})' if terms else total
        last_ckpt = runner.message_hub.get_info('last_ckpt')
        message = (f'non-finite loss at iteration {runner.iter + 1}: '
                   f'{terms}. Training stopped; the last checkpoint '
                   'written is ' +
                   (str(last_ckpt) if last_ckpt else 'none (none was '
                    'written yet)') + '.')
        print_log(message, logger='current', level=logging.ERROR)
        raise FloatingPointError(message)

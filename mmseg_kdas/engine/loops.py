"""Train loops that take the reference's optimiser steps per batch.

The polyp recipe (PraNet, Polyp-PVT, KDAS) trains every batch at each rate
of ``(0.75, 1, 1.25)`` in turn: rescale the batch, forward, loss, backward,
clip, optimiser step, three times per batch. mmengine's loops call
``model.train_step`` once per batch; :class:`MultiScaleEpochBasedTrainLoop`
and :class:`MultiScaleIterBasedTrainLoop` drive the
:class:`~mmseg_kdas.models.BatchMultiScaleResize` of the model's data
preprocessor instead:

- ``mode='all'``: one ``train_step`` (so one optimiser step) per rate, each
  on a fresh copy of the batch, as the reference; a KDAS distiller's teacher
  sees the same rescaled tensors as its student at every step;
- ``mode='cycle'``: one step per batch, at rate ``rates[iter % len(rates)]``:
  the phase follows the iteration, so ``--resume`` continues it exactly;
- ``mode='random'`` or no multi-scale augment: mmengine's behaviour.

Counting: an *iteration* is a batch, whatever the mode. ``max_iters``,
``val_interval``, checkpoint intervals, iteration-based parameter
schedulers, the logger's ``interval`` and ``runner.iter`` all count batches;
with ``mode='all'`` the optimiser takes ``len(rates)`` steps per iteration,
and the losses logged for an iteration are the means over its steps.
"""
import copy
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmseg.registry import LOOPS

from ..models.data_preprocessor import BatchMultiScaleResize

__all__ = [
    'find_multiscale_augment', 'MultiScaleEpochBasedTrainLoop',
    'MultiScaleIterBasedTrainLoop'
]


def find_multiscale_augment(model) -> Optional[BatchMultiScaleResize]:
    """The :class:`BatchMultiScaleResize` of a model's data preprocessor.

    Args:
        model: A model (possibly wrapped by DDP).

    Returns:
        The augment, or None when the preprocessor has none.

    Raises:
        ValueError: If it has more than one.
    """
    if is_model_wrapper(model):
        model = model.module
    augments = getattr(
        getattr(model, 'data_preprocessor', None), 'batch_augments', None)
    augments = getattr(augments, 'augments', None) or []
    found = [a for a in augments if isinstance(a, BatchMultiScaleResize)]
    if len(found) > 1:
        raise ValueError('the data preprocessor has more than one '
                         f'BatchMultiScaleResize: {found}')
    return found[0] if found else None


def _mean_outputs(outputs: Sequence[Dict]) -> Dict:
    """Average the log variables of the steps of one iteration."""
    if len(outputs) == 1:
        return outputs[0]
    merged = {}
    for key in outputs[0]:
        values = [out[key] for out in outputs if key in out]
        if isinstance(values[0], torch.Tensor):
            merged[key] = torch.stack([v.detach().float()
                                       for v in values]).mean()
        else:
            merged[key] = sum(values) / len(values)
    return merged


class _MultiScaleSteps:
    """What the two loops share: the optimiser steps of one batch."""

    def _check_multiscale(self) -> None:
        augment = find_multiscale_augment(self.runner.model)
        if augment is not None and augment.mode == 'all':
            optim_wrapper = self.runner.optim_wrapper
            counts = getattr(optim_wrapper, '_accumulative_counts', 1)
            if counts != 1:
                raise ValueError(
                    "BatchMultiScaleResize(mode='all') takes one optimiser "
                    'step per rate; gradient accumulation '
                    f'(accumulative_counts={counts}) is not supported with '
                    'it')
        self._augment = augment

    def _train_steps(self, data_batch) -> Dict:
        augment = self._augment
        model, optim_wrapper = self.runner.model, self.runner.optim_wrapper
        if augment is None or augment.mode == 'random':
            return model.train_step(data_batch, optim_wrapper=optim_wrapper)
        if augment.mode == 'cycle':
            augment.set_rate_index(self._iter % len(augment.rates))
            return model.train_step(data_batch, optim_wrapper=optim_wrapper)
        outputs = []
        for index in range(len(augment.rates)):
            augment.set_rate_index(index)
            # a fresh copy each time: preprocessing resizes the samples of
            # the batch in place
            outputs.append(
                model.train_step(
                    copy.deepcopy(data_batch), optim_wrapper=optim_wrapper))
        return _mean_outputs(outputs)


@LOOPS.register_module()
class MultiScaleEpochBasedTrainLoop(_MultiScaleSteps, EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` taking the multi-scale steps of each batch.

    See the module docstring; the arguments are ``EpochBasedTrainLoop``'s.
    """

    def run(self) -> torch.nn.Module:
        """Train; see ``EpochBasedTrainLoop.run``."""
        self._check_multiscale()
        return super().run()

    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        """One batch: hooks around its optimiser steps."""
        self.runner.call_hook(
            'before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self._train_steps(data_batch)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1


@LOOPS.register_module()
class MultiScaleIterBasedTrainLoop(_MultiScaleSteps, IterBasedTrainLoop):
    """``IterBasedTrainLoop`` taking the multi-scale steps of each batch.

    See the module docstring; the arguments are ``IterBasedTrainLoop``'s.
    """

    def run(self) -> None:
        """Train; see ``IterBasedTrainLoop.run``."""
        self._check_multiscale()
        return super().run()

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """One batch: hooks around its optimiser steps."""
        self.runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self._train_steps(data_batch)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=self._iter,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1

"""Draw each training iteration's randomness from the seed and the iteration.
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

__all__ = ['IterationSeedHook', 'iteration_seed']


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of one training iteration: a function of both alone.

    Args:
        seed: The run's seed.
        iteration: The iteration (0-based).

    Returns:
        int: In ``[0, 2**32)`` (numpy's range).
    """
    return (int(seed) * 1_000_003 + int(iteration) + 1) % 2**32


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Seed torch, numpy and ``random`` before every training iteration.

    mmengine seeds the generators once, at the start, so what iteration
    ``k`` draws (drop-path, dropout, random rates of
    :class:`~mmseg_kdas.models.BatchMultiScaleResize`) depends on every draw
    before it, a validation's or a data loader's creation included. A run
    resumed from a checkpoint does not restore that state, so it trains
    differently from the run it continues. With this hook iteration ``k``
    draws from generators seeded with :func:`iteration_seed` ``(seed, k)``,
    ``seed`` being the runner's: a resumed run trains to the same bits as
    an uninterrupted one (given the same CPU code paths and threads). The
    data loader's workers keep their own generators.

    Args:
        seed (int, optional): Overrides the runner's seed.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed=None) -> None:
        self.seed = seed

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        seed = runner.seed if self.seed is None else self.seed
        value = iteration_seed(seed, runner.iter)
        torch.manual_seed(value)
        np.random.seed(value)
        random.seed(value)

"""Mixed-precision training on the CPU (``tools/train.py --amp``)."""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """:class:`OptimWrapper` whose forward pass runs under CPU autocast.

    mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU (its
    loss scaler is CUDA's). On the CPU, autocast runs in bfloat16, which
    has float32's exponent range: gradients neither underflow nor overflow
    where float32 ones would not, so no loss scaling is needed and the
    update is the plain :class:`OptimWrapper`'s. ``tools/train.py --amp``
    uses this wrapper when no GPU is available, ``AmpOptimWrapper`` (float16
    with dynamic loss scaling) otherwise.

    Args:
        dtype (str | torch.dtype): The autocast dtype; CPU autocast accepts
            ``'bfloat16'`` (and ``'float16'`` in recent PyTorch).
            Defaults to 'bfloat16'.
        **kwargs: The arguments of :class:`OptimWrapper` (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError('CPUAmpOptimWrapper: dtype must be bfloat16 or '
                             f'float16, got {dtype}')
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Autocast to :attr:`cast_dtype` on the CPU, besides the context of
        :class:`OptimWrapper` (gradient accumulation)."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield

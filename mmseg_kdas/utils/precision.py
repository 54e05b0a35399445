"""Computations kept in float32 under mixed precision (``--amp``)."""
from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ['in_float32']

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        if device_type == 'cpu':
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def in_float32(term: Callable[..., Any], *maps: Tensor) -> Any:
    """Compute ``term(*maps)`` in float32, with autocast off.

    Under autocast (``tools/train.py --amp``) matrix products run in float16
    (CUDA) or bfloat16 (CPU). The distillation terms square and sum logits:
    ``P @ P.T`` of
    :func:`~mmseg_kdas.models.losses.kd_losses.self_attention_map` over the
    88 columns of a 352x352 map overflows float16 (max 65504) for logits of
    magnitude 30, which a confident teacher reaches, and the loss turns
    NaN; bfloat16 keeps about three significant digits. The structure loss
    sums weights up to 6 over 352x352 pixels, again past 65504. Here float16
    and bfloat16 tensors are cast to float32 (other tensors are kept) and
    the term runs with autocast disabled; gradients flow back through the
    cast. Every registered loss and neck of the plugin computes itself so
    (idempotent: a term already in float32 with autocast off runs as it
    is), and :class:`~mmseg_kdas.models.distillers.KDASDistiller` wraps each
    distillation term once more.

    Args:
        term (Callable): The loss (or neck and loss), called on the maps.
        *maps (Tensor): Its tensor arguments, e.g. student and teacher maps.

    Returns:
        The result of ``term``.
    """
    maps = tuple(m.float() if m.dtype in _LOW_PRECISION else m for m in maps)
    if not maps or not _autocast_enabled(maps[0].device.type):
        return term(*maps)
    with torch.autocast(device_type=maps[0].device.type, enabled=False):
        return term(*maps)

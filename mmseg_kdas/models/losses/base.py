"""What the plugin's loss modules share: weight, name, precision, targets.

The maths of every loss is a typed pure function; a registered module is a
thin :class:`WeightedLoss`: it holds ``loss_weight`` and ``loss_name`` and
computes its term in float32 with autocast off
(:func:`~mmseg_kdas.utils.precision.in_float32`), so that mixed precision
cannot overflow it, on its own as well as in :class:`KDASDistiller`. A
distillation loss (:class:`BaseKDLoss`) moreover takes the teacher's map as
a target, detached (no gradient reaches it), and may resize one of the two
maps to the other's size first (:func:`align_spatial_size`).
"""
from typing import Callable, Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_kdas.utils.precision import in_float32

ALIGN_TO = ('teacher', 'student')

_AGREE = {
    'shape': slice(None),
    'spatial size': slice(-2, None),
    'batch size': slice(0, 1),
}


def check_positive(name: str, value: float) -> None:
    """Raise a ValueError unless ``value > 0`` (a temperature, an exponent).

    Args:
        name (str): The argument's name, for the message.
        value (float): Its value.
    """
    if value <= 0:
        raise ValueError(f'{name} must be > 0, got {value}')


def check_pair(owner: str,
               student: Tensor,
               teacher: Tensor,
               agree: Optional[str] = 'shape',
               nchw: bool = False) -> None:
    """Raise a ValueError, naming both shapes, unless two maps fit together.

    Args:
        owner (str): The function or module checking, for the message.
        student (Tensor): Student map.
        teacher (Tensor): Teacher map.
        agree (str, optional): What the two must share: ``'shape'``,
            ``'spatial size'`` (the last two dimensions) or ``'batch size'``
            (the first); None for nothing. Defaults to 'shape'.
        nchw (bool): Both must have four dimensions. Defaults to False.
    """
    if nchw and (student.dim() != 4 or teacher.dim() != 4):
        problem = 'expects NCHW maps'
    elif agree is not None and (student.shape[_AGREE[agree]] !=
                                teacher.shape[_AGREE[agree]]):
        problem = f'needs maps of one {agree}'
    else:
        return
    raise ValueError(f'{owner} {problem}, got student '
                     f'{tuple(student.shape)} and teacher '
                     f'{tuple(teacher.shape)}')


def align_spatial_size(
        student: Tensor,
        teacher: Tensor,
        align_to: str = 'teacher',
        align_corners: bool = False) -> Tuple[Tensor, Tensor]:
    """Resize one of two NCHW maps (bilinear) to the other's ``H x W``.

    Args:
        student (Tensor): Student map ``(B, C, Hs, Ws)``.
        teacher (Tensor): Teacher map ``(B, C, Ht, Wt)``.
        align_to (str): ``'teacher'`` resizes the student map to the
            teacher's size, ``'student'`` the teacher map to the student's.
            Defaults to 'teacher'.
        align_corners (bool): As in :func:`torch.nn.functional.interpolate`.
            Defaults to False.

    Returns:
        tuple[Tensor, Tensor]: ``(student, teacher)`` of one spatial size.
    """
    if align_to not in ALIGN_TO:
        raise ValueError(f'align_to must be one of {ALIGN_TO}, '
                         f'got {align_to!r}')
    check_pair('align_spatial_size', student, teacher, None, nchw=True)
    if student.shape[-2:] == teacher.shape[-2:]:
        return student, teacher
    if align_to == 'teacher':
        student = F.interpolate(
            student,
            size=teacher.shape[-2:],
            mode='bilinear',
            align_corners=align_corners)
    else:
        teacher = F.interpolate(
            teacher,
            size=student.shape[-2:],
            mode='bilinear',
            align_corners=align_corners)
    return student, teacher


class WeightedLoss(nn.Module):
    """A registered loss: its weight, its name and its float32 term.

    Args:
        loss_weight (float): Multiplier of the loss.
        loss_name (str): Name of the loss item; it must contain ``'loss'``
            to be back-propagated (``BaseModel.parse_losses``).
    """

    def __init__(self, loss_weight: float, loss_name: str) -> None:
        super().__init__()
        if 'loss' not in loss_name:
            raise ValueError(f'{type(self).__name__}: loss_name must contain '
                             f'"loss" to be optimised, got {loss_name!r}')
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def weighted(self, term: Callable[..., Tensor], *maps: Tensor) -> Tensor:
        """``loss_weight * term(*maps)``, the term in float32.

        Args:
            term (Callable): The loss's pure function, its other arguments
                bound.
            *maps (Tensor): Its tensor arguments.

        Returns:
            Tensor: The weighted scalar loss, float32.
        """
        return self.loss_weight * in_float32(term, *maps)

    @property
    def loss_name(self) -> str:
        """str: Name of the loss item."""
        return self._loss_name


class BaseKDLoss(WeightedLoss):
    """A distillation loss of a student map against a teacher map.

    A subclass computes the loss of two maps of one size in
    :meth:`kd_loss`, calling its pure function; :meth:`forward` detaches
    the teacher's map, casts both to float32 with autocast off, resizes one
    to the other's size (if ``align_to`` is set) and weights the result.

    Args:
        loss_weight (float): Multiplier of the loss.
        loss_name (str): Name of the loss item; it must contain ``'loss'``
            to be back-propagated.
        align_to (str, optional): When the two maps differ in size,
            ``'teacher'`` resizes the student map to the teacher's
            (bilinear), ``'student'`` the teacher map to the student's; None
            leaves them as they are. Defaults to None.
        align_corners (bool): Used by that resize. Defaults to False.
        temperature (float, optional): Softmax temperature ``T`` (> 0) of
            the losses that have one. Defaults to None.
    """

    def __init__(self,
                 loss_weight: float,
                 loss_name: str,
                 align_to: Optional[str] = None,
                 align_corners: bool = False,
                 temperature: Optional[float] = None) -> None:
        super().__init__(loss_weight, loss_name)
        if temperature is not None:
            check_positive('temperature', temperature)
        if align_to is not None and align_to not in ALIGN_TO:
            raise ValueError(f'align_to must be one of {ALIGN_TO}, '
                             f'got {align_to!r}')
        self.align_to = align_to
        self.align_corners = align_corners
        self.temperature = temperature

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            student (Tensor): Student map, e.g. logits ``(B, C, Hs, Ws)``.
            teacher (Tensor): Teacher map ``(B, C', Ht, Wt)``; a target,
                detached.

        Returns:
            Tensor: The weighted scalar loss, float32.
        """
        return self.weighted(self._aligned_loss, student, teacher.detach())

    def _aligned_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        if self.align_to is not None:
            student, teacher = align_spatial_size(student, teacher,
                                                  self.align_to,
                                                  self.align_corners)
        return self.kd_loss(student, teacher)

    def kd_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        """The unweighted loss of two maps (resized to one size already).

        Args:
            student (Tensor): Student map.
            teacher (Tensor): Teacher map, detached.

        Returns:
            Tensor: A scalar loss.
        """
        raise NotImplementedError


__all__ = [
    'ALIGN_TO', 'check_positive', 'check_pair', 'align_spatial_size',
    'WeightedLoss', 'BaseKDLoss'
]

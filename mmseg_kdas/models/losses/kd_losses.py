"""Distillation losses of KDAS: attention supervision and symmetric guidance.

The maths lives in typed pure functions; the registered modules only hold
``loss_weight`` and ``loss_name``, align the spatial sizes of the two maps
and treat the teacher's map as a target (detached: no gradient reaches it).
Each module computes in float32 with autocast off
(:func:`mmseg_kdas.utils.precision.in_float32`), on its own as well as in
:class:`KDASDistiller` (which wraps every term so once more), so mixed
precision cannot overflow them in any distiller or training loop.
"""
import math
from functools import partial
from typing import Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from mmseg_kdas.utils.precision import in_float32

_ALIGN_TO = ('teacher', 'student')
_SYMMETRIC_LOSS_TYPES = ('mse', 'l1', 'cosine')


def self_attention_map(x: Tensor) -> Tensor:
    """Scaled dot-product self-attention of a map, its rows as tokens.

    For every ``H x W`` map ``P`` (the trailing two dimensions of ``x``) this
    is ``softmax(P @ P.T / sqrt(W)) @ P``: each image row attends to every
    row, the query, key and value all being the map itself. It equals
    ``torch.nn.functional.scaled_dot_product_attention(x, x, x)``.

    Args:
        x (Tensor): Maps of shape ``(..., H, W)``, e.g. ``(B, C, H, W)``
            logits.

    Returns:
        Tensor: The attention output, same shape as ``x``.
    """
    if x.dim() < 2:
        raise ValueError('self_attention_map expects maps of shape '
                         f'(..., H, W), got shape {tuple(x.shape)}')
    scores = x @ x.transpose(-2, -1) / math.sqrt(x.shape[-1])
    return scores.softmax(dim=-1) @ x


def kl_distillation_loss(student: Tensor,
                         teacher: Tensor,
                         temperature: float = 2.0) -> Tensor:
    """Temperature-scaled KL divergence between flattened per-sample maps.

    ``KL(softmax(vec(t) / T) || softmax(vec(s) / T)) * T**2`` where ``vec``
    flattens every dimension but the batch one, averaged over the batch
    (``batchmean``). The student side enters as log-probabilities
    (``log_softmax``), so ``KL(p || p) = 0`` and the loss is non-negative.

    Args:
        student (Tensor): Student logits of shape ``(B, ...)``.
        teacher (Tensor): Teacher scores, same shape as ``student``.
        temperature (float): Softmax temperature ``T`` (> 0).
            Defaults to 2.0.

    Returns:
        Tensor: A scalar loss.
    """
    if student.shape != teacher.shape:
        raise ValueError('kl_distillation_loss needs maps of one shape, got '
                         f'student {tuple(student.shape)} and teacher '
                         f'{tuple(teacher.shape)}')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    log_p_student = F.log_softmax(student.flatten(1) / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher.flatten(1) / temperature, dim=1)
    kl = F.kl_div(
        log_p_student, log_p_teacher, reduction='batchmean', log_target=True)
    return kl * temperature**2


def attention_supervision_loss(student: Tensor,
                               teacher: Tensor,
                               temperature: float = 2.0) -> Tensor:
    """KDAS attention supervision ``L_AT``.

    ``L_AT = KL(softmax(vec(A_t) / T) || softmax(vec(P_s) / T)) * T**2`` with
    the teacher attention ``A_t = softmax(P_t P_t^T / sqrt(W)) P_t``
    (:func:`self_attention_map`). The reference script divides ``A_t`` by
    ``T`` before its (broken) KL; here ``T`` is applied once, as the softmax
    temperature of both distributions.

    Args:
        student (Tensor): Student logits ``P_s`` of shape ``(B, C, H, W)``.
        teacher (Tensor): Teacher logits ``P_t``, same shape.
        temperature (float): Softmax temperature. Defaults to 2.0.

    Returns:
        Tensor: A scalar loss.
    """
    return kl_distillation_loss(student, self_attention_map(teacher),
                                temperature)


def symmetric_kd_loss(student: Tensor,
                      teacher: Tensor,
                      loss_type: str = 'mse') -> Tensor:
    """Distance between student and teacher symmetric embeddings.

    Args:
        student (Tensor): Student embedding of shape ``(B, ...)``.
        teacher (Tensor): Teacher embedding, same shape.
        loss_type (str): ``'mse'`` (mean squared error over all elements),
            ``'l1'`` (mean absolute error) or ``'cosine'`` (batch mean of
            ``1 - cos(vec(s), vec(t))``). Defaults to 'mse'.

    Returns:
        Tensor: A scalar loss.
    """
    if student.shape != teacher.shape:
        raise ValueError('symmetric_kd_loss needs embeddings of one shape, '
                         f'got student {tuple(student.shape)} and teacher '
                         f'{tuple(teacher.shape)}')
    if loss_type == 'mse':
        return F.mse_loss(student, teacher)
    if loss_type == 'l1':
        return F.l1_loss(student, teacher)
    if loss_type == 'cosine':
        cos = F.cosine_similarity(
            student.flatten(1), teacher.flatten(1), dim=1)
        return (1 - cos).mean()
    raise ValueError(f'loss_type must be one of {_SYMMETRIC_LOSS_TYPES}, '
                     f'got {loss_type!r}')


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
    if align_to not in _ALIGN_TO:
        raise ValueError(f'align_to must be one of {_ALIGN_TO}, '
                         f'got {align_to!r}')
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError('expected NCHW maps, got student '
                         f'{tuple(student.shape)} and teacher '
                         f'{tuple(teacher.shape)}')
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


@MODELS.register_module()
class AttentionSupervisionLoss(nn.Module):
    """Attention supervision loss ``L_AT`` of KDAS.

    `KDAS: Knowledge Distillation via Attention Supervision Framework for
    Polyp Segmentation <https://arxiv.org/abs/2312.08555>`_.

    The teacher's map is turned into a self-attention map
    (:func:`self_attention_map`) and its softmax distribution over all
    pixels supervises the student's map through a temperature-scaled KL
    divergence (:func:`attention_supervision_loss`). The teacher's map is a
    target: it is detached, so no gradient reaches it. The loss is computed
    in float32 with autocast off (under float16 ``P @ P.T`` of a confident
    teacher's logits overflows).

    Args:
        temperature (float): Softmax temperature ``T``. Defaults to 2.0.
        align_to (str): When the two maps differ in size, ``'teacher'``
            resizes the student map to the teacher's (bilinear), ``'student'``
            the teacher map to the student's. Defaults to 'teacher'.
        align_corners (bool): Used by that resize. Defaults to False.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item; it must contain ``'loss'``
            to be back-propagated. Defaults to 'loss_at'.
    """

    def __init__(self,
                 temperature: float = 2.0,
                 align_to: str = 'teacher',
                 align_corners: bool = False,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_at') -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if align_to not in _ALIGN_TO:
            raise ValueError(f'align_to must be one of {_ALIGN_TO}, '
                             f'got {align_to!r}')
        self.temperature = temperature
        self.align_to = align_to
        self.align_corners = align_corners
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            student (Tensor): Student logits ``(B, C, Hs, Ws)``.
            teacher (Tensor): Teacher logits ``(B, C, Ht, Wt)``.

        Returns:
            Tensor: The weighted scalar loss, float32.
        """
        return self.loss_weight * in_float32(self._loss, student,
                                             teacher.detach())

    def _loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        student, teacher = align_spatial_size(student, teacher,
                                              self.align_to,
                                              self.align_corners)
        return attention_supervision_loss(student, teacher, self.temperature)

    @property
    def loss_name(self) -> str:
        """str: Name of the loss item."""
        return self._loss_name


@MODELS.register_module()
class SymmetricKDLoss(nn.Module):
    """Distance between the symmetric embeddings of the SGM neck.

    `KDAS: Knowledge Distillation via Attention Supervision Framework for
    Polyp Segmentation <https://arxiv.org/abs/2312.08555>`_.

    The teacher's embedding is a target: it is detached, so no gradient
    reaches it. The loss is computed in float32 with autocast off.

    Args:
        loss_type (str): ``'mse'``, ``'l1'`` or ``'cosine'``, see
            :func:`symmetric_kd_loss`. Defaults to 'mse'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item; it must contain ``'loss'``
            to be back-propagated. Defaults to 'loss_sgm'.
    """

    def __init__(self,
                 loss_type: str = 'mse',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_sgm') -> None:
        super().__init__()
        if loss_type not in _SYMMETRIC_LOSS_TYPES:
            raise ValueError(f'loss_type must be one of '
                             f'{_SYMMETRIC_LOSS_TYPES}, got {loss_type!r}')
        self.loss_type = loss_type
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            student (Tensor): Student embedding.
            teacher (Tensor): Teacher embedding, same shape.

        Returns:
            Tensor: The weighted scalar loss, float32.
        """
        return self.loss_weight * in_float32(
            partial(symmetric_kd_loss, loss_type=self.loss_type), student,
            teacher.detach())

    @property
    def loss_name(self) -> str:
        """str: Name of the loss item."""
        return self._loss_name


__all__ = [
    'self_attention_map', 'kl_distillation_loss',
    'attention_supervision_loss', 'symmetric_kd_loss', 'align_spatial_size',
    'AttentionSupervisionLoss', 'SymmetricKDLoss'
]

"""Distillation losses of KDAS: attention supervision and symmetric guidance.

The maths lives in typed pure functions; the registered modules are thin
:class:`~.base.BaseKDLoss` subclasses: they hold ``loss_weight`` and
``loss_name``, align the spatial sizes of the two maps and treat the
teacher's map as a target (detached: no gradient reaches it). Each module
computes in float32 with autocast off
(:func:`mmseg_kdas.utils.precision.in_float32`), on its own as well as in
:class:`KDASDistiller` (which wraps every term so once more), so mixed
precision cannot overflow them in any distiller or training loop.
"""
import math

import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .base import BaseKDLoss, check_pair, check_positive

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
    check_pair('kl_distillation_loss', student, teacher)
    check_positive('temperature', temperature)
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
    check_pair('symmetric_kd_loss', student, teacher)
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


@MODELS.register_module()
class AttentionSupervisionLoss(BaseKDLoss):
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
        super().__init__(loss_weight, loss_name, align_to, align_corners,
                         temperature)

    def kd_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return attention_supervision_loss(student, teacher, self.temperature)


@MODELS.register_module()
class SymmetricKDLoss(BaseKDLoss):
    """Distance between the symmetric embeddings of the SGM neck.

    `KDAS: Knowledge Distillation via Attention Supervision Framework for
    Polyp Segmentation <https://arxiv.org/abs/2312.08555>`_.

    The teacher's embedding is a target: it is detached, so no gradient
    reaches it. The loss is computed in float32 with autocast off. The two
    embeddings must have one shape (:class:`SGMNeck` makes them so).

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
        super().__init__(loss_weight, loss_name)
        if loss_type not in _SYMMETRIC_LOSS_TYPES:
            raise ValueError(f'loss_type must be one of '
                             f'{_SYMMETRIC_LOSS_TYPES}, got {loss_type!r}')
        self.loss_type = loss_type

    def kd_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return symmetric_kd_loss(student, teacher, self.loss_type)


__all__ = [
    'self_attention_map', 'kl_distillation_loss',
    'attention_supervision_loss', 'symmetric_kd_loss',
    'AttentionSupervisionLoss', 'SymmetricKDLoss'
]

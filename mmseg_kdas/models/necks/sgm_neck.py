"""Symmetrical Guiding Module (SGM) of KDAS."""
from typing import Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptMultiConfig
from torch import Tensor

from mmseg_kdas.utils.precision import in_float32
from ..losses.base import check_pair

_EMBEDDINGS = ('transpose', 'gram', 'covariance')


def transpose_embedding(x: Tensor) -> Tensor:
    """Symmetrise square maps: ``P + P^T`` over the two spatial dimensions.

    Args:
        x (Tensor): Maps of shape ``(..., S, S)``.

    Returns:
        Tensor: ``x + x.transpose(-2, -1)``, same shape, symmetric in its
        last two dimensions.
    """
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError('transpose_embedding needs square maps (..., S, S), '
                         f'got shape {tuple(x.shape)}')
    return x + x.transpose(-2, -1)


def gram_embedding(x: Tensor, center: bool = False) -> Tensor:
    """Channel Gram (or covariance) matrix normalised by the spatial size.

    ``G = X X^T / (H W)`` with ``X`` the ``C x HW`` matrix of one sample;
    with ``center=True`` the mean of each channel over the pixels is
    removed first, which gives the (biased) channel covariance.

    Args:
        x (Tensor): Features of shape ``(B, C, H, W)``.
        center (bool): Subtract the per-channel spatial mean first.
            Defaults to False.

    Returns:
        Tensor: Symmetric matrices of shape ``(B, C, C)``.
    """
    if x.dim() != 4:
        raise ValueError('gram_embedding needs NCHW features, got shape '
                         f'{tuple(x.shape)}')
    flat = x.flatten(2)
    if center:
        flat = flat - flat.mean(dim=2, keepdim=True)
    gram = flat @ flat.transpose(1, 2) / flat.shape[2]
    # symmetric in exact arithmetic; averaging makes it so in floating point
    return (gram + gram.transpose(1, 2)) / 2


@MODELS.register_module()
class SGMNeck(BaseModule):
    """Symmetrical Guiding Module: symmetric embeddings of two maps.

    `KDAS: Knowledge Distillation via Attention Supervision Framework for
    Polyp Segmentation <https://arxiv.org/abs/2312.08555>`_.

    It maps a student map and a teacher map to symmetric embeddings of one
    shape, which :class:`SymmetricKDLoss` then compares:

    - ``embedding='transpose'`` (for logits such as Polyp-PVT's ``Bx1xHxW``
      ``P1``; per channel for multi-class logits): both maps are resized
      (bilinear) to a common ``size x size`` square and embedded as
      ``P + P^T``. The result keeps the input shape ``(B, C, S, S)``.
    - ``embedding='gram'`` / ``'covariance'`` (for multi-channel features):
      ``C x C`` channel Gram / covariance matrices normalised by the number
      of pixels, ``(B, C, C)``. The two maps may differ in spatial size.

    If ``student_channels`` and ``teacher_channels`` are given, a 1x1 conv
    adapter (trained with the student) first maps the student map to the
    teacher's channel count; otherwise the two channel counts must match.
    The teacher's map is a target: it is detached, so no gradient reaches
    it. The embeddings are computed in float32 with autocast off
    (:func:`~mmseg_kdas.utils.precision.in_float32`): a Gram matrix of
    logits of magnitude 30 over 88 x 88 pixels sums past float16's maximum
    before it is normalised.

    Args:
        embedding (str): ``'transpose'``, ``'gram'`` or ``'covariance'``.
            Defaults to 'transpose'.
        size (int, optional): Side of the common square for ``'transpose'``.
            None takes the teacher map's width (the reference pools both maps
            to ``W_t x W_t``). Defaults to None.
        student_channels (int, optional): Channels of the student map; give
            it with ``teacher_channels`` to build the adapter.
            Defaults to None.
        teacher_channels (int, optional): Channels of the teacher map.
            Defaults to None.
        align_corners (bool): Of the bilinear resize. Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.

    Example:
        >>> import torch
        >>> from mmseg_kdas.models.necks import SGMNeck
        >>> neck = SGMNeck(embedding='transpose', size=16)
        >>> s, t = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 32, 24)
        >>> [tuple(e.shape) for e in neck(s, t)]
        [(2, 1, 16, 16), (2, 1, 16, 16)]
        >>> neck = SGMNeck(embedding='gram', student_channels=32,
        ...                teacher_channels=64)
        >>> s, t = torch.rand(2, 32, 8, 8), torch.rand(2, 64, 4, 4)
        >>> [tuple(e.shape) for e in neck(s, t)]
        [(2, 64, 64), (2, 64, 64)]
    """

    def __init__(self,
                 embedding: str = 'transpose',
                 size: Optional[int] = None,
                 student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None,
                 align_corners: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embedding not in _EMBEDDINGS:
            raise ValueError(f'embedding must be one of {_EMBEDDINGS}, '
                             f'got {embedding!r}')
        if size is not None and size < 1:
            raise ValueError(f'size must be a positive int, got {size}')
        if (student_channels is None) != (teacher_channels is None):
            raise ValueError('give both student_channels and '
                             'teacher_channels (to build the adapter) or '
                             f'neither, got {student_channels} and '
                             f'{teacher_channels}')
        self.embedding = embedding
        self.size = size
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.align_corners = align_corners
        if student_channels is not None:
            self.adapter = nn.Conv2d(student_channels, teacher_channels, 1)
        else:
            self.adapter = None

    def forward(self, student: Tensor,
                teacher: Tensor) -> Tuple[Tensor, Tensor]:
        """Embed a student map and a teacher map.

        Args:
            student (Tensor): Student map ``(B, Cs, Hs, Ws)``.
            teacher (Tensor): Teacher map ``(B, Ct, Ht, Wt)``.

        Returns:
            tuple[Tensor, Tensor]: The student and teacher embeddings, of one
            shape: ``(B, Ct, S, S)`` for ``'transpose'``, ``(B, Ct, Ct)``
            otherwise; float32.
        """
        check_pair('SGMNeck', student, teacher, None, nchw=True)
        if self.adapter is not None:
            if student.shape[1] != self.student_channels:
                raise ValueError(
                    f'SGMNeck was built for student_channels='
                    f'{self.student_channels}, got a student map of shape '
                    f'{tuple(student.shape)}')
        return in_float32(self._embed, student, teacher.detach())

    def _embed(self, student: Tensor,
               teacher: Tensor) -> Tuple[Tensor, Tensor]:
        if self.adapter is not None:
            student = self.adapter(student)
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(
                'student and teacher maps differ in channels '
                f'({tuple(student.shape)} vs {tuple(teacher.shape)}); set '
                'student_channels and teacher_channels to add an adapter')

        if self.embedding == 'transpose':
            side = self.size if self.size is not None else teacher.shape[-1]
            return (transpose_embedding(self._resize(student, side)),
                    transpose_embedding(self._resize(teacher, side)))
        center = self.embedding == 'covariance'
        return (gram_embedding(student, center),
                gram_embedding(teacher, center))

    def _resize(self, x: Tensor, side: int) -> Tensor:
        """Bilinear resize to ``side x side`` (identity if already so)."""
        if tuple(x.shape[-2:]) == (side, side):
            return x
        return F.interpolate(
            x,
            size=(side, side),
            mode='bilinear',
            align_corners=self.align_corners)

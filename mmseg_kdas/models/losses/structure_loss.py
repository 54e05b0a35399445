"""Structure loss of PraNet / Polyp-PVT: boundary-weighted BCE + IoU."""
from functools import partial
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .base import WeightedLoss


def boundary_weight(mask: Tensor,
                    kernel_size: int = 31,
                    boundary_weight: float = 5.0) -> Tensor:
    """Per-pixel weight ``1 + k * |avgpool(m) - m|``, large near edges.

    The average pool has stride 1 and padding ``kernel_size // 2`` and
    counts the zero padding in its mean (PyTorch's default, as in the
    reference), so image borders also weigh a little more.

    Args:
        mask (Tensor): Float mask in [0, 1], B x 1 x H x W.
        kernel_size (int): Odd side of the pooling window. Default: 31.
        boundary_weight (float): The factor ``k``. Default: 5.

    Returns:
        Tensor: Weights, B x 1 x H x W, each in [1, 1 + k].
    """
    local_mean = F.avg_pool2d(
        mask, kernel_size=kernel_size, stride=1, padding=kernel_size // 2)
    return 1 + boundary_weight * torch.abs(local_mean - mask)


def _prepare_target(pred: Tensor, target: Tensor,
                    ignore_index: Optional[int]) -> Tuple[Tensor, Tensor]:
    """Turn a label map or a soft mask into (mask, valid), both B1HW."""
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if target.dim() != 4 or target.shape[1] != 1 or \
            target.shape[0] != pred.shape[0] or \
            target.shape[2:] != pred.shape[2:]:
        raise ValueError(
            f'structure_loss: target {tuple(target.shape)} does not match '
            f'pred {tuple(pred.shape)} (expected B x H x W or B x 1 x H x W)')
    if target.is_floating_point():
        if target.numel() and (target.min() < 0 or target.max() > 1):
            raise ValueError('structure_loss: a float target must be a soft '
                             'mask in [0, 1]')
        return target.to(pred.dtype), torch.ones_like(pred)
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    labels = target[valid]
    if labels.numel() and (labels.min() < 0 or labels.max() > 1):
        raise ValueError(
            f'structure_loss: labels must be 0 (background), 1 (polyp) or '
            f'ignore_index={ignore_index}; found values '
            f'{torch.unique(labels).tolist()[:10]}')
    mask = torch.where(valid, target, torch.zeros_like(target))
    return mask.to(pred.dtype), valid.to(pred.dtype)


def structure_loss(pred: Tensor,
                   target: Tensor,
                   ignore_index: Optional[int] = 255,
                   kernel_size: int = 31,
                   boundary_weight_factor: float = 5.0,
                   weighted_bce: bool = True) -> Tensor:
    """Boundary-weighted BCE plus weighted IoU loss of binary logits.

    With ``m`` the mask and ``w = 1 + 5 |avgpool31(m) - m|``
    (:func:`boundary_weight`), per image::

        wbce = sum(w * bce(pred, m)) / sum(w)
        wiou = 1 - (inter + 1) / (union - inter + 1), with
        inter = sum(w * sigmoid(pred) * m),
        union = sum(w * (sigmoid(pred) + m)),

    and the loss is the mean of ``wbce + wiou`` over the batch.

    Ignored pixels (``target == ignore_index``) count as background inside
    the pooling window of ``w`` (as the zero padding at the image border
    does) and are left out of every sum: their prediction has no effect on
    the loss. Images with no valid pixel are left out of the batch mean; if
    no image has one, the loss is 0 (still attached to ``pred``).

    The reference code passes ``reduce='none'`` to
    ``binary_cross_entropy_with_logits``, which PyTorch reads as the legacy
    ``reduce=True``: its BCE term is in fact the unweighted mean over all
    pixels of the batch. ``weighted_bce=False`` reproduces that.

    Args:
        pred (Tensor): Logits, B x 1 x H x W.
        target (Tensor): Integer labels (0, 1, ``ignore_index``), B x H x W
            or B x 1 x H x W; or a float soft mask in [0, 1] (no ignore).
        ignore_index (int, optional): Label to ignore. Default: 255.
        kernel_size (int): Window of the boundary weight. Default: 31.
        boundary_weight_factor (float): Factor of the boundary term.
            Default: 5.
        weighted_bce (bool): Weight the BCE by ``w`` (the intended loss).
            False gives the reference's effective plain BCE. Default: True.

    Returns:
        Tensor: Scalar loss.
    """
    if pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f'structure_loss: pred must be B x 1 x H x W '
                         f'logits, got {tuple(pred.shape)}')
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f'structure_loss: kernel_size must be odd, got '
                         f'{kernel_size}')
    mask, valid = _prepare_target(pred, target, ignore_index)
    weight = boundary_weight(mask, kernel_size, boundary_weight_factor)
    weight = weight * valid
    weight_sum = weight.sum(dim=(2, 3))
    has_pixels = weight_sum.flatten() > 0
    if not has_pixels.any():
        return pred.sum() * 0.

    bce = F.binary_cross_entropy_with_logits(pred, mask, reduction='none')
    if weighted_bce:
        wbce = (weight * bce).sum(dim=(2, 3)) / weight_sum.clamp(min=1e-12)
    else:
        wbce = (valid * bce).sum() / valid.sum()
    prob = torch.sigmoid(pred)
    inter = (prob * mask * weight).sum(dim=(2, 3))
    union = ((prob + mask) * weight).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    per_image = (wbce + wiou).flatten()
    return per_image[has_pixels].mean()


@MODELS.register_module()
class StructureLoss(WeightedLoss):
    """Structure loss (weighted BCE + weighted IoU) for binary logits.

    From PraNet (`Fan et al., MICCAI 2020
    <https://arxiv.org/abs/2006.11392>`_), used by Polyp-PVT and KDAS on
    each prediction map. See :func:`structure_loss` for the maths and the
    handling of ignored pixels. Called by a decode head as
    ``loss(logits, label_map, ignore_index=...)``. It is computed in float32
    with autocast off (:func:`~mmseg_kdas.models.utils.in_float32`): under
    ``--amp`` its sums over the pixels would overflow float16.

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.
        loss_name (str): Name of the term in the log; must contain
            ``'loss'`` to be back-propagated. Default: ``'loss_structure'``.
        kernel_size (int): Window of the boundary weight. Default: 31.
        boundary_weight (float): Factor of the boundary term. Default: 5.
        weighted_bce (bool): False reproduces the reference's effective
            unweighted BCE. Default: True.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_structure',
                 kernel_size: int = 31,
                 boundary_weight: float = 5.0,
                 weighted_bce: bool = True) -> None:
        super().__init__(loss_weight, loss_name)
        self.kernel_size = kernel_size
        self.boundary_weight = boundary_weight
        self.weighted_bce = weighted_bce

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = 255,
                **kwargs) -> Tensor:
        """Compute the weighted loss.

        Args:
            pred (Tensor): Logits, B x 1 x H x W.
            target (Tensor): Labels B x H x W (or a soft mask in [0, 1]).
            weight (Tensor, optional): Not supported (must be None); the
                loss has its own pixel weights.
            ignore_index (int, optional): Label to ignore. Default: 255.

        Returns:
            Tensor: Scalar loss times ``loss_weight``.
        """
        if weight is not None:
            raise ValueError('StructureLoss does not take a pixel weight '
                             '(no pixel sampler with this loss)')
        # in float32 under --amp: its sums over the pixels overflow float16
        return self.weighted(
            partial(
                structure_loss,
                ignore_index=ignore_index,
                kernel_size=self.kernel_size,
                boundary_weight_factor=self.boundary_weight,
                weighted_bce=self.weighted_bce), pred, target)

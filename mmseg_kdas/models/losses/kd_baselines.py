"""Standard segmentation-KD losses, as baselines for KDAS.

Each is a typed pure function plus a thin registered module
(:class:`~.base.BaseKDLoss`: the teacher's map detached, in float32) taking
``(student, teacher)`` maps, so that :class:`KDASDistiller` runs them through
its pairs like its own terms, e.g. channel-wise distillation on the
Polyp-PVT logits::

    model = dict(type='KDASDistiller', ...,
                 at_pairs=[dict(student=0, teacher=0),
                           dict(student=1, teacher=1)],
                 loss_at=dict(type='ChannelWiseDivergence', temperature=1.0,
                              loss_weight=3.0),
                 sgm_weight=0.0)

- :class:`PixelKDLoss`: pixel-wise KD (Hinton et al. 2015, per pixel);
- :class:`ChannelWiseDivergence`: CWD (Shu et al., ICCV 2021);
- :class:`AttentionTransferLoss`: attention transfer on feature maps
  (Zagoruyko & Komodakis, ICLR 2017).

On a 1-channel map, CWD is the temperature-scaled KL between the spatial
softmaxes of the two maps: KDAS's ``L_AT`` with the teacher's own logits in
place of its self-attention map.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .base import BaseKDLoss, check_pair, check_positive


def pixel_kd_loss(student: Tensor,
                  teacher: Tensor,
                  temperature: float = 1.0) -> Tensor:
    """Pixel-wise knowledge distillation.

    Hinton et al., `Distilling the Knowledge in a Neural Network
    <https://arxiv.org/abs/1503.02531>`_, applied at every pixel:
    ``KL(p_t || p_s) * T**2`` averaged over the batch and the pixels, where
    ``p = softmax(logits / T)`` over the channels, or for a 1-channel
    (sigmoid) map the Bernoulli distribution ``(sigmoid(z / T),
    1 - sigmoid(z / T))``.

    Args:
        student (Tensor): Student logits ``(B, C, H, W)``; one channel for
            a sigmoid map.
        teacher (Tensor): Teacher logits, same shape.
        temperature (float): Temperature ``T`` (> 0). Defaults to 1.0.

    Returns:
        Tensor: A scalar loss.
    """
    check_pair('pixel_kd_loss', student, teacher, nchw=True)
    check_positive('temperature', temperature)
    s, t = student / temperature, teacher / temperature
    if s.shape[1] == 1:
        # log p and log(1 - p) of a Bernoulli with logit z: logsigmoid(+-z)
        log_s = torch.cat([F.logsigmoid(s), F.logsigmoid(-s)], dim=1)
        log_t = torch.cat([F.logsigmoid(t), F.logsigmoid(-t)], dim=1)
    else:
        log_s, log_t = F.log_softmax(s, dim=1), F.log_softmax(t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)
    return kl.mean() * temperature**2


def channel_wise_divergence(student: Tensor,
                            teacher: Tensor,
                            temperature: float = 1.0) -> Tensor:
    """Channel-wise distillation (CWD).

    Shu et al., `Channel-wise Knowledge Distillation for Dense Prediction
    <https://arxiv.org/abs/2011.13256>`_ (ICCV 2021): every channel is turned
    into a distribution over its ``H * W`` pixels by a softmax with
    temperature ``T``, and ``KL(p_t || p_s)`` is summed over the pixels,
    multiplied by ``T**2`` and averaged over ``B * C`` channels, as mmrazor's
    loss of the same name.

    Args:
        student (Tensor): Student maps ``(B, C, H, W)``, logits or features.
        teacher (Tensor): Teacher maps, same shape.
        temperature (float): Temperature ``T`` (> 0). Defaults to 1.0.

    Returns:
        Tensor: A scalar loss, the mean over the ``B * C`` channels.
    """
    check_pair('channel_wise_divergence', student, teacher, nchw=True)
    check_positive('temperature', temperature)
    b, c = student.shape[:2]
    log_s = F.log_softmax(student.flatten(2) / temperature, dim=2)
    log_t = F.log_softmax(teacher.flatten(2) / temperature, dim=2)
    kl = F.kl_div(log_s, log_t, reduction='sum', log_target=True)
    return kl * temperature**2 / (b * c)


def attention_transfer_map(x: Tensor, p: float = 2.0) -> Tensor:
    """Spatial attention of a feature map: ``normalize(vec(mean_c |x|^p))``.

    Args:
        x (Tensor): Features ``(B, C, H, W)``.
        p (float): Exponent. Defaults to 2.0.

    Returns:
        Tensor: ``(B, H * W)`` rows of unit L2 norm.
    """
    return F.normalize(x.abs().pow(p).mean(dim=1).flatten(1), dim=1)


def attention_transfer_loss(student: Tensor,
                            teacher: Tensor,
                            p: float = 2.0) -> Tensor:
    """Attention transfer (AT).

    Zagoruyko & Komodakis, `Paying More Attention to Attention
    <https://arxiv.org/abs/1612.03928>`_ (ICLR 2017): the mean over the batch
    and the ``H * W`` positions of ``(Q_s - Q_t)**2``, where ``Q`` is
    :func:`attention_transfer_map`, as the authors' ``at_loss``. The channel
    counts may differ (the maps pool the channels away); the spatial sizes
    must agree. The paper weights it by ``beta / 2`` with ``beta = 1000``.

    Args:
        student (Tensor): Student features ``(B, Cs, H, W)``.
        teacher (Tensor): Teacher features ``(B, Ct, H, W)``.
        p (float): Exponent of the attention map. Defaults to 2.0.

    Returns:
        Tensor: A scalar loss.
    """
    check_pair('attention_transfer_loss', student, teacher, 'spatial size',
               nchw=True)
    check_pair('attention_transfer_loss', student, teacher, 'batch size')
    diff = attention_transfer_map(student, p) - attention_transfer_map(
        teacher, p)
    return diff.pow(2).mean()


class _TemperatureKDLoss(BaseKDLoss):
    """A baseline with a temperature, whose name has a per-class default.

    Args:
        temperature (float): Temperature ``T``. Defaults to 1.0.
        align_to (str): ``'teacher'`` or ``'student'``: whose size the other
            map is resized to when they differ. Defaults to 'teacher'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str, optional): Name of the loss item. Defaults to None:
            the class's :attr:`default_loss_name`.
    """

    #: The name of the loss item unless ``loss_name`` is given.
    default_loss_name: str

    def __init__(self,
                 temperature: float = 1.0,
                 align_to: str = 'teacher',
                 loss_weight: float = 1.0,
                 loss_name: Optional[str] = None) -> None:
        if loss_name is None:
            loss_name = self.default_loss_name
        super().__init__(
            loss_weight, loss_name, align_to, temperature=temperature)


@MODELS.register_module()
class PixelKDLoss(_TemperatureKDLoss):
    """Pixel-wise KD (:func:`pixel_kd_loss`).

    Its arguments: ``temperature`` (default 1.0), ``align_to``
    (``'teacher'``), ``loss_weight`` (1.0) and ``loss_name``
    (``'loss_pkd'``), as :class:`_TemperatureKDLoss` describes them.
    """

    default_loss_name = 'loss_pkd'

    def kd_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return pixel_kd_loss(student, teacher, self.temperature)


@MODELS.register_module()
class ChannelWiseDivergence(_TemperatureKDLoss):
    """Channel-wise distillation (:func:`channel_wise_divergence`).

    Its arguments: ``temperature`` (default 1.0), ``align_to``
    (``'teacher'``), ``loss_weight`` (1.0) and ``loss_name``
    (``'loss_cwd'``), as :class:`_TemperatureKDLoss` describes them.
    Published segmentation settings: ``T = 1``, weight 5 (mmrazor's
    Cityscapes config
    ``cwd_logits_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k.py``);
    ``T = 4``, weight 3 (the CWD authors' script, irfanICMLL/TorchDistiller
    ``exp_cwd.sh channel kl 3 4``).
    """

    default_loss_name = 'loss_cwd'

    def kd_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return channel_wise_divergence(student, teacher, self.temperature)


@MODELS.register_module()
class AttentionTransferLoss(BaseKDLoss):
    """Attention transfer (:func:`attention_transfer_loss`).

    Args:
        p (float): Exponent of the attention map. Defaults to 2.0.
        align_to (str): ``'teacher'`` or ``'student'``: whose size the other
            map is resized to when they differ. Defaults to 'teacher'.
        loss_weight (float): Multiplier of the loss; the paper's
            ``beta / 2`` is 500. Defaults to 1.0.
        loss_name (str): Name of the loss item. Defaults to 'loss_atf'.
    """

    def __init__(self,
                 p: float = 2.0,
                 align_to: str = 'teacher',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_atf') -> None:
        check_positive('p', p)
        super().__init__(loss_weight, loss_name, align_to)
        self.p = p

    def kd_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        """:func:`attention_transfer_loss` of two feature maps."""
        return attention_transfer_loss(student, teacher, self.p)


__all__ = [
    'pixel_kd_loss', 'channel_wise_divergence', 'attention_transfer_map',
    'attention_transfer_loss', 'PixelKDLoss', 'ChannelWiseDivergence',
    'AttentionTransferLoss'
]

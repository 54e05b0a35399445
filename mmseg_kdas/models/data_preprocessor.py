"""Batch-level multi-scale training of the polyp recipe.

The reference (PraNet, Polyp-PVT, KDAS) trains each batch at the rates
0.75, 1 and 1.25 of 352 px (256, 352 and 448 after rounding to multiples of
32), resizing the whole batch. MMSeg 1.2.2's ``SegDataPreProcessor`` keeps
``batch_augments`` as given and calls it, so a list of configs from a
config file fails; :class:`BatchAugSegDataPreProcessor` builds them.

Example (model config)::

    data_preprocessor = dict(
        type='BatchAugSegDataPreProcessor',
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, size=(352, 352), pad_val=0, seg_pad_val=255,
        batch_augments=[dict(type='BatchMultiScaleResize',
                             rates=(0.75, 1.0, 1.25))])
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

__all__ = [
    'multiscale_size', 'BatchMultiScaleResize', 'BatchAugSegDataPreProcessor'
]
_MODES = ('all', 'cycle', 'random')


def multiscale_size(size: Sequence[int],
                    rate: float,
                    size_divisor: int = 32) -> Tuple[int, int]:
    """``size * rate`` rounded to a multiple of ``size_divisor``.

    As the reference: ``int(round(352 * rate / 32) * 32)`` gives 256, 352
    and 448 for the rates 0.75, 1 and 1.25.

    Args:
        size: ``(H, W)``.
        rate: Scale factor.
        size_divisor: Both sides become multiples of it (at least one).

    Returns:
        The new ``(H, W)``.
    """
    return tuple(  # type: ignore[return-value]
        max(size_divisor,
            int(round(s * rate / size_divisor) * size_divisor))
        for s in size)


@MODELS.register_module()
class BatchMultiScaleResize:
    """Resize a whole training batch to one of several scales.

    Images are resized bilinearly; ground-truth masks with nearest
    neighbour when they hold labels (integers: labels stay labels, 255 stays
    ignored) and bilinearly, like the images, when they are soft (floating
    point, see ``LoadPolypAnnotations(soft=True)``), as the reference does.
    ``img_shape`` and ``pad_shape`` of the data samples follow.

    Args:
        rates: Scale factors to choose from.
        size_divisor: New sides are multiples of it (32 for PVT backbones).
        mode: How the rate of a call is chosen:

            - ``'all'``: every batch is trained at every rate, one optimiser
              step each, in the order of ``rates`` (the reference recipe).
              Needs :class:`~mmseg_kdas.engine.MultiScaleEpochBasedTrainLoop`
              or :class:`~mmseg_kdas.engine.MultiScaleIterBasedTrainLoop`,
              which set the rate of each step;
            - ``'cycle'``: one rate per batch, the rates in turn (under those
              loops the phase follows the iteration, so it survives
              ``--resume``);
            - ``'random'``: one rate per batch, drawn uniformly with torch's
              generator.
        align_corners: ``align_corners`` of the bilinear resizes (the
            reference uses True).

    Example:
        >>> aug = BatchMultiScaleResize(rates=(0.75, ), mode='cycle')
        >>> inputs, _ = aug(torch.rand(2, 3, 352, 352), [])
        >>> tuple(inputs.shape)
        (2, 3, 256, 256)
    """

    def __init__(self,
                 rates: Sequence[float] = (0.75, 1.0, 1.25),
                 size_divisor: int = 32,
                 mode: str = 'random',
                 align_corners: bool = True) -> None:
        if not rates or any(r <= 0 for r in rates):
            raise ValueError(f'rates must be positive numbers, got {rates}')
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}, got {mode!r}')
        self.rates = tuple(float(r) for r in rates)
        self.size_divisor = size_divisor
        self.mode = mode
        self.align_corners = align_corners
        self._calls = 0
        self._next_index: Optional[int] = None

    def set_rate_index(self, index: int) -> None:
        """Use ``rates[index]`` at the next call (set by the train loops)."""
        if not 0 <= index < len(self.rates):
            raise IndexError(f'rate index {index} out of range for rates '
                             f'{self.rates}')
        self._next_index = index

    def pick_rate(self) -> float:
        """The rate of this call."""
        index, self._next_index = self._next_index, None
        if index is None:
            if self.mode == 'all':
                raise RuntimeError(
                    "BatchMultiScaleResize(mode='all') trains every batch "
                    'at every rate: use train_cfg type '
                    "'MultiScaleEpochBasedTrainLoop' or "
                    "'MultiScaleIterBasedTrainLoop', which set the rate of "
                    'each optimiser step')
            if self.mode == 'cycle':
                index = self._calls % len(self.rates)
            else:
                index = int(torch.randint(len(self.rates), ()).item())
        self._calls += 1
        return self.rates[index]

    def __call__(self, inputs: Tensor,
                 data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        """Resize the batch.

        Args:
            inputs: Normalised images ``(N, C, H, W)``.
            data_samples: Their data samples (``gt_sem_seg`` is resized).

        Returns:
            ``(inputs, data_samples)`` at the new size.
        """
        size = multiscale_size(inputs.shape[-2:], self.pick_rate(),
                               self.size_divisor)
        if size == tuple(inputs.shape[-2:]):
            return inputs, data_samples
        inputs = F.interpolate(
            inputs,
            size=size,
            mode='bilinear',
            align_corners=self.align_corners)
        for sample in data_samples:
            if 'gt_sem_seg' in sample:
                gt = sample.gt_sem_seg.data
                if gt.is_floating_point():  # soft mask: as the images
                    resized = F.interpolate(
                        gt[None],
                        size=size,
                        mode='bilinear',
                        align_corners=self.align_corners)[0]
                else:  # labels stay labels
                    resized = F.interpolate(
                        gt[None].float(), size=size, mode='nearest')[0]
                sample.gt_sem_seg = PixelData(
                    data=resized.to(gt.dtype),
                    metainfo=sample.gt_sem_seg.metainfo)
            sample.set_metainfo(dict(img_shape=size, pad_shape=size))
        return inputs, data_samples

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(rates={self.rates}, '
                f'size_divisor={self.size_divisor}, mode={self.mode!r}, '
                f'align_corners={self.align_corners})')


class _ComposeBatchAugments:
    """Apply batch augmentations in turn."""

    def __init__(self, augments: List[Callable]) -> None:
        self.augments = augments

    def __call__(self, inputs: Tensor,
                 data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        for augment in self.augments:
            inputs, data_samples = augment(inputs, data_samples)
        return inputs, data_samples

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.augments})'


@MODELS.register_module()
class BatchAugSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` whose ``batch_augments`` are built from configs.

    MMSeg 1.2.2 stores ``batch_augments`` unbuilt (``TODO`` in its code), so
    a config list of dicts is not callable at the first training step. This
    subclass builds each entry from the ``MODELS`` registry (callables are
    used as they are) and applies them in order after the batch is stacked,
    in training only.

    Args:
        batch_augments: Configs (or callables) of batch augmentations, each
            called as ``inputs, data_samples = aug(inputs, data_samples)``.
        **kwargs: Arguments of ``SegDataPreProcessor`` (``mean``, ``std``,
            ``bgr_to_rgb``, ``size``, ``pad_val``, ``seg_pad_val`` ...).
    """

    def __init__(self,
                 batch_augments: Optional[Sequence[Union[dict,
                                                         Callable]]] = None,
                 **kwargs) -> None:
        super().__init__(batch_augments=None, **kwargs)
        if batch_augments:
            built = [
                MODELS.build(aug) if isinstance(aug, dict) else aug
                for aug in batch_augments
            ]
            for aug in built:
                if not callable(aug):
                    raise TypeError(f'batch augmentation {aug!r} is not '
                                    'callable')
            self.batch_augments = _ComposeBatchAugments(built)

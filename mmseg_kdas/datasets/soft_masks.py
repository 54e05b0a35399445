"""Soft training masks, as the reference recipe trains on them.

PraNet, Polyp-PVT and KDAS resize the 0 / 255 mask image with torchvision's
``Resize`` (PIL bilinear) and divide by 255, so the structure loss sees
values in (0, 1) along every polyp edge; the multi-scale rates then resize
the soft mask bilinearly again (:class:`~mmseg_kdas.models.
BatchMultiScaleResize` does so for floating-point masks). A training
pipeline with soft masks::

    dict(type='LoadImageFromFile'),
    dict(type='LoadPolypAnnotations'),   # {0, 1}
    dict(type='SoftMaskResize', scale=(352, 352), keep_ratio=False,
         backend='pillow'),              # float32 in [0, 1]
    dict(type='PackPolypInputs'),        # keeps the mask float

Evaluation keeps the binary mask at its original size (the test pipeline
loads it after the image is resized).
"""
import numpy as np
import torch
from mmcv.image import imrescale, imresize
from mmcv.transforms import Resize
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

__all__ = ['SoftMaskResize', 'PackPolypInputs']


@TRANSFORMS.register_module()
class SoftMaskResize(Resize):
    """mmcv's ``Resize`` that resizes the mask like the image: soft edges.

    The image is resized as by ``Resize``. A binary ``{0, 1}`` mask is
    resized as the 0 / 255 8-bit image the reference reads (same
    interpolation and backend as the image), then divided by 255: a
    ``float32`` mask in [0, 1], exactly the reference's targets with the
    ``'pillow'`` backend and ``'bilinear'`` interpolation. A mask that is
    already floating point is resized as it is.

    Args:
        **kwargs: The arguments of ``mmcv.transforms.Resize`` (``scale``,
            ``keep_ratio``, ``backend``, ``interpolation`` ...).
    """

    def _resize_seg(self, results: dict) -> None:
        gt = results.get('gt_seg_map', None)
        if gt is None:
            return
        if np.issubdtype(gt.dtype, np.floating):
            mask, scale = gt.astype(np.float32), 1.0
        else:
            if gt.size and gt.max() > 1:
                raise ValueError(
                    'SoftMaskResize expects a {0, 1} mask (use '
                    'LoadPolypAnnotations), got values up to '
                    f'{gt.max()} in {results.get("seg_map_path")}')
            mask, scale = gt.astype(np.uint8) * 255, 255.0
        resize = imrescale if self.keep_ratio else imresize
        resized = resize(
            mask,
            results['scale'],
            interpolation=self.interpolation,
            backend=self.backend)
        results['gt_seg_map'] = resized.astype(np.float32) / scale


@TRANSFORMS.register_module()
class PackPolypInputs(PackSegInputs):
    """``PackSegInputs`` that keeps a soft (floating-point) mask as float32.

    mmseg's ``PackSegInputs`` casts ``gt_seg_map`` to int64, which would
    turn every soft value below 1 into 0. Integer masks are packed as by
    ``PackSegInputs``.

    Args:
        meta_keys: As ``PackSegInputs``.
    """

    def transform(self, results: dict) -> dict:
        """Pack the inputs and the data sample; see ``PackSegInputs``."""
        gt = results.get('gt_seg_map', None)
        if gt is None or not np.issubdtype(gt.dtype, np.floating):
            return super().transform(results)
        if gt.ndim != 2:
            raise ValueError('PackPolypInputs: a soft mask must be H x W, '
                             f'got shape {gt.shape}')
        packed = super().transform(
            {k: v for k, v in results.items() if k != 'gt_seg_map'})
        packed['data_samples'].gt_sem_seg = PixelData(
            data=torch.from_numpy(np.ascontiguousarray(
                gt[None], dtype=np.float32)))
        return packed

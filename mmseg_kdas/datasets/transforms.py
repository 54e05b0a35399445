"""Loading of polyp masks: any image format, binarised to {0, 1}.

Polyp masks are stored as 0 / 255 images (PNG, JPEG, TIFF, sometimes RGB),
and JPEG masks are noisy near 0 and 255. Loaded as they are, every polyp
pixel would be 255, MMSeg's ignore index. :class:`LoadPolypAnnotations`
thresholds them at half of their range instead, after checking that the
mask is binary: a label map with more than two values (``0 / 1 / 2``, as
the exports of multi-class annotation tools have) is an error naming the
file and its values, never a mask silently made background
(:func:`check_binary_mask`).
"""
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = ['binarize_mask', 'check_binary_mask', 'LoadPolypAnnotations']


#: The band of a mask's range (as fractions) where no class of a binary
#: mask lies: JPEG noise and soft edges put single pixels there, the
#: classes of a label map put whole areas.
MID_BAND = (0.1, 0.9)


def _value_summary(mask: np.ndarray, limit: int = 6) -> str:
    """The most frequent values (colours) of a mask and their shares."""
    if mask.ndim == 3:
        pixels = mask.reshape(-1, mask.shape[2])
        values, counts = np.unique(pixels, axis=0, return_counts=True)
    else:
        pixels = mask.reshape(-1)
        flat, counts = np.unique(pixels, return_counts=True)
        values = flat[:, None]
    top = sorted(np.argsort(counts)[::-1][:limit])

    def fmt(v: np.ndarray) -> str:
        items = [f'{x:g}' for x in v.tolist()]
        return items[0] if len(items) == 1 else f'({", ".join(items)})'

    shown = ', '.join(f'{fmt(values[i])} ({counts[i] / len(pixels):.1%})'
                      for i in top)
    more = f' ({len(values)} distinct values)' if len(values) > limit \
        else ''
    return shown + more


def _interior_count(values: np.ndarray, band: np.ndarray) -> int:
    """Pixels of ``band`` whose 8 neighbours have the same value as they."""
    ys, xs = np.nonzero(band[1:-1, 1:-1])
    ys, xs = ys + 1, xs + 1
    same = np.ones(len(ys), bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                same &= values[ys + dy, xs + dx] == values[ys, xs]
    return int(same.sum())


def check_binary_mask(values: np.ndarray,
                      full_range: float,
                      mask: np.ndarray,
                      name: str = 'mask') -> None:
    """Refuse a mask that is a label map with more than two values.

    A binary mask holds two classes at the two ends of its range (0 / 255,
    0 / 1, 0 / 65535); JPEG noise and soft (resized, anti-aliased) edges
    add single pixels of other values near the ends or along the edges.
    Two things no such mask has, and a label map of three or more values
    has:

    - non-zero values that all lie at or below half the range (``0 / 1 /
      2``, a dark palette colour): binarised at half the range, every
      pixel would be background;
    - a value between 10 % and 90 % of the range (:data:`MID_BAND`) that
      fills an area, i.e. pixels whose 8 neighbours all have their value
      (``0 / 128 / 255``): JPEG noise and soft edges never do (checked on
      the 1,930 masks of the PraNet training and test sets, stored as they
      are, as JPEG at quality 95 to 10, and resized up and down bilinearly).

    Args:
        values: The mask as one value per pixel, ``(H, W)`` (colour masks
            averaged over their channels).
        full_range: The value of a polyp pixel (1, 255, 65535 ...).
        mask: The mask as loaded, for the message.
        name: Name of the mask (its file) in error messages.

    Raises:
        ValueError: The mask is not binary; the message names the file
            and the mask's most frequent values with their shares.
    """
    expected = ('expected a binary mask: 0 / 255 (noise near 0 and 255, '
                'as JPEG masks have, is fine) or 0 / 1. For a label map, '
                'write one binary mask per class, e.g. (labels == 1) * 255')
    peak = values.max()
    if 1 < peak <= full_range / 2:
        raise ValueError(
            f'{name} is not a binary mask: its values are '
            f'{_value_summary(mask)}, all at or below half its range '
            f'({full_range / 2:g}), so every pixel would be background; '
            f'a label map with more than two values? {expected}')
    lo, hi = MID_BAND
    band = (values > lo * full_range) & (values < hi * full_range)
    if band.any() and min(values.shape) > 2:
        interior = _interior_count(values, band)
        if interior:
            raise ValueError(
                f'{name} is not a binary mask: values between '
                f'{lo * full_range:g} and {hi * full_range:g} fill areas '
                f'of it ({interior} pixels amid 8 of their value), as the '
                'classes of a label map do; its values are '
                f'{_value_summary(mask)}. {expected}')


def binarize_mask(mask: np.ndarray, name: str = 'mask') -> np.ndarray:
    """Binarise a mask image at half of its range.

    The range is 1 for boolean masks and masks whose values are all 0 or 1
    (label maps), the dtype's maximum for other integer masks (255 for
    uint8, 65535 for uint16) and 255 for float masks with values above 1.
    Colour masks are averaged over their colour channels (an alpha channel
    is dropped). A pixel is polyp when its value is above half the range,
    e.g. ``>= 128`` for uint8 masks, as the evaluation toolboxes of the field
    do (``gt / 255 > 0.5``). A mask that is not binary (a label map of
    three or more values, see :func:`check_binary_mask`) is an error.

    Args:
        mask: Mask image, ``(H, W)`` or ``(H, W, C)``.
        name: Name of the mask (its file) in error messages.

    Returns:
        uint8 array ``(H, W)`` with values 0 (background) and 1 (polyp).

    Raises:
        ValueError: For masks that are not 2-D or 3-D, have negative or
            non-finite values, float values above 255, or are not binary
            (the message names the mask's values).
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim not in (2, 3) or mask.size == 0:
        raise ValueError(f'{name}: expected an (H, W) or (H, W, C) mask, got '
                         f'shape {mask.shape}')
    if mask.dtype == bool:
        binary = mask if mask.ndim == 2 else mask.any(axis=2)
        return binary.astype(np.uint8)
    if mask.ndim == 3:
        channels = mask.shape[2]
        if channels == 4:
            mask = mask[..., :3]
        values = mask.astype(np.float64).mean(axis=2)
    else:
        values = mask.astype(np.float64)
    if not np.isfinite(values).all() or values.min() < 0:
        raise ValueError(f'{name}: mask has negative or non-finite values')
    peak = values.max()
    if peak <= 1:
        full_range = 1.0
    elif np.issubdtype(mask.dtype, np.integer):
        full_range = float(np.iinfo(mask.dtype).max)
    elif peak <= 255:
        full_range = 255.0
    else:
        raise ValueError(f'{name}: float mask with values up to {peak}, '
                         'expected [0, 1] or [0, 255]')
    check_binary_mask(values, full_range, mask, name)
    return (values > full_range / 2).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadPolypAnnotations(BaseTransform):
    """Load a polyp mask and binarise it to {0, 1} (``gt_seg_map``).

    Use it in place of mmseg's ``LoadAnnotations``, which keeps 0 / 255
    masks as they are (255 being the ignore index). The mask must have the
    size of the original image (``ori_shape``, set by
    ``LoadImageFromFile``): put this transform anywhere after the image
    loading, before or after ``Resize`` (after it, the ground truth keeps the
    original size, as evaluation wants).

    Required Keys:

    - seg_map_path (a sample without one, or with None, as in inference
      with ``mmseg.apis.inference_model`` or ``MMSegInferencer``, has no
      ground truth and passes through unchanged)
    - ori_shape (optional, for the size check)

    Added Keys:

    - gt_seg_map (np.uint8, values 0 and 1)
    - seg_fields

    Args:
        imdecode_backend: Decoding backend of ``mmcv.imfrombytes``. The
            default, ``'cv2'``, returns the stored intensities (palette PNGs
            as colours, 16-bit files unchanged).
        check_size: Raise when the mask and the image sizes differ.
        backend_args: Arguments of the file backend (mmengine.fileio).

    Raises (from :meth:`transform`):
        OSError: The mask file cannot be read or decoded.
        ValueError: Mask and image sizes differ, or the mask is not a valid
            mask image; the message names the files.
    """

    def __init__(self,
                 imdecode_backend: str = 'cv2',
                 check_size: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        self.imdecode_backend = imdecode_backend
        self.check_size = check_size
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        """Load, binarise and check the mask of one sample.

        Args:
            results: Result dict with ``seg_map_path``.

        Returns:
            The result dict with ``gt_seg_map`` added.
        """
        path = results.get('seg_map_path')
        if path is None:
            return results
        try:
            mask_bytes = fileio.get(path, backend_args=self.backend_args)
            mask = mmcv.imfrombytes(
                mask_bytes, flag='unchanged', backend=self.imdecode_backend)
        except Exception as e:  # decoders raise many exception types
            raise OSError(f'cannot read mask file {path}: '
                          f'{type(e).__name__}: {e}') from e
        if mask is None:
            raise OSError(f'cannot decode mask file {path} (not an image or '
                          'truncated)')
        gt = binarize_mask(mask, name=f'mask file {path}')
        ori_shape = results.get('ori_shape')
        if self.check_size and ori_shape is not None and \
                gt.shape != tuple(ori_shape[:2]):
            raise ValueError(
                f'mask file {path} is {gt.shape[0]}x{gt.shape[1]} (HxW) but '
                f'its image {results.get("img_path")} is '
                f'{ori_shape[0]}x{ori_shape[1]}')
        results['gt_seg_map'] = gt
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f"imdecode_backend='{self.imdecode_backend}', "
                f'check_size={self.check_size}, '
                f'backend_args={self.backend_args})')

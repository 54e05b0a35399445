"""Per-image measures of the polyp segmentation field, as pure functions.

Polyp papers (PraNet, UACANet, Polyp-PVT, KDAS) evaluate each test image on
its own and average over the images of a test set. The reference is the
MATLAB evaluation toolbox shipped with PraNet (``EvaluateTool/main.m``),
ported to Python by UACANet (``utils/eval_functions.py``) and, for the
S-, E- and weighted F-measures, by PySODMetrics. The functions below follow
the MATLAB code where the ports disagree (sample standard deviation in the
object score, 1-based centroid with MATLAB rounding, zero padding in the
Gaussian filter of the weighted F-measure), and compute every 256-threshold
curve from one cumulative histogram instead of 256 passes.

Conventions of the toolbox kept here on purpose:

- thresholds are ``linspace(1, 0, 256)``; a pixel is positive when
  ``pred >= threshold`` for Dice and IoU, and when ``pred > threshold`` for
  the E-measure (MATLAB ``main.m``; the UACANet port uses ``>=`` there too).
  The thresholds include 0 (every pixel positive for Dice) and 1 (no pixel
  positive for the E-measure), so even a perfect binary prediction has a
  mean Dice, mean IoU and mean E-measure slightly below 1;
- Dice and IoU are 0 whenever the intersection is empty, including when both
  the ground truth and the prediction are empty;
- the E-measure sums the enhanced alignment matrix and divides by
  ``H * W - 1``, so a perfect prediction scores ``H * W / (H * W - 1)``;
- with an empty ground truth the S-measure is ``1 - mean(pred)``, the
  weighted F-measure is 0 (as PySODMetrics; MATLAB's ``bwdist`` has no
  foreground to measure from) and the E-measure rewards predicted background.

References:
    Fan et al., "Structure-measure: A New Way to Evaluate Foreground Maps",
    ICCV 2017. Fan et al., "Enhanced-alignment Measure for Binary Foreground
    Map Evaluation", IJCAI 2018. Margolin et al., "How to Evaluate Foreground
    Maps?", CVPR 2014. Fan et al., "PraNet: Parallel Reverse Attention
    Network for Polyp Segmentation", MICCAI 2020.
"""
from typing import Dict, Tuple, Union

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    'TOOLBOX_THRESHOLDS', 'check_pred_gt', 'threshold_counts',
    'dice_iou_from_counts', 'emeasure_from_counts', 'structure_measure',
    'weighted_fmeasure', 'mean_absolute_error', 'prepare_prediction',
    'polyp_image_measures', 'SCALAR_MEASURES'
]

#: The 256 thresholds of the PraNet / UACANet toolbox, in its order.
TOOLBOX_THRESHOLDS = np.linspace(1, 0, 256)

#: Names of the scalar per-image measures of :func:`polyp_image_measures`.
SCALAR_MEASURES = ('Dice', 'IoU', 'mDice', 'mIoU', 'Sm', 'wFm', 'mEm', 'MAE')

_EPS = np.finfo(np.float64).eps


def check_pred_gt(pred: np.ndarray,
                  gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Validate a prediction / ground-truth pair and convert their types.

    Args:
        pred: Foreground probability map, ``(H, W)``, values in [0, 1].
        gt: Binary ground truth, ``(H, W)``, bool or values in {0, 1}.

    Returns:
        ``(pred, gt)`` as float64 and bool arrays.

    Raises:
        ValueError: On a shape mismatch, a prediction outside [0, 1] (or not
            finite) or a ground truth with values other than 0 and 1.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError('pred and gt must be 2-D arrays of the same shape, '
                         f'got {pred.shape} and {gt.shape}')
    if pred.size == 0:
        raise ValueError('pred and gt are empty')
    pred = pred.astype(np.float64, copy=False)
    if not np.isfinite(pred).all():
        raise ValueError('pred has NaN or infinite values')
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError('pred must be a probability map in [0, 1], got '
                         f'values in [{pred.min()}, {pred.max()}]')
    if gt.dtype != bool:
        values = np.unique(gt)
        if not np.isin(values, (0, 1)).all():
            raise ValueError('gt must be binary (0 / 1), got values '
                             f'{values[:10].tolist()}')
        gt = gt.astype(bool)
    return pred, gt


def _count_reached(values: np.ndarray, ascending: np.ndarray,
                   strict: bool) -> np.ndarray:
    """Number of thresholds each value reaches (``>=``, or ``>`` if strict).

    Equal to ``np.searchsorted(ascending, values, side)``. On an (almost)
    evenly spaced grid of thresholds such as the toolbox's, a bin guess from
    the value and three exact comparisons with the neighbouring thresholds
    replace the binary search (five times faster).
    """
    k = len(ascending)
    lo, hi = ascending[0], ascending[-1]
    step = (hi - lo) / (k - 1) if k > 1 else 0.0
    uniform = step > 0 and np.abs(ascending - np.linspace(lo, hi, k)).max(
    ) < step / 4
    if not uniform:
        return np.searchsorted(
            ascending, values, side='left' if strict else 'right')
    guess = np.clip(((values - lo) / step).astype(np.intp), 0, k - 1)
    # thresholds padded so that the window guess - 1 .. guess + 1 exists;
    # everything below the window is reached, nothing above it
    padded = np.concatenate([[-np.inf], ascending, [np.inf]])
    reached = guess - 1
    for offset in (0, 1, 2):
        neighbour = padded[guess + offset]
        reached += (neighbour < values) if strict else (neighbour <= values)
    return reached


def threshold_counts(pred: np.ndarray,
                     gt: np.ndarray,
                     thresholds: np.ndarray = TOOLBOX_THRESHOLDS,
                     strict: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Count positives and true positives of ``pred >= t`` for every ``t``.

    One pass instead of one per threshold: each pixel is assigned the number
    of thresholds it reaches (exact floating-point comparisons), and a
    reversed cumulative sum of the histogram of these numbers gives, for
    every threshold, how many pixels reach it.

    Args:
        pred: Probability map, float ``(H, W)``.
        gt: Binary ground truth, bool ``(H, W)``.
        thresholds: 1-D array of thresholds, any order.
        strict: Count ``pred > t`` instead of ``pred >= t``.

    Returns:
        ``(num_pred, num_tp)``: int64 arrays aligned with ``thresholds``, the
        number of positive pixels at each threshold and of those in ``gt``.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(thresholds, kind='stable')
    k = len(thresholds)
    idx = _count_reached(
        np.asarray(pred, np.float64).ravel(), thresholds[order], strict)
    hist_all = np.bincount(idx, minlength=k + 1)[1:]
    hist_fg = np.bincount(idx[gt.ravel()], minlength=k + 1)[1:]
    reach_all = np.cumsum(hist_all[::-1])[::-1]
    reach_fg = np.cumsum(hist_fg[::-1])[::-1]
    num_pred = np.empty(k, np.int64)
    num_tp = np.empty(k, np.int64)
    num_pred[order] = reach_all
    num_tp[order] = reach_fg
    return num_pred, num_tp


def dice_iou_from_counts(
        num_pred: Union[int, np.ndarray], num_tp: Union[int, np.ndarray],
        num_gt: int) -> Tuple[np.ndarray, np.ndarray]:
    """Dice and IoU from counts, 0 where the intersection is empty.

    Args:
        num_pred: Number of predicted positive pixels (per threshold).
        num_tp: Number of true positive pixels (per threshold).
        num_gt: Number of ground-truth positive pixels.

    Returns:
        ``(dice, iou)`` as float64 arrays shaped like ``num_tp``.
    """
    num_pred = np.asarray(num_pred, np.float64)
    num_tp = np.asarray(num_tp, np.float64)
    hit = num_tp > 0
    dice = np.where(hit, 2 * num_tp / np.maximum(num_gt + num_pred, 1), 0.0)
    iou = np.where(hit,
                   num_tp / np.maximum(num_gt + num_pred - num_tp, 1), 0.0)
    return dice, iou


def emeasure_from_counts(num_pred: Union[int, np.ndarray],
                         num_tp: Union[int, np.ndarray], num_gt: int,
                         num_pixels: int) -> np.ndarray:
    """E-measure of binarised predictions, from counts (closed form).

    For a binary prediction and a binary ground truth the enhanced alignment
    matrix takes one value per (prediction, ground truth) pixel type, so its
    sum is a weighted sum of four counts.

    Args:
        num_pred: Number of predicted positive pixels (per threshold).
        num_tp: Number of true positive pixels (per threshold).
        num_gt: Number of ground-truth positive pixels.
        num_pixels: Number of pixels ``H * W``.

    Returns:
        float64 array shaped like ``num_tp``: the E-measure per threshold.
    """
    num_pred = np.asarray(num_pred, np.float64)
    num_tp = np.asarray(num_tp, np.float64)
    n = float(num_pixels)
    if num_gt == 0:
        total = n - num_pred
    elif num_gt == num_pixels:
        total = num_pred
    else:
        mu_pred = num_pred / n
        mu_gt = num_gt / n
        counts = {
            (1, 1): num_tp,
            (1, 0): num_pred - num_tp,
            (0, 1): num_gt - num_tp,
            (0, 0): n - num_gt - num_pred + num_tp,
        }
        total = np.zeros_like(num_tp)
        for (p, g), count in counts.items():
            a_pred = p - mu_pred
            a_gt = g - mu_gt
            align = 2 * a_gt * a_pred / (a_gt**2 + a_pred**2 + _EPS)
            total = total + count * (align + 1)**2 / 4
    return np.asarray(total / (n - 1 + _EPS), np.float64)


def _object_score(values: np.ndarray) -> float:
    """Object-level similarity of one region (MATLAB ``Object``)."""
    if values.size == 0:
        return 0.0
    mean = values.mean()
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return float(2.0 * mean / (mean**2 + 1.0 + std + _EPS))


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity of one quadrant (MATLAB ``ssim`` of S-measure)."""
    n = pred.size
    x = pred.mean()
    y = gt.mean()
    sigma_x2 = ((pred - x)**2).sum() / (n - 1 + _EPS)
    sigma_y2 = ((gt - y)**2).sum() / (n - 1 + _EPS)
    sigma_xy = ((pred - x) * (gt - y)).sum() / (n - 1 + _EPS)
    alpha = 4 * x * y * sigma_xy
    beta = (x**2 + y**2) * (sigma_x2 + sigma_y2)
    if alpha != 0:
        return float(alpha / (beta + _EPS))
    return 1.0 if beta == 0 else 0.0


def _matlab_round(x: float) -> int:
    """MATLAB's ``round`` of a non-negative number (halves go up)."""
    return int(np.floor(x + 0.5))


def structure_measure(pred: np.ndarray,
                      gt: np.ndarray,
                      alpha: float = 0.5) -> float:
    """S-measure: object- and region-aware structural similarity.

    Args:
        pred: Probability map, float ``(H, W)`` in [0, 1].
        gt: Binary ground truth, bool ``(H, W)``.
        alpha: Weight of the object score (the field uses 0.5).

    Returns:
        The S-measure in [0, 1].
    """
    y = gt.mean()
    if y == 0:
        return float(1.0 - pred.mean())
    if y == 1:
        return float(pred.mean())

    object_score = (
        y * _object_score(pred[gt]) + (1 - y) * _object_score(1 - pred[~gt]))

    # Region score: split at the foreground centroid (1-based, as MATLAB's
    # ``GT(1:Y, 1:X)``) into four quadrants weighted by their areas.
    h, w = gt.shape
    rows, cols = np.nonzero(gt)
    cx = _matlab_round(cols.mean() + 1)
    cy = _matlab_round(rows.mean() + 1)
    gtf = gt.astype(np.float64)
    region_score = 0.0
    for r0, r1, c0, c1 in ((0, cy, 0, cx), (0, cy, cx, w), (cy, h, 0, cx),
                           (cy, h, cx, w)):
        if r1 > r0 and c1 > c0:  # empty quadrants have weight 0
            weight = (r1 - r0) * (c1 - c0) / (h * w)
            region_score += weight * _ssim(pred[r0:r1, c0:c1],
                                           gtf[r0:r1, c0:c1])
    return float(max(alpha * object_score + (1 - alpha) * region_score, 0.0))


def _gaussian_kernel(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)``."""
    r = (size - 1) / 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    k = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    k[k < _EPS * k.max()] = 0
    return k / k.sum()


def weighted_fmeasure(pred: np.ndarray,
                      gt: np.ndarray,
                      beta2: float = 1.0) -> float:
    """Weighted F-measure (Margolin et al.), MATLAB ``original_WFb``.

    Args:
        pred: Probability map, float ``(H, W)`` in [0, 1].
        gt: Binary ground truth, bool ``(H, W)``.
        beta2: ``beta ** 2``; the polyp field uses 1.

    Returns:
        The weighted F-measure in [0, 1]; 0 for an empty ground truth.
    """
    if not gt.any():
        return 0.0
    err = np.abs(pred - gt)
    # distance to, and index of, the nearest foreground pixel
    dist, (iy, ix) = ndimage.distance_transform_edt(
        ~gt, return_indices=True)
    # outside the object, take the error of its nearest object pixel
    err_t = err[iy, ix]
    err_t[gt] = err[gt]
    # MATLAB's imfilter: correlation with zero padding
    err_a = cv2.filter2D(
        err_t, -1, _gaussian_kernel(7, 5.0), borderType=cv2.BORDER_CONSTANT)
    min_err = np.where(gt & (err_a < err), err_a, err)
    importance = np.where(gt, 1.0, 2.0 - np.exp(np.log(0.5) / 5 * dist))
    err_w = min_err * importance
    tp_w = gt.sum() - err_w[gt].sum()
    fp_w = err_w[~gt].sum()
    recall = 1 - err_w[gt].mean()
    precision = tp_w / (_EPS + tp_w + fp_w)
    return float((1 + beta2) * recall * precision /
                 (_EPS + recall + beta2 * precision))


def mean_absolute_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the probability map and the mask.

    Args:
        pred: Probability map, float ``(H, W)`` in [0, 1].
        gt: Binary ground truth, bool ``(H, W)``.

    Returns:
        The MAE in [0, 1].
    """
    return float(np.abs(pred - gt).mean())


def prepare_prediction(prob: np.ndarray,
                       min_max_normalize: bool = True,
                       quantize: bool = True) -> np.ndarray:
    """Turn a probability map into the map the reference toolbox evaluates.

    The reference test scripts (PraNet, Polyp-PVT, KDAS) min-max normalise
    the sigmoid map, ``(p - min) / (max - min + 1e-8)``, and save it as an
    8-bit PNG (``cv2.imwrite`` rounds ``255 * p`` to the nearest integer);
    the MATLAB toolbox reads it back as ``k / 255`` and min-max normalises it
    again (a no-op on such maps).

    Args:
        prob: Probability map ``(H, W)`` in [0, 1].
        min_max_normalize: Stretch the map to [0, 1] (a constant map becomes
            0 everywhere, as in the reference).
        quantize: Round to multiples of 1 / 255.

    Returns:
        float64 map ``(H, W)`` in [0, 1].
    """
    pred = np.asarray(prob, dtype=np.float64)
    if min_max_normalize:
        pred = (pred - pred.min()) / (pred.max() - pred.min() + 1e-8)
    if quantize:
        pred = np.rint(pred * 255) / 255
    return pred


def polyp_image_measures(
    pred: np.ndarray,
    gt: np.ndarray,
    threshold: float = 0.5,
    thresholds: np.ndarray = TOOLBOX_THRESHOLDS
) -> Dict[str, Union[float, np.ndarray]]:
    """Every measure of the field for one image.

    The map is evaluated as given; the reference pipelines min-max normalise
    it and store it as an 8-bit PNG first (see :func:`prepare_prediction`).

    Args:
        pred: Foreground probability map ``(H, W)`` in [0, 1], at the
            ground-truth size.
        gt: Binary ground truth ``(H, W)`` (bool or 0 / 1).
        threshold: Threshold of ``Dice`` and ``IoU`` (``pred >= threshold``).
        thresholds: Thresholds of the curves behind the mean measures.

    Returns:
        dict with the floats ``Dice``, ``IoU`` (at ``threshold``), ``mDice``,
        ``mIoU``, ``mEm`` (means over ``thresholds``), ``Sm`` (S-measure,
        alpha 0.5), ``wFm`` (weighted F-measure, beta^2 = 1) and ``MAE``,
        and the array ``Em_curve`` (E-measure per threshold, for the
        max E-measure of a test set).
    """
    pred, gt = check_pred_gt(pred, gt)
    num_gt = int(gt.sum())
    num_pixels = gt.size

    binary = pred >= threshold
    dice, iou = dice_iou_from_counts(
        int(binary.sum()), int((binary & gt).sum()), num_gt)

    num_pred, num_tp = threshold_counts(pred, gt, thresholds)
    dice_curve, iou_curve = dice_iou_from_counts(num_pred, num_tp, num_gt)
    # MATLAB main.m binarises with ``>`` for the E-measure (``>=`` in
    # Fmeasure_calu); the UACANet port uses ``>=`` for both.
    num_pred, num_tp = threshold_counts(pred, gt, thresholds, strict=True)
    em_curve = emeasure_from_counts(num_pred, num_tp, num_gt, num_pixels)

    return dict(
        Dice=float(dice),
        IoU=float(iou),
        mDice=float(dice_curve.mean()),
        mIoU=float(iou_curve.mean()),
        Sm=structure_measure(pred, gt),
        wFm=weighted_fmeasure(pred, gt),
        mEm=float(em_curve.mean()),
        MAE=mean_absolute_error(pred, gt),
        Em_curve=em_curve)

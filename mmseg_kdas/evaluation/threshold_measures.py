"""Measures of a map binarised at many thresholds, from pixel counts.

Dice, IoU and the E-measure of ``pred >= t`` (or ``pred > t``) for every
threshold ``t`` of the polyp toolbox (:data:`TOOLBOX_THRESHOLDS`): each is
a closed form of four counts (predicted positives, true positives,
ground-truth positives, pixels), and every 256-threshold curve comes from
one cumulative histogram instead of 256 passes over the image. The
conventions these measures keep on purpose are listed in
:mod:`~mmseg_kdas.evaluation.polyp_measures`.
"""
from typing import Tuple, Union

import numpy as np

__all__ = [
    'TOOLBOX_THRESHOLDS', 'threshold_counts', 'dice_iou_from_counts',
    'emeasure_from_counts'
]

#: The 256 thresholds of the PraNet / UACANet toolbox, in its order.
TOOLBOX_THRESHOLDS = np.linspace(1, 0, 256)

_EPS = np.finfo(np.float64).eps


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

"""Per-image measures of the polyp segmentation field, as pure functions.

Polyp papers (PraNet, UACANet, Polyp-PVT, KDAS) evaluate each test image on
its own and average over the images of a test set. Two flavours of the
evaluation code are in use, and every function that they disagree on takes
``protocol``:

- ``'matlab'`` (the default): the MATLAB toolbox shipped with PraNet
  (``EvaluateTool/main.m``); the numbers of PraNet and Polyp-PVT. These
  functions agree with it (run under Octave) to 1e-5.
- ``'python-port'``: its Python port, ``utils/eval_functions.py`` and
  ``run/Eval.py`` of UACANet, copied unchanged into the KDAS repository
  (``utils/eval_functions.py``, ``eval.py``); the numbers of UACANet and KDAS.

What the port computes differently (nothing else differs: thresholds, Dice,
IoU, MAE, the region similarity, the E-measure formula, the weights of the
weighted F-measure and the per-set averaging are the same):

1. S-measure, object score: the population standard deviation
   (``np.std``, ddof 0) where MATLAB's ``std`` is the sample one (ddof 1);
2. S-measure, region score: the ground truth is split at its centroid
   rounded with numpy (0-based, halves to even) instead of MATLAB's 1-based
   centroid rounded half up, i.e. one row / column earlier (two earlier
   when the 0-based centroid ends in .5 and rounds down to an even number);
3. mean / max E-measure: a pixel is positive when ``pred >= threshold``
   where MATLAB's ``main.m`` uses ``pred > threshold``; the curves differ at
   the pixels lying exactly on a threshold: 0 and 1, and 150 more of the 256
   levels ``k / 255`` of an 8-bit map (the others miss their threshold by a
   rounding error);
4. weighted F-measure: the 7x7 Gaussian (sigma 5) filter pads the image by
   repeating its border (``scipy.ndimage.convolve(mode='nearest')``), where
   MATLAB's ``imfilter`` pads with zeros; the two differ within three pixels
   of the border, for objects that touch it.

Where the reference code returns NaN, both flavours return the value of the
formula without the degenerate term: an empty quadrant of the region score
has weight 0 (it makes the port's S-measure NaN when the centroid rounds to
row or column 0, and MATLAB's when it rounds to the last one), and the
weighted F-measure of an empty ground truth is 0. Both read the saved 8-bit
maps as ``k / 255`` (MATLAB min-max normalises them again, a no-op on the
maps the reference test scripts save, see :func:`prepare_prediction`) and
the ground truth as ``mask / 255 > 0.5``.

Conventions of both flavours kept here on purpose:

- thresholds are ``linspace(1, 0, 256)``; a pixel is positive when
  ``pred >= threshold`` for Dice and IoU. The thresholds include 0 (every
  pixel positive) and 1, so even a perfect binary prediction has a mean
  Dice, mean IoU and mean E-measure slightly below 1;
- Dice and IoU are 0 whenever the intersection is empty, including when both
  the ground truth and the prediction are empty;
- the E-measure sums the enhanced alignment matrix and divides by
  ``H * W - 1``, so a perfect prediction scores ``H * W / (H * W - 1)``;
- with an empty ground truth the S-measure is ``1 - mean(pred)``, the
  weighted F-measure is 0 (as PySODMetrics; MATLAB's ``bwdist`` has no
  foreground to measure from) and the E-measure rewards predicted background;
- the Gaussian of the weighted F-measure is MATLAB's ``fspecial`` kernel,
  and the nearest foreground pixel is scipy's (in both flavours).

The threshold curves (Dice, IoU, E-measure) are computed from pixel counts
in :mod:`~mmseg_kdas.evaluation.threshold_measures`: every 256-threshold
curve comes from one cumulative histogram instead of 256 passes over the
image.

References:
    Fan et al., "Structure-measure: A New Way to Evaluate Foreground Maps",
    ICCV 2017. Fan et al., "Enhanced-alignment Measure for Binary Foreground
    Map Evaluation", IJCAI 2018. Margolin et al., "How to Evaluate Foreground
    Maps?", CVPR 2014. Fan et al., "PraNet: Parallel Reverse Attention
    Network for Polyp Segmentation", MICCAI 2020. Kim et al., "UACANet:
    Uncertainty Augmented Context Attention for Polyp Segmentation", ACM MM
    2021 (https://github.com/plemeri/UACANet).
"""
from typing import Dict, Tuple, Union

import cv2
import numpy as np
from scipy import ndimage

from .threshold_measures import (TOOLBOX_THRESHOLDS, dice_iou_from_counts,
                                 emeasure_from_counts, threshold_counts)

__all__ = [
    'PROTOCOLS', 'check_protocol', 'check_pred_gt', 'structure_measure',
    'weighted_fmeasure', 'mean_absolute_error', 'prepare_prediction',
    'polyp_image_measures', 'SCALAR_MEASURES'
]

#: The flavours of the evaluation code: the MATLAB toolbox (the default) and
#: its Python port (UACANet, KDAS); see the module docstring.
PROTOCOLS = ('matlab', 'python-port')

#: Names of the scalar per-image measures of :func:`polyp_image_measures`.
SCALAR_MEASURES = ('Dice', 'IoU', 'mDice', 'mIoU', 'Sm', 'wFm', 'mEm', 'MAE')

_EPS = np.finfo(np.float64).eps


def check_protocol(protocol: str) -> str:
    """Check that ``protocol`` is one of :data:`PROTOCOLS`.

    Args:
        protocol: ``'matlab'`` or ``'python-port'``.

    Returns:
        ``protocol``.

    Raises:
        ValueError: For any other value.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {PROTOCOLS}, got '
                         f'{protocol!r}')
    return protocol


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


def _object_score(values: np.ndarray, ddof: int) -> float:
    """Object-level similarity of one region (``Object`` of the toolbox).

    ``ddof`` is 1 for MATLAB's ``std``, 0 for the port's ``np.std``.
    """
    if values.size == 0:
        return 0.0
    mean = values.mean()
    std = values.std(ddof=ddof) if values.size > ddof else 0.0
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


def _centroid_split(gt: np.ndarray, protocol: str) -> Tuple[int, int]:
    """Row and column at which the region score splits the image.

    The top-left quadrant is ``[:row, :col]``. MATLAB rounds the 1-based
    centroid half up (``GT(1:Y, 1:X)``); the port rounds the 0-based one
    with numpy, halves to even (``gt[:x, :y]``).
    """
    rows, cols = np.nonzero(gt)
    if protocol == 'matlab':
        return _matlab_round(rows.mean() + 1), _matlab_round(cols.mean() + 1)
    return int(np.rint(rows.mean())), int(np.rint(cols.mean()))


def structure_measure(pred: np.ndarray,
                      gt: np.ndarray,
                      alpha: float = 0.5,
                      protocol: str = 'matlab') -> float:
    """S-measure: object- and region-aware structural similarity.

    Args:
        pred: Probability map, float ``(H, W)`` in [0, 1].
        gt: Binary ground truth, bool ``(H, W)``.
        alpha: Weight of the object score (the field uses 0.5).
        protocol: ``'matlab'``: sample standard deviation in the object
            score, 1-based centroid rounded half up; ``'python-port'``:
            population standard deviation, 0-based centroid rounded with
            numpy.

    Returns:
        The S-measure in [0, 1].
    """
    ddof = 1 if check_protocol(protocol) == 'matlab' else 0
    y = gt.mean()
    if y == 0:
        return float(1.0 - pred.mean())
    if y == 1:
        return float(pred.mean())

    object_score = (
        y * _object_score(pred[gt], ddof) +
        (1 - y) * _object_score(1 - pred[~gt], ddof))

    # Region score: split at the foreground centroid into four quadrants
    # weighted by their areas.
    h, w = gt.shape
    cy, cx = _centroid_split(gt, protocol)
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
                      beta2: float = 1.0,
                      protocol: str = 'matlab') -> float:
    """Weighted F-measure (Margolin et al.), ``original_WFb`` of the toolbox.

    Args:
        pred: Probability map, float ``(H, W)`` in [0, 1]; its error is
            ``|pred - gt|``.
        gt: Binary ground truth, bool ``(H, W)``; an error outside the
            object weighs more the farther it lies from the object.
        beta2: ``beta ** 2``; the polyp field uses 1.
        protocol: Padding of the Gaussian filter: zeros for ``'matlab'``
            (``imfilter``), the repeated border for ``'python-port'``
            (``scipy.ndimage.convolve(mode='nearest')``).

    Returns:
        The weighted F-measure in [0, 1]; 0 for an empty ground truth.
    """
    border = (
        cv2.BORDER_CONSTANT
        if check_protocol(protocol) == 'matlab' else cv2.BORDER_REPLICATE)
    if not gt.any():
        return 0.0
    err = np.abs(pred - gt)
    # distance to, and index of, the nearest foreground pixel
    dist, (iy, ix) = ndimage.distance_transform_edt(
        ~gt, return_indices=True)
    # outside the object, take the error of its nearest object pixel
    err_t = err[iy, ix]
    err_t[gt] = err[gt]
    # correlation (the kernel is symmetric: convolution alike)
    err_a = cv2.filter2D(
        err_t, -1, _gaussian_kernel(7, 5.0), borderType=border)
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
    thresholds: np.ndarray = TOOLBOX_THRESHOLDS,
    protocol: str = 'matlab'
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
        protocol: ``'matlab'`` (the toolbox) or ``'python-port'`` (UACANet
            and KDAS); they differ in ``Sm``, ``wFm`` and the E-measure
            (see the module docstring).

    Returns:
        dict with the floats ``Dice``, ``IoU`` (at ``threshold``), ``mDice``,
        ``mIoU``, ``mEm`` (means over ``thresholds``), ``Sm`` (S-measure,
        alpha 0.5), ``wFm`` (weighted F-measure, beta^2 = 1) and ``MAE``,
        and the array ``Em_curve`` (E-measure per threshold, for the
        max E-measure of a test set).
    """
    check_protocol(protocol)
    pred, gt = check_pred_gt(pred, gt)
    num_gt = int(gt.sum())
    num_pixels = gt.size

    binary = pred >= threshold
    dice, iou = dice_iou_from_counts(
        int(binary.sum()), int((binary & gt).sum()), num_gt)

    num_pred, num_tp = threshold_counts(pred, gt, thresholds)
    dice_curve, iou_curve = dice_iou_from_counts(num_pred, num_tp, num_gt)
    if protocol == 'matlab':
        # main.m binarises with ``>`` for the E-measure (``>=`` in
        # Fmeasure_calu); the port uses ``>=`` for both, as counted above.
        num_pred, num_tp = threshold_counts(
            pred, gt, thresholds, strict=True)
    em_curve = emeasure_from_counts(num_pred, num_tp, num_gt, num_pixels)

    return dict(
        Dice=float(dice),
        IoU=float(iou),
        mDice=float(dice_curve.mean()),
        mIoU=float(iou_curve.mean()),
        Sm=structure_measure(pred, gt, protocol=protocol),
        wFm=weighted_fmeasure(pred, gt, protocol=protocol),
        mEm=float(em_curve.mean()),
        MAE=mean_absolute_error(pred, gt),
        Em_curve=em_curve)

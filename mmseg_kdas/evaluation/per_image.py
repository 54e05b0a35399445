"""Per-image figures of a polyp prediction, and their summary by polyp size.

Pure functions on numpy arrays, for analyses that look below a test set's
mean (``tools/analysis_tools/polyp_sizes.py``): where a model does well
or badly, on small or large polyps, with or without a false alarm.

The Dice and IoU of a frame are :class:`~.PolypMetric`'s, from the same
functions it calls (:func:`~.polyp_measures.prepare_prediction`, then
:func:`~.polyp_measures.polyp_image_measures`): ``dice`` is its per-image
``mDice`` (the mean over the toolbox's 256 thresholds), whose mean over a
test set is the ``<set>/mDice`` that ``tools/test.py`` logs and the
study reports, and ``dice_at_threshold`` its ``Dice`` at ``threshold``
(``<set>/Dice``). The binary figures (``pred_share``,
``false_positive``, ``missed``) are of the map it evaluates (min-max
normalised and rounded to 8 bits by default) binarised as its ``Dice`` is:
``pred >= threshold``.
"""
from collections import OrderedDict
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import cv2
import numpy as np

from .polyp_measures import (check_pred_gt, polyp_image_measures,
                             prepare_prediction)
from .threshold_measures import TOOLBOX_THRESHOLDS

__all__ = [
    'SMALL_SHARE', 'SIZE_BINS', 'per_image_figures', 'size_bins',
    'summarise_by_size'
]

#: Default boundary between small and large polyps, as a share of the
#: frame's pixels. This project's choice, not a convention of the field:
#: no polyp paper we could find bins test frames by polyp size with a
#: stated boundary (PraNet, Polyp-PVT, UACANet and KDAS report set means
#: only), so it is an option of every function and tool that uses it.
SMALL_SHARE = 0.05

#: The labels of :func:`size_bins`, in report order.
SIZE_BINS = ('small', 'large', 'empty')


def _false_positive(binary: np.ndarray, gt: np.ndarray) -> bool:
    """Whether a connected component of ``binary`` (8-connectivity)
    misses ``gt`` entirely."""
    num, labels = cv2.connectedComponents(
        binary.astype(np.uint8), connectivity=8)
    if num <= 1:  # background only
        return False
    touching = np.unique(labels[gt])
    touching = touching[touching > 0]
    return len(touching) < num - 1


def per_image_figures(prob: np.ndarray,
                      gt: np.ndarray,
                      threshold: float = 0.5,
                      min_max_normalize: bool = True,
                      quantize: bool = True,
                      protocol: str = 'matlab') -> Dict[str, object]:
    """The figures of one frame, as :class:`~.PolypMetric` evaluates it.

    Args:
        prob: Foreground probability map ``(H, W)`` in [0, 1], already at
            the ground truth's size (the metric resizes it there first).
        gt: Binary ground truth ``(H, W)`` (bool or 0 / 1).
        threshold: The metric's ``threshold`` (``pred >= threshold``).
        min_max_normalize: The metric's ``min_max_normalize``.
        quantize: The metric's ``quantize``.
        protocol: The metric's ``protocol`` (no figure here depends on it).

    Returns:
        dict: ``dice`` and ``iou`` (the metric's per-image ``mDice`` and
        ``mIoU``, means over the 256 toolbox thresholds),
        ``dice_at_threshold`` and ``iou_at_threshold`` (its ``Dice`` and
        ``IoU``), ``gt_share`` (mask pixels / frame pixels),
        ``pred_share`` (predicted pixels / frame pixels),
        ``false_positive`` (a predicted connected component, 8-connected,
        overlaps no mask pixel) and ``missed`` (the mask is not empty and no
        predicted pixel lies on it).
    """
    pred = prepare_prediction(prob, min_max_normalize, quantize)
    measures = polyp_image_measures(pred, gt, threshold, TOOLBOX_THRESHOLDS,
                                    protocol)
    pred, gt = check_pred_gt(pred, gt)
    binary = pred >= threshold
    return dict(
        dice=measures['mDice'],
        iou=measures['mIoU'],
        dice_at_threshold=measures['Dice'],
        iou_at_threshold=measures['IoU'],
        gt_share=float(gt.mean()),
        pred_share=float(binary.mean()),
        false_positive=_false_positive(binary, gt),
        missed=bool(gt.any() and not (binary & gt).any()))


def size_bins(gt_share: Union[float, Iterable[float]],
              small: float = SMALL_SHARE) -> Union[str, List[str]]:
    """The size bin of a polyp from the share of the frame it covers.

    ``'small'`` when ``0 < gt_share < small``, ``'large'`` when
    ``gt_share >= small``, ``'empty'`` for a frame without a mask pixel.
    The default boundary, :data:`SMALL_SHARE` (5% of the frame), is this
    project's choice, not a convention of the polyp field (none with a
    stated boundary was found); pass another with ``small``.

    Args:
        gt_share: A frame's mask share, or a sequence of them.
        small: The boundary, a share in (0, 1).

    Returns:
        A label, or a list of labels for a sequence.
    """
    if not 0 < small < 1:
        raise ValueError(f'small must be a share in (0, 1), got {small}')

    def label(share: float) -> str:
        share = float(share)
        if not 0 <= share <= 1:
            raise ValueError(f'gt_share must be in [0, 1], got {share}')
        if share == 0:
            return 'empty'
        return 'small' if share < small else 'large'

    if np.ndim(gt_share) == 0:
        return label(gt_share)
    return [label(s) for s in gt_share]


def _flag(value) -> bool:
    """A flag of a row; rows read back from a CSV hold ``'True'``."""
    if isinstance(value, str):
        if value not in ('True', 'False'):
            raise ValueError(f'not a flag: {value!r}')
        return value == 'True'
    return bool(value)


def summarise_by_size(
        rows: Sequence[dict],
        small: float = SMALL_SHARE) -> 'OrderedDict[Tuple, Dict]':
    """Per model and size bin: frames, mean Dice, false-positive and
    missed rates.

    Args:
        rows: One dict per frame and model with ``model`` (any hashable
            label), ``dice``, ``false_positive``, ``missed`` and either
            ``bin`` or ``gt_share`` (binned with :func:`size_bins`).
        small: The boundary of :func:`size_bins`.

    Returns:
        ``{(model, bin): dict(frames, dice, false_positive_rate,
        missed_rate)}``, models in the order they first appear, bins in the
        order of :data:`SIZE_BINS`; only the pairs with frames.
    """
    groups: Dict[Tuple, List[dict]] = {}
    models: List = []
    for row in rows:
        label = row.get('bin') or size_bins(float(row['gt_share']), small)
        if label not in SIZE_BINS:
            raise ValueError(f'unknown size bin {label!r}')
        if row['model'] not in models:
            models.append(row['model'])
        groups.setdefault((row['model'], label), []).append(row)
    summary: 'OrderedDict[Tuple, Dict]' = OrderedDict()
    for model in models:
        for label in SIZE_BINS:
            group = groups.get((model, label))
            if not group:
                continue
            summary[(model, label)] = dict(
                frames=len(group),
                dice=float(np.mean([float(r['dice']) for r in group])),
                false_positive_rate=float(
                    np.mean([_flag(r['false_positive']) for r in group])),
                missed_rate=float(
                    np.mean([_flag(r['missed']) for r in group])))
    return summary

"""Accuracy of deployed models on a test set, as the study measures it.

Each model runs each frame of ``DATA_ROOT/TestDataset/<set>/images`` alone,
as ``tools/infer.py`` does (:func:`~.pipeline.preprocess`, the graph,
:func:`~.pipeline.postprocess` at the frame's own size), and the
probability map is scored against the binarised mask with the figures of
:class:`~mmseg_kdas.evaluation.PolypMetric`
(:func:`~mmseg_kdas.evaluation.per_image.per_image_figures`: the per-image
mean Dice over the toolbox's 256 thresholds, whose mean over the set is the
``<set>/mDice`` of ``tools/test.py``). Against the first model, per set:
the change of mean Dice, the largest probability change and the share of
mask pixels that differ. What it is for: checking a cheaper model (INT8,
another input size) against the float model on trained students.
"""
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from mmseg_kdas.datasets.transforms import binarize_mask
from mmseg_kdas.evaluation.per_image import per_image_figures
from .backends import Predictor
from .inference import list_images
from .pipeline import postprocess, preprocess, read_image

__all__ = ['test_set_pairs', 'set_accuracy']


def test_set_pairs(data_root: str, test_set: str) -> List[Tuple[str, str]]:
    """``(image, mask)`` files of ``DATA_ROOT/TestDataset/<set>``, paired by
    file stem.

    Raises:
        FileNotFoundError: If the set's folders or an image's mask are
            missing (naming them).
    """
    root = osp.join(data_root, 'TestDataset', test_set)
    images, masks = osp.join(root, 'images'), osp.join(root, 'masks')
    for folder in (images, masks):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'no folder {folder}')
    by_stem = {osp.splitext(osp.basename(p))[0]: p
               for p in list_images(masks)}  # ValueError when empty
    pairs = []
    for image in list_images(images):
        stem = osp.splitext(osp.basename(image))[0]
        if stem not in by_stem:
            raise FileNotFoundError(f'{image}: no mask {stem}.* in {masks}')
        pairs.append((image, by_stem[stem]))
    return pairs


def set_accuracy(predictors: Sequence[Tuple[str, Predictor]],
                 pairs: Sequence[Tuple[str, str]]) -> Dict[str, dict]:
    """Mean Dice of each model on the frames of ``pairs``, and how far each
    is from the first.

    Args:
        predictors: ``(name, predictor)``, each with its own ``spec`` (a
            binary model; input sizes may differ). The first is the
            reference.
        pairs: ``(image, mask)`` files (:func:`test_set_pairs`).

    Returns:
        dict: Per name ``mDice`` (mean of the per-image mean Dice),
        ``frames``; for every other model also ``delta_mDice`` (its
        ``mDice`` minus the first's), ``max_abs_prob_diff`` (largest
        probability change at any pixel of any frame) and
        ``mask_share_differ`` (mask pixels that differ / all pixels, the
        masks as :func:`~.pipeline.postprocess` thresholds them).
    """
    if not predictors:
        raise ValueError('no model to evaluate')
    names = [name for name, _ in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f'a model is named twice: {names}')
    if not pairs:
        raise ValueError('no frame to evaluate on')
    for name, predictor in predictors:
        if not predictor.spec.binary:
            raise ValueError(f'{name}: not a binary model; the polyp '
                             'figures need one foreground map')
    dice = {name: [] for name, _ in predictors}
    prob_diff = {name: 0.0 for name, _ in predictors[1:]}
    differ = {name: 0 for name, _ in predictors[1:]}
    pixels = 0
    for image_path, mask_path in pairs:
        image = read_image(image_path)
        # as LoadPolypAnnotations: unchanged (colour channels averaged)
        mask = cv2.imread(mask_path, cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise ValueError(f'{mask_path}: cannot be decoded as an image')
        gt = binarize_mask(mask, f'mask file {mask_path}').astype(bool)
        if gt.shape != image.shape[:2]:
            raise ValueError(f'{mask_path}: {gt.shape} is not the size of '
                             f'its image {image.shape[:2]}')
        reference = None
        for name, predictor in predictors:
            spec = predictor.spec
            output = predictor(preprocess([image], spec))[0]
            prob, binary = postprocess(output, gt.shape, spec)
            dice[name].append(per_image_figures(prob, gt)['dice'])
            if reference is None:
                reference = prob, binary
                continue
            prob_diff[name] = max(prob_diff[name],
                                  float(np.abs(prob - reference[0]).max()))
            differ[name] += int((binary != reference[1]).sum())
        pixels += gt.size
    first = predictors[0][0]
    out = {}
    for name, _ in predictors:
        out[name] = dict(mDice=float(np.mean(dice[name])),
                         frames=len(dice[name]))
        if name != first:
            out[name].update(
                delta_mDice=out[name]['mDice'] - float(np.mean(dice[first])),
                max_abs_prob_diff=prob_diff[name],
                mask_share_differ=differ[name] / max(pixels, 1))
    return out

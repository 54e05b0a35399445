"""Mean Dice of OpenVINO in bfloat16 against float32, on a test set.

    python tools/analysis_tools/compare_precision.py MODEL.onnx
        --images data/polyp/TestDataset/Kvasir/images
        [--masks data/polyp/TestDataset/Kvasir/masks] [--threads 2]
        [--max-change 0.002] [--out result.json]

The exported model (``tools/deployment/pytorch2onnx.py``) runs under
OpenVINO twice, in float32 and in bfloat16, on every image of the folder;
each probability map at the image's own size
(:func:`~mmseg_kdas.deployment.pipeline.postprocess`) is evaluated against
its mask as ``PolypMetric`` does by default (min-max normalised, 8 bits,
mean Dice over the toolbox's 256 thresholds; masks from ``--masks``, by
default ``images/../masks``, same stems). It prints both mean Dice values,
their change (bf16 - f32), the largest probability difference and the mask
pixels that differ, and exits with status 1 when the mean Dice falls by
more than ``--max-change`` (0.002: the bar for bfloat16 as OpenVINO's
default, ``OPENVINO_DEFAULT_PRECISION``). It needs a CPU on which OpenVINO
computes bfloat16 natively (AVX512-BF16 or AMX) and says so otherwise.
"""
import argparse
import json
import os.path as osp
import sys

import cv2
import numpy as np

from mmseg_kdas.datasets.transforms import binarize_mask
from mmseg_kdas.deployment.backends import (OpenVINOPredictor,
                                            openvino_native_bf16)
from mmseg_kdas.deployment.inference import IMAGE_EXTENSIONS, list_images
from mmseg_kdas.deployment.pipeline import postprocess, preprocess, read_image
from mmseg_kdas.evaluation import (dice_iou_from_counts, prepare_prediction,
                                   threshold_counts)
from mmseg_kdas.utils.atomic import atomic_write_text


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', help='.onnx file')
    parser.add_argument('--images', required=True, help='image folder')
    parser.add_argument(
        '--masks', default=None, help='mask folder (default: ../masks)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--max-change',
        type=float,
        default=0.002,
        help='largest accepted fall of the mean Dice')
    parser.add_argument('--out', default=None, help='write the result here')
    return parser.parse_args()


def mask_path(folder: str, image: str) -> str:
    """The mask of an image: same stem, any image extension."""
    stem = osp.splitext(osp.basename(image))[0]
    for ext in IMAGE_EXTENSIONS:
        path = osp.join(folder, stem + ext)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'{folder}: no mask for {image}')


def mean_dice(prob: np.ndarray, gt: np.ndarray) -> float:
    """``PolypMetric``'s mDice of one image (default protocol)."""
    pred = prepare_prediction(prob)
    num_pred, num_tp = threshold_counts(pred, gt)
    dice, _ = dice_iou_from_counts(num_pred, num_tp, int(gt.sum()))
    return float(dice.mean())


def main():
    args = parse_args()
    if not openvino_native_bf16():
        raise SystemExit(
            'error: this CPU has no native bfloat16 (OpenVINO reports no '
            'BF16 capability): the comparison needs a CPU with AVX512-BF16 '
            'or AMX')
    masks = args.masks or osp.join(osp.dirname(osp.abspath(args.images)),
                                   'masks')
    try:
        paths = list_images(args.images)
        pairs = [(p, mask_path(masks, p)) for p in paths]
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}')
    predictors = {
        precision: OpenVINOPredictor(args.model, args.threads, precision)
        for precision in ('f32', 'bf16')
    }
    spec = predictors['f32'].spec
    if not spec.binary:
        raise SystemExit(f'error: {args.model} is not a binary model')
    dice = {p: [] for p in predictors}
    diff, differ, pixels = 0.0, 0, 0
    for image_path, gt_path in pairs:
        image = read_image(image_path)
        gt_raw = cv2.imread(gt_path, cv2.IMREAD_UNCHANGED)
        if gt_raw is None:
            raise SystemExit(f'error: {gt_path}: cannot be decoded')
        gt = binarize_mask(gt_raw, name=gt_path).astype(bool)
        batch = preprocess([image], spec)
        maps = {}
        for precision, predictor in predictors.items():
            maps[precision] = postprocess(predictor(batch)[0], gt.shape,
                                          spec)
            dice[precision].append(mean_dice(maps[precision][0], gt))
        diff = max(diff,
                   float(np.abs(maps['bf16'][0] - maps['f32'][0]).max()))
        differ += int((maps['bf16'][1] != maps['f32'][1]).sum())
        pixels += gt.size
    result = dict(
        model=osp.abspath(args.model),
        images=len(pairs),
        mdice_f32=float(np.mean(dice['f32'])),
        mdice_bf16=float(np.mean(dice['bf16'])),
        max_abs_prob_diff=diff,
        mask_pixels_differ=differ,
        pixels=pixels)
    result['mdice_change'] = result['mdice_bf16'] - result['mdice_f32']
    result['bf16_acceptable'] = result['mdice_change'] >= -args.max_change
    print(f'{len(pairs)} images: mean Dice float32 {result["mdice_f32"]:.4f}'
          f', bfloat16 {result["mdice_bf16"]:.4f}, change '
          f'{result["mdice_change"]:+.4f}; max |prob bf16 - f32| '
          f'{diff:.2e}; mask pixels that differ {differ} of {pixels}')
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + '\n')
    if not result['bf16_acceptable']:
        print(f'bfloat16 loses more than {args.max_change} mean Dice: keep '
              'float32 as the default', file=sys.stderr)
        sys.exit(1)
    print(f'bfloat16 is within {args.max_change} mean Dice of float32')


if __name__ == '__main__':
    main()

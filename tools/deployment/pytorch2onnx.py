"""Export a segmentor (or a distilled student) to one ONNX file.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out FILE.onnx
        [--shape H W] [--output logits|prob] [--no-rewrites] [--opset N]
        [--verify] [--verify-images PATH ...] [--verify-num 8]
        [--atol 1e-4] [--precision f32|int8] [--calib-num 64] [--threads N]

CONFIG is a segmentor config, the student config a KDAS run exports
(``student_config.py``) or a KDAS distiller config (its student is
exported; a distiller checkpoint is accepted). The graph takes
``image``: uint8 N x H x W x 3 RGB (batch size free, H x W fixed: by
default the test pipeline's size). By default it gives ``logits``:
float32 N x K x h x w, the head's logits before its final upsampling
(P1 + P2 at stride 8 for Polyp-PVT; K = 1 for a binary model), which the
caller resizes once to the image size and passes through the sigmoid
(``tools/infer.py`` does); ``--output prob`` gives ``prob``: float32
N x K x H x W, the probability map at the model size. Normalisation, the
network with the deploy-only rewrites (``mmseg_kdas/deployment/
rewrites.py``; ``--no-rewrites`` exports the modules as trained) and the
head's fusion are in the graph. ``FILE.json`` next to it (also embedded in
the file) says what a caller needs: sizes, output kind, layouts,
mean / std, threshold, class names.

``--verify`` runs ONNX Runtime and PyTorch on real images with the
checkpoint's weights (one image at a time, then up to 8 as one batch):
the graph's output against the exported PyTorch module, and the
probability map at each image's own size (graph + postprocessing) against
mmseg's ``predict`` of the model as trained. It fails if either differs by
more than ``--atol`` and reports mask pixels that differ. The images are
``--verify-images`` (files or folders) or, by default, those of the
config's test set.

``--precision int8`` also writes ``FILE.int8.onnx`` (and
``FILE.int8.json``) after the float file: ONNX Runtime's static INT8
quantisation (QDQ, per-channel weights; ``mmseg_kdas/deployment/
quantize.py``), calibrated on ``--calib-num`` images drawn (seed 0) from
the config's training set only (``train_dataloader``; with
``split='train-minus-val'`` the validation images are left out; an image
also in the validation or test set is an error). With ``--verify`` the
INT8 model is compared with the float one on the same images and the
largest probability change and the mask pixels that differ are printed
(no bound is applied: INT8 is judged on trained students).
"""
import argparse
import os.path as osp
import sys
import time

from mmseg_kdas.deployment.backends import OnnxRuntimePredictor
from mmseg_kdas.deployment.export import (export_onnx, max_abs_difference,
                                          reference_difference)
from mmseg_kdas.deployment.inference import input_kind, list_images
from mmseg_kdas.deployment.model import (build_deploy_model,
                                         config_test_images,
                                         load_segmentor_config)
from mmseg_kdas.deployment.pipeline import preprocess, read_image
from mmseg_kdas.deployment.quantize import (DEFAULT_CALIBRATION_IMAGES,
                                            calibration_images,
                                            probability_agreement,
                                            quantize_onnx, training_images)
from mmseg_kdas.deployment.spec import INT8_SUFFIX
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning

MAX_BATCH = 8


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='segmentor, student or KDAS config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--out', required=True, help='FILE.onnx to write')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help="input size (default: the test pipeline's Resize)")
    parser.add_argument(
        '--output',
        choices=['logits', 'prob'],
        default='logits',
        help='logits before the final upsampling (default) or the '
        'probability map at the model size')
    parser.add_argument(
        '--no-rewrites',
        action='store_true',
        help='export the modules as trained (no deploy-only rewrites)')
    parser.add_argument(
        '--opset', type=int, default=None, help="default: the exporter's")
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare ONNX Runtime with PyTorch on real images')
    parser.add_argument(
        '--verify-images',
        nargs='+',
        default=None,
        help="image files or folders (default: the config's test images)")
    parser.add_argument(
        '--verify-num', type=int, default=8, help='images to compare')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest accepted difference of the outputs and of the '
        'probability maps')
    parser.add_argument(
        '--precision',
        choices=['f32', 'int8'],
        default='f32',
        help='int8: also write FILE.int8.onnx, calibrated on training '
        'images')
    parser.add_argument(
        '--reduce-range',
        action='store_true',
        help='int8: 7-bit weights, for CPUs without VNNI (AVX2 only), '
        "whose 8-bit products can saturate (ONNX Runtime's advice)")
    parser.add_argument(
        '--calib-num',
        type=int,
        default=DEFAULT_CALIBRATION_IMAGES,
        help='training images drawn for the INT8 calibration')
    parser.add_argument(
        '--threads', type=int, default=None, help='CPU threads')
    return parser.parse_args()


def verify_images(args) -> list:
    """The images ``--verify`` compares on."""
    sources = args.verify_images
    if sources is None:
        folder = config_test_images(load_segmentor_config(args.config))
        if folder is None or not osp.isdir(folder):
            raise SystemExit(
                f'--verify: the test images of {args.config} ({folder}) are '
                'not here; give real images with --verify-images PATH')
        sources = [folder]
    paths = []
    for source in sources:
        try:
            kind = input_kind(source)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'--verify-images: {err}')
        if kind == 'video':
            raise SystemExit(f'--verify-images takes images, got {source}')
        paths += list_images(source) if kind == 'folder' else [source]
    try:
        return [read_image(p) for p in paths[:args.verify_num]]
    except ValueError as err:
        raise SystemExit(f'--verify-images: {err}')


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    for path, what in ((args.config, 'config'), (args.checkpoint,
                                                 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} file not found: {path}')
    images = verify_images(args) if args.verify else []
    calibration = []
    if args.reduce_range and args.precision != 'int8':
        raise SystemExit('--reduce-range goes with --precision int8')
    if args.precision == 'int8':  # checked before exporting
        if args.out.endswith(INT8_SUFFIX):
            raise SystemExit(f'--precision int8: --out names the float '
                             f'file, got {args.out}')
        try:
            calibration = calibration_images(
                training_images(
                    load_segmentor_config(args.config), args.config),
                args.calib_num)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'--precision int8: {err}')
    model, spec = build_deploy_model(
        args.config,
        args.checkpoint,
        args.shape,
        output=args.output,
        rewrite=not args.no_rewrites)
    start = time.perf_counter()
    sidecar = export_onnx(model, args.out, args.opset)
    h, w = spec.input_size
    oh, ow = spec.output_size
    print(f'exported {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB, '
          f'opset {spec.source["opset"]}, {time.perf_counter() - start:.0f}'
          f' s): image uint8 [N, {h}, {w}, 3] RGB -> {spec.output_name} '
          f'float32 [N, {spec.out_channels}, {oh}, {ow}] '
          f'({spec.output_kind}, {spec.activation}); spec in {sidecar}')
    if args.verify:
        verify(args, model, images)
    if args.precision == 'int8':
        quantize(args, calibration, images)


def verify(args, model, images: list) -> None:
    """The float model against PyTorch and mmseg; exits 1 past --atol."""
    spec = model.spec
    batches = [preprocess([img], spec) for img in images]
    if len(images) > 1:  # the free batch size, within a few GiB
        batches.append(preprocess(images[:MAX_BATCH], spec))
    graph = max_abs_difference(model, args.out, batches, args.threads)
    predictor = OnnxRuntimePredictor(args.out, args.threads)
    final = reference_difference(predictor, model, images)
    print(f'verify: {len(images)} images, one at a time and '
          f'{min(len(images), MAX_BATCH)} as one batch: '
          f'max |ONNX Runtime - PyTorch| of the {spec.output_kind} output = '
          f'{graph["max_abs_diff"]:.2e} (largest |logit| '
          f'{graph["max_abs_logit"]:.3g}); at the images\' sizes, max '
          f'|probability - mmseg predict| = {final["max_abs_diff"]:.2e}, '
          f'mask pixels that differ: {final["mask_pixels_differ"]} of '
          f'{final["pixels"]}')
    worst = max(graph['max_abs_diff'], final['max_abs_diff'])
    if worst > args.atol:
        print(
            f'verify FAILED: {worst:.2e} > --atol {args.atol:g} ({args.out} '
            'is kept for inspection)',
            file=sys.stderr)
        sys.exit(1)


def quantize(args, calibration: list, images: list) -> None:
    """Write FILE.int8.onnx; with images, its agreement with FILE."""
    start = time.perf_counter()
    out = quantize_onnx(args.out, calibration,
                        reduce_range=args.reduce_range)
    print(f'quantized {out} ({osp.getsize(out) / 2**20:.1f} MiB, '
          f'{time.perf_counter() - start:.0f} s): static INT8 (QDQ'
          f'{", 7-bit weights" if args.reduce_range else ""}), '
          f'calibrated on {len(calibration)} training images')
    if not images:
        return
    reference = OnnxRuntimePredictor(args.out, args.threads)
    result = probability_agreement(reference,
                                   OnnxRuntimePredictor(out, args.threads),
                                   reference.spec, images)
    print(f'int8 agreement: {len(images)} images: max |probability int8 - '
          f'float| = {result["max_abs_prob_diff"]:.2e}, mask pixels that '
          f'differ: {result["mask_pixels_differ"]} of {result["pixels"]} '
          f'({100 * result["mask_share_differ"]:.3f} %)')


if __name__ == '__main__':
    main()

"""Segment an image, a folder of images or a video (PyTorch, ORT, OpenVINO).

    python tools/infer.py INPUT MODEL [CHECKPOINT] --out DIR
        [--backend pytorch|onnxruntime|openvino]
        [--precision auto|f32|bf16|int8]
        [--shape H W] [--threads N] [--save-prob] [--save-overlay]
        [--no-spinning] [--no-progress]

MODEL is a config with its CHECKPOINT (PyTorch) or an ``.onnx`` file from
``tools/deployment/pytorch2onnx.py`` (ONNX Runtime, or OpenVINO with
``--backend openvino``); the backend follows from the file unless given.
OpenVINO computes in bfloat16 where the CPU has it natively and in
float32 elsewhere (``--precision auto``, the default); ``f32`` asks for
float32, ``bf16`` insists on bfloat16. ``--precision int8`` runs the INT8
twin of the file under ONNX Runtime or OpenVINO (``FILE.int8.onnx``, written by
``pytorch2onnx.py --precision int8``; never the default). INPUT is an
image, a folder of images or a video. Under DIR: ``masks/<name>.png``
(0 / 255 at the image's size) for every image or frame
(``<video>_<frame:06d>.png``), ``probs/`` and ``overlays/`` on request
(``--save-overlay``: for a video also ``<video>_overlay.mp4``, overlay and
running FPS on each frame; without it no frame is drawn or encoded), and
always ``summary.json``. Unreadable images and frames are named,
skipped and listed at the end; the exit status is then 1.
"""
import argparse
import sys

import cv2

from mmseg_kdas.deployment.backends import (BACKENDS,
                                            OPENVINO_DEFAULT_PRECISION,
                                            PRECISIONS, build_predictor)
from mmseg_kdas.deployment.inference import infer, input_kind
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('input', help='image, folder of images or video')
    parser.add_argument('model', help='config (PyTorch) or .onnx file')
    parser.add_argument(
        'checkpoint', nargs='?', default=None, help="the config's weights")
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--backend',
        choices=BACKENDS,
        default=None,
        help='default: onnxruntime for an .onnx file, else pytorch')
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default=None,
        help='OpenVINO arithmetic: auto = bf16 where the CPU has it '
        f'natively, else f32 (default: {OPENVINO_DEFAULT_PRECISION}); '
        'int8: the INT8 twin FILE.int8.onnx (onnxruntime, openvino)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help="model input size of a config (default: its test pipeline's)")
    parser.add_argument(
        '--threads', type=int, default=None, help='CPU threads')
    parser.add_argument(
        '--save-prob',
        action='store_true',
        help='also write 8-bit probability maps (probs/)')
    parser.add_argument(
        '--save-overlay',
        action='store_true',
        help='also write overlay images (overlays/), and for a video the '
        'overlay video')
    parser.add_argument(
        '--no-spinning',
        action='store_true',
        help="ONNX Runtime's idle threads sleep instead of spinning")
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args()


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    # OpenCV's work of a frame runs in its own pipeline stage; its thread
    # pool would only compete with the network's threads for the cores
    cv2.setNumThreads(1)
    try:
        input_kind(args.input)
        predictor = build_predictor(args.model, args.checkpoint,
                                    args.backend, args.threads, args.shape,
                                    not args.no_spinning, args.precision)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}')
    report = infer(args.input, predictor, args.out, args.save_prob,
                   args.save_overlay, not args.no_progress)
    print(f'\n{report.written} written to {args.out} ({predictor.backend} '
          f'{predictor.precision}, {report.fps:.1f} per second end to end)')
    if report.failures:
        print(
            f'{len(report.failures)} skipped:', file=sys.stderr)
        for name, reason in report.failures:
            print(f'  {name}: {reason}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()

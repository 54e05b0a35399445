"""Speed of a deployed model under each backend, and its targets.

The measuring parts of ``tools/analysis_tools/benchmark_deploy.py``: one
function of a batch per backend and precision (:func:`backend_runners`),
timed by :func:`~mmseg_kdas.utils.benchmark.time_image_batches`; a test
video written from images (:func:`write_video`) and ``tools/infer.py`` run
on it end to end (:func:`video_fps`, which needs the repository's
``tools``); the targets of the deployment (issue 19) the results are held
against.
"""
import json
import os.path as osp
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from .backends import OnnxRuntimePredictor, OpenVINOPredictor
from .pipeline import read_image

__all__ = [
    'SPEEDUP_TARGET', 'LATENCY_TARGET_MS', 'VIDEO_FPS_TARGET',
    'VIDEO_SHARE_TARGET', 'backend_label', 'backend_runners', 'write_video',
    'video_fps'
]

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: The targets of the deployment (issue 19): the last model against the
#: first under one backend and precision, its best batch-1 latency, the
#: end-to-end video frame rate and its share of ``1000 / b1 latency``.
SPEEDUP_TARGET = 5.0
LATENCY_TARGET_MS = 25.0
VIDEO_FPS_TARGET = 25.0
VIDEO_SHARE_TARGET = 0.85


def backend_label(backend: str, precision: str) -> str:
    """``'openvino <precision>'`` for OpenVINO, ``'<backend> int8'`` for
    INT8, else the backend's name."""
    if backend == 'openvino' or precision != 'f32':
        return f'{backend} {precision}'
    return backend


def backend_runners(model: Optional[torch.nn.Module], onnx_path: str,
                    backends: List[str], threads: int, ort_level: str,
                    precisions: List[str],
                    int8_path: Optional[str] = None
                    ) -> Dict[Tuple[str, str], Callable]:
    """``(backend, precision) -> fn(batch)`` for the selected backends.

    Args:
        model: The :class:`~mmseg_kdas.deployment.DeployModel` for the
            PyTorch backend (run under ``inference_mode``), or None to
            leave PyTorch out.
        onnx_path: Its export, for ONNX Runtime and OpenVINO.
        backends: Of ``'pytorch'``, ``'onnxruntime'`` and ``'openvino'``.
        threads: CPU threads of ONNX Runtime and OpenVINO.
        ort_level: ONNX Runtime's graph optimisations.
        precisions: OpenVINO's, one runner each.
        int8_path: The INT8 twin of ``onnx_path``
            (:func:`~mmseg_kdas.deployment.quantize.quantize_onnx`), run by
            ONNX Runtime and OpenVINO as ``(backend, 'int8')``.

    Returns:
        Functions of an ``N x H x W x 3`` uint8 batch.
    """
    out: Dict[Tuple[str, str], Callable] = {}
    if 'pytorch' in backends and model is not None:

        def run_pytorch(batch: np.ndarray):
            with torch.inference_mode():
                return model(torch.from_numpy(batch))

        out['pytorch', 'f32'] = run_pytorch
    if 'onnxruntime' in backends:
        out['onnxruntime', 'f32'] = OnnxRuntimePredictor(
            onnx_path, threads, level=ort_level)
        if int8_path:
            out['onnxruntime', 'int8'] = OnnxRuntimePredictor(
                int8_path, threads, level=ort_level)
    if 'openvino' in backends:
        for precision in precisions:
            out['openvino', precision] = OpenVINOPredictor(
                onnx_path, threads, precision)
        if int8_path:
            out['openvino', 'int8'] = OpenVINOPredictor(
                int8_path, threads, 'int8')
    return out


def write_video(images: List[str], path: str, frames: int,
                size: List[int], fps: float = 25.0) -> None:
    """A video of ``frames`` frames cycling through ``images``.

    Args:
        images: Image files, each resized to ``size``.
        path: The ``.mp4`` file written (mp4v).
        frames: Number of frames.
        size: ``[width, height]`` of the frames.
        fps: Frame rate.
    """
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             tuple(size))
    if not writer.isOpened():
        raise OSError(f'{path}: OpenCV cannot write an mp4v video')
    decoded = [cv2.resize(read_image(p), tuple(size)) for p in images]
    for i in range(frames):
        writer.write(decoded[i % len(decoded)])
    writer.release()


def video_fps(video: str, model_args: List[str], out_dir: str,
              threads: int, *options: str) -> dict:
    """Run ``tools/infer.py`` on a video; its ``summary.json``.

    Args:
        video: The video.
        model_args: The model arguments of ``tools/infer.py`` (a config
            and its checkpoint, or an ``.onnx`` file).
        out_dir: Its ``--out``.
        threads: Its ``--threads``.
        *options: Further options (``--backend openvino`` ...).

    Returns:
        The run's summary (``written``, ``seconds``, ``fps`` ...).

    Raises:
        RuntimeError: ``tools/infer.py`` failed; the message ends with its
            output.
    """
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'infer.py'), video, *model_args, '--out',
        out_dir, '--threads',
        str(threads), '--no-progress', *options
    ]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} exited {proc.returncode}:\n'
                           f'{proc.stdout[-3000:]}')
    with open(osp.join(out_dir, 'summary.json')) as f:
        return json.load(f)

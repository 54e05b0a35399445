"""PyTorch and ONNX Runtime side by side: latency, throughput, video FPS.

    python tools/analysis_tools/benchmark_deploy.py CFG [CFG ...]
        [--checkpoints CKPT ...] [--size 352] [--batch-sizes 1 16]
        [--threads 2] [--warmup 2] [--repeats 5] [--ort-level all]
        [--video FILE | --video-from IMAGE_DIR [--video-frames 100]
         [--video-size W H]] [--profile] [--work-dir DIR]

Each config's deployed model (for a KDAS config, its student) is measured
twice on the CPU with the same number of threads: as
:class:`~mmseg_kdas.deployment.DeployModel` in PyTorch (``inference_mode``)
and exported to ONNX (``tools/deployment/pytorch2onnx.py``'s export) in
ONNX Runtime (all graph optimisations, sequential execution). Both run the
whole inference the deployment ships: uint8 RGB in, normalisation, the
network, the head's fusion, the sigmoid, probabilities out. Latency is the
median of ``repeats`` runs after ``warmup`` (random images); images/s =
batch size / median. Weights are random unless ``--checkpoints`` are
given (speed does not depend on them). The first config is the reference
of the speed-up column (e.g. teacher first: how much faster the student
is under the same backend).

With ``--video`` (or ``--video-from``, which writes a video of the images
of a folder at ``--video-size``, 25 FPS), ``tools/infer.py`` is run on it
with the last config under both backends (ONNX Runtime's threads spinning
when idle, its default, and sleeping) and its end-to-end frames per second
are reported (decoding, resizing, inference, mask PNGs, overlay,
encoding). With ``--profile`` ONNX Runtime's per-operator profile of one
image is summarised per model: share of the kernel time per operator type
and per part of the network, and the implied milliseconds (share x the
measured b1 latency).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch

from mmseg_kdas.deployment.backends import ort_session
from mmseg_kdas.deployment.export import export_onnx
from mmseg_kdas.deployment.inference import list_images
from mmseg_kdas.deployment.model import build_deploy_model
from mmseg_kdas.deployment.pipeline import read_image
from mmseg_kdas.utils.benchmark import count_flops, markdown_table, time_call

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='model or KDAS configs')
    parser.add_argument(
        '--checkpoints',
        nargs='+',
        default=None,
        help="one per config ('none': random weights)")
    parser.add_argument('--size', type=int, default=352, help='image side')
    parser.add_argument(
        '--batch-sizes', type=int, nargs='+', default=[1, 16])
    parser.add_argument(
        '--threads', type=int, default=2, help='CPU threads of both')
    parser.add_argument(
        '--ort-level',
        choices=['all', 'extended', 'basic', 'none'],
        default='all',
        help="ONNX Runtime's graph optimisations ('extended': without the "
        'NCHWc layout of convolutions)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--video', help='video for the end-to-end FPS')
    parser.add_argument(
        '--video-from',
        help='write --video (default: WORK_DIR/video.mp4) from these images')
    parser.add_argument('--video-frames', type=int, default=100)
    parser.add_argument(
        '--video-size',
        type=int,
        nargs=2,
        default=[720, 576],
        metavar=('W', 'H'))
    parser.add_argument(
        '--profile',
        action='store_true',
        help="ONNX Runtime's operator profile of each model (batch 1)")
    parser.add_argument(
        '--work-dir',
        default='work_dirs/benchmark_deploy',
        help='exported models and video outputs')
    args = parser.parse_args()
    if args.checkpoints and len(args.checkpoints) != len(args.configs):
        parser.error('give one checkpoint per config (or none)')
    return args


def write_video(images: List[str], path: str, frames: int,
                size: List[int], fps: float = 25.0) -> None:
    """A video of ``frames`` frames cycling through ``images``."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             tuple(size))
    if not writer.isOpened():
        raise OSError(f'{path}: OpenCV cannot write an mp4v video')
    decoded = [cv2.resize(read_image(p), tuple(size)) for p in images]
    for i in range(frames):
        writer.write(decoded[i % len(decoded)])
    writer.release()


def measure(model, onnx_path: str, args) -> Dict[str, Dict[int, float]]:
    """Median seconds per batch size, per backend."""
    h, w = model.spec.input_size
    session = ort_session(onnx_path, args.threads, level=args.ort_level)
    names = model.spec.input_name, model.spec.output_name
    cpu = torch.device('cpu')
    times: Dict[str, Dict[int, float]] = dict(pytorch={}, onnxruntime={})
    for bs in args.batch_sizes:
        batch = np.random.default_rng(0).integers(
            0, 256, (bs, h, w, 3), dtype=np.uint8)
        tensor = torch.from_numpy(batch)

        def run_pytorch():
            with torch.inference_mode():
                model(tensor)

        def run_onnxruntime():
            session.run([names[1]], {names[0]: batch})

        times['pytorch'][bs] = time_call(run_pytorch, cpu, args.warmup,
                                         args.repeats)['median']
        times['onnxruntime'][bs] = time_call(run_onnxruntime, cpu,
                                             args.warmup,
                                             args.repeats)['median']
    return times


def video_fps(video: str, model_args: List[str], out_dir: str,
              threads: int, *options: str) -> dict:
    """Run ``tools/infer.py`` on a video; its ``summary.json``."""
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


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    checkpoints: List[Optional[str]] = [
        None if c in (None, 'none') else c
        for c in (args.checkpoints or [None] * len(args.configs))
    ]
    results = []
    for config, checkpoint in zip(args.configs, checkpoints):
        name = osp.splitext(osp.basename(config))[0]
        model, spec = build_deploy_model(config, checkpoint,
                                         (args.size, args.size))
        onnx_path = osp.join(args.work_dir, f'{name}.onnx')
        export_onnx(model, onnx_path)
        segmentor = model.segmentor
        result = dict(
            name=name,
            config=config,
            checkpoint=checkpoint,
            onnx=onnx_path,
            params=sum(p.numel() for p in segmentor.parameters()),
            flops=count_flops(segmentor, args.size),
            times=measure(model, onnx_path, args))
        if args.profile:
            from mmseg_kdas.deployment.profile import operator_shares
            batch = np.random.default_rng(0).integers(
                0, 256, (1, args.size, args.size, 3), dtype=np.uint8)
            result['profile'] = operator_shares(
                onnx_path, batch, args.threads, level=args.ort_level)
        if checkpoint is None:  # for tools/infer.py's PyTorch backend
            checkpoint = osp.join(args.work_dir, f'{name}_random.pth')
            torch.save(dict(state_dict=segmentor.state_dict()), checkpoint)
            result['checkpoint'] = checkpoint
        results.append(result)
        print(f'measured {name}', flush=True)

    import onnxruntime
    header = ['model', 'backend', 'params (M)', 'GFLOPs']
    for bs in args.batch_sizes:
        header += [f'b{bs} ms', f'b{bs} img/s']
    header += ['b1 vs PyTorch', f'b1 vs {results[0]["name"]}']
    rows = []
    first = results[0]['times']
    bs0 = args.batch_sizes[0]
    for result in results:
        for backend in ('pytorch', 'onnxruntime'):
            times = result['times'][backend]
            row = [
                result['name'], backend, f'{result["params"] / 1e6:.2f}',
                f'{result["flops"] / 1e9:.2f}'
            ]
            for bs in args.batch_sizes:
                row += [f'{times[bs] * 1e3:.1f}', f'{bs / times[bs]:.1f}']
            row += [
                f'{result["times"]["pytorch"][bs0] / times[bs0]:.2f}x',
                f'{first[backend][bs0] / times[bs0]:.2f}x'
            ]
            rows.append(row)
    print(f'\nInput {args.size}x{args.size}, uint8 RGB to probabilities; '
          f'{args.threads} CPU threads for both backends (torch '
          f'{torch.__version__}, onnxruntime {onnxruntime.__version__}, '
          f'{os.cpu_count()} CPUs; ONNX Runtime optimisations '
          f'{args.ort_level!r}); median of {args.repeats} after '
          f'{args.warmup} warm-up runs; b{bs0} columns "vs": speed-up.\n')
    print(markdown_table(header, rows))
    print('\nFLOPs ratio to the first model: ' + ', '.join(
        f'{r["name"]} {results[0]["flops"] / r["flops"]:.2f}x'
        for r in results))

    if args.profile:
        for result in results:
            b1 = result['times']['onnxruntime'][1] * 1e3 \
                if 1 in args.batch_sizes else None
            for kind in ('op_type', 'part'):
                shares = result['profile'][kind]
                table = [[
                    k, f'{100 * v:.1f}',
                    f'{v * b1:.2f}' if b1 is not None else '-'
                ] for k, v in list(shares.items())[:15]]
                print(f'\nONNX Runtime profile of {result["name"]}, b1, by '
                      f'{kind} (top 15):\n')
                print(markdown_table([kind, '% kernel time', 'ms (of b1)'],
                                     table))

    video = args.video
    if args.video_from:
        video = video or osp.join(args.work_dir, 'video.mp4')
        write_video(
            list_images(args.video_from), video, args.video_frames,
            args.video_size)
    if video:
        last = results[-1]
        rows = []
        runs = [('onnxruntime', [last['onnx']], []),
                ('onnxruntime --no-spinning', [last['onnx']],
                 ['--no-spinning']),
                ('pytorch', [last['config'], last['checkpoint']], [])]
        for i, (backend, model_args, options) in enumerate(runs):
            summary = video_fps(video, model_args,
                                osp.join(args.work_dir, f'video_{i}'),
                                args.threads, *options)
            rows.append([
                last['name'], backend, summary['written'],
                f'{summary["seconds"]:.1f}', f'{summary["fps"]:.1f}'
            ])
        capture = cv2.VideoCapture(video)
        w = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        capture.release()
        print(f'\ntools/infer.py end to end on {video} ({w}x{h}; decode, '
              'resize, infer, mask PNG, overlay, encode), '
              f'{args.threads} threads:\n')
        print(
            markdown_table(['model', 'backend', 'frames', 's', 'FPS'], rows))


if __name__ == '__main__':
    main()

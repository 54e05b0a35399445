"""PyTorch, ONNX Runtime and OpenVINO side by side: latency, video FPS.

    python tools/analysis_tools/benchmark_deploy.py CFG [CFG ...]
        [--checkpoints CKPT ...] [--size 352] [--batch-sizes 1 16]
        [--threads 2] [--warmup 2] [--repeats 5] [--ort-level all]
        [--backends pytorch onnxruntime openvino] [--precisions f32 bf16]
        [--plain] [--int8 [--calib-num 64]]
        [--video FILE | --video-from IMAGE_DIR
         [--video-frames 100] [--video-size W H]] [--profile]
        [--work-dir DIR]

Each config's deployed model (for a KDAS config, its student) is exported
as ``tools/deployment/pytorch2onnx.py`` does by default (deploy-only
rewrites, the head's logits before its final upsampling) and measured on
the CPU with the same number of threads under each backend: PyTorch
(:class:`~mmseg_kdas.deployment.DeployModel`, ``inference_mode``), ONNX
Runtime (all graph optimisations, sequential execution) and OpenVINO
(latency hint, one stream, a model compiled per batch size) in each of
``--precisions`` (float32; bfloat16 only where the CPU has it natively).
uint8 RGB in, normalisation, the network, logits out. Latency is the
median of ``repeats`` runs after ``warmup`` (random images); images/s =
batch size / median. Weights are random unless ``--checkpoints`` are
given (speed does not depend on them). The first config is the reference
of the speed-up column (teacher first: how much faster the student is
under the same backend and precision). ``--plain`` also measures the
export of the modules as trained with the probability map at the model
size (the graph before the rewrites) for comparison. ``--int8`` also
measures the INT8 twin of each deployed graph under ONNX Runtime and
OpenVINO (those of ``--backends``; ``pytorch2onnx.py --precision int8``:
static QDQ, calibrated on ``--calib-num`` of the config's training images,
which must be here).

With ``--video`` (or ``--video-from``, which writes a video of the images
of a folder at ``--video-size``, 25 FPS), ``tools/infer.py`` is run on it
with the last config under every backend and precision measured and its
end-to-end frames per second are reported (decoding, resizing, inference,
the logits resized to the frame, mask PNGs; with ``--video-overlay`` also
the overlay and its encoding, which ``tools/infer.py`` does only when
asked), with the
share of ``1000 / b1 latency`` it reaches. The run ends with the targets:
last vs first model >= 5.0x under one backend and precision, the best
b1 latency of the last model <= 25 ms, video >= 25 FPS end to end and
>= 85 % of 1000 / b1 latency. With ``--profile``, ONNX Runtime's and
OpenVINO's per-operator profiles of one image are summarised per model:
share of the time per operator type and the implied milliseconds.
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from mmseg_kdas.deployment.backends import openvino_native_bf16
from mmseg_kdas.deployment.benchmark import (LATENCY_TARGET_MS, SPEEDUP_TARGET,
                                             VIDEO_FPS_TARGET,
                                             VIDEO_SHARE_TARGET, backend_label,
                                             backend_runners, video_fps,
                                             write_video)
from mmseg_kdas.deployment.export import export_onnx
from mmseg_kdas.deployment.inference import list_images
from mmseg_kdas.deployment.model import (build_deploy_model,
                                         load_segmentor_config)
from mmseg_kdas.deployment.profile import openvino_profile, operator_shares
from mmseg_kdas.deployment.quantize import (DEFAULT_CALIBRATION_IMAGES,
                                            calibration_images, quantize_onnx,
                                            training_images)
from mmseg_kdas.utils.benchmark import (count_flops, markdown_table,
                                        time_image_batches)
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


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
        '--threads', type=int, default=2, help='CPU threads of each')
    parser.add_argument(
        '--backends',
        nargs='+',
        choices=['pytorch', 'onnxruntime', 'openvino'],
        default=['pytorch', 'onnxruntime', 'openvino'])
    parser.add_argument(
        '--precisions',
        nargs='+',
        choices=['f32', 'bf16'],
        default=None,
        help="OpenVINO's (default: f32, and bf16 where native)")
    parser.add_argument(
        '--ort-level',
        choices=['all', 'extended', 'basic', 'none'],
        default='all',
        help="ONNX Runtime's graph optimisations ('extended': without the "
        'NCHWc layout of convolutions)')
    parser.add_argument(
        '--plain',
        action='store_true',
        help='also measure the export without rewrites (prob output)')
    parser.add_argument(
        '--int8',
        action='store_true',
        help='also measure the INT8 graph under ONNX Runtime and OpenVINO '
        '(calibrated '
        "on the config's training images)")
    parser.add_argument(
        '--calib-num',
        type=int,
        default=DEFAULT_CALIBRATION_IMAGES,
        help='training images of the INT8 calibration')
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
        '--video-overlay',
        action='store_true',
        help="run tools/infer.py with --save-overlay (overlay images and "
        "video, the 'encode' stage); default: its defaults, masks only")
    parser.add_argument(
        '--profile',
        action='store_true',
        help="ONNX Runtime's and OpenVINO's operator profiles (batch 1)")
    parser.add_argument(
        '--work-dir',
        default='work_dirs/benchmark_deploy',
        help='exported models and video outputs')
    args = parser.parse_args()
    if args.checkpoints and len(args.checkpoints) != len(args.configs):
        parser.error('give one checkpoint per config (or none)')
    if 1 not in args.batch_sizes:
        parser.error('--batch-sizes must include 1 (the targets are b1)')
    if args.int8 and not {'onnxruntime', 'openvino'} & set(args.backends):
        parser.error('--int8 runs under onnxruntime and openvino: add one '
                     'to --backends')
    return args


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    os.makedirs(args.work_dir, exist_ok=True)
    precisions = args.precisions
    native = 'openvino' in args.backends and openvino_native_bf16()
    if precisions is None and 'openvino' in args.backends:
        precisions = ['f32'] + (['bf16'] if native else [])
    if 'bf16' in (precisions or []) and not native:
        raise SystemExit('error: --precisions bf16: OpenVINO reports no '
                         'native bfloat16 on this CPU')
    precisions = precisions or []
    checkpoints: List[Optional[str]] = [
        None if c in (None, 'none') else c
        for c in (args.checkpoints or [None] * len(args.configs))
    ]
    variants = [('deployed', dict(output='logits', rewrite=True))]
    if args.plain:
        variants.append(('plain', dict(output='prob', rewrite=False)))
    calibration = {}
    for config in args.configs if args.int8 else []:  # before measuring
        try:
            calibration[config] = calibration_images(
                training_images(load_segmentor_config(config), config),
                args.calib_num)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'error: --int8: {err}')
    results = []
    for config, checkpoint in zip(args.configs, checkpoints):
        name = osp.splitext(osp.basename(config))[0]
        result = dict(name=name, config=config, checkpoint=checkpoint,
                      times={}, onnx={}, profile={})
        for variant, options in variants:
            model, spec = build_deploy_model(config, checkpoint,
                                             (args.size, args.size),
                                             **options)
            onnx_path = osp.join(args.work_dir, f'{name}_{variant}.onnx')
            export_onnx(model, onnx_path)
            result['onnx'][variant] = onnx_path
            if variant == 'deployed' and args.int8:
                result['onnx']['int8'] = quantize_onnx(
                    onnx_path, calibration[config])
            if variant == 'deployed':
                segmentor = model.reference
                result['params'] = sum(
                    p.numel() for p in segmentor.parameters())
                result['flops'] = count_flops(segmentor, args.size)
            fns = backend_runners(
                model if variant == 'deployed' else None, onnx_path,
                args.backends, args.threads, args.ort_level, precisions,
                result['onnx'].get('int8') if variant == 'deployed' else None)
            for key, fn in fns.items():
                result['times'][(variant, ) + key] = time_image_batches(
                    fn, args.size, args.batch_sizes, args.warmup,
                    args.repeats)
            del fns
            if args.profile and variant == 'deployed':
                batch = np.random.default_rng(0).integers(
                    0, 256, (1, args.size, args.size, 3), dtype=np.uint8)
                if 'onnxruntime' in args.backends:
                    result['profile']['onnxruntime', 'f32'] = \
                        operator_shares(onnx_path, batch, args.threads,
                                        level=args.ort_level)['op_type']
                if 'openvino' in args.backends:
                    for precision in precisions:
                        result['profile']['openvino', precision] = \
                            openvino_profile(onnx_path, precision,
                                             args.size, args.threads)
        if checkpoint is None:  # for tools/infer.py's PyTorch backend
            checkpoint = osp.join(args.work_dir, f'{name}_random.pth')
            torch.save(dict(state_dict=segmentor.state_dict()), checkpoint)
            result['checkpoint'] = checkpoint
        results.append(result)
        print(f'measured {name}', flush=True)

    import onnxruntime
    versions = (f'torch {torch.__version__}, onnxruntime '
                f'{onnxruntime.__version__}')
    if 'openvino' in args.backends:
        import openvino
        versions += f', openvino {openvino.get_version()}'
    header = ['model', 'graph', 'backend', 'params (M)', 'GFLOPs']
    for bs in args.batch_sizes:
        header += [f'b{bs} ms', f'b{bs} img/s']
    header += ['b1 vs PyTorch', f'b1 vs {results[0]["name"]}']
    if args.plain:
        header.append('b1 vs plain')
    rows = []
    first = results[0]['times']
    for result in results:
        times_of = result['times']
        for key, times in times_of.items():
            variant, backend, precision = key
            row = [
                result['name'], variant,
                backend_label(backend, precision),
                f'{result["params"] / 1e6:.2f}',
                f'{result["flops"] / 1e9:.2f}'
            ]
            for bs in args.batch_sizes:
                row += [f'{times[bs] * 1e3:.1f}', f'{bs / times[bs]:.1f}']
            torch_b1 = times_of.get(('deployed', 'pytorch', 'f32'), {}).get(1)
            row.append(f'{torch_b1 / times[1]:.2f}x' if torch_b1 else '-')
            ref = first.get(key, {}).get(1)
            row.append(f'{ref / times[1]:.2f}x' if ref else '-')
            if args.plain:
                plain = times_of.get(('plain', backend, precision), {}).get(1)
                row.append(f'{plain / times[1]:.2f}x' if plain else '-')
            rows.append(row)
    print(f'\nInput {args.size}x{args.size}, uint8 RGB in; graph '
          '"deployed": rewrites, logits before the final upsampling out; '
          '"plain": modules as trained, probabilities at the model size; '
          f'{args.threads} CPU threads for every backend ({versions}, '
          f'{os.cpu_count()} CPUs; ONNX Runtime optimisations '
          f'{args.ort_level!r}); median of {args.repeats} after '
          f'{args.warmup} warm-up runs; b1 columns "vs": speed-up.\n')
    print(markdown_table(header, rows))
    print('\nFLOPs ratio to the first model: ' + ', '.join(
        f'{r["name"]} {results[0]["flops"] / r["flops"]:.2f}x'
        for r in results))

    if args.profile:
        for result in results:
            for (backend, precision), shares in result['profile'].items():
                b1 = result['times'][('deployed', backend, precision)][1]
                table = [[k, f'{100 * v:.1f}', f'{v * b1 * 1e3:.2f}']
                         for k, v in list(shares.items())[:15]]
                print(f'\n{backend_label(backend, precision)} profile of '
                      f'{result["name"]} (deployed), b1, by operator type '
                      '(top 15):\n')
                print(markdown_table(['operator', '% time', 'ms (of b1)'],
                                     table))

    video = args.video
    if args.video_from:
        video = video or osp.join(args.work_dir, 'video.mp4')
        write_video(
            list_images(args.video_from), video, args.video_frames,
            args.video_size)
    last = results[-1]
    deployed = {k[1:]: v[1] for k, v in last['times'].items()
                if k[0] == 'deployed'}
    fps_of: Dict[str, Tuple[float, float]] = {}
    if video:
        rows = []
        runs = []
        for backend, precision in deployed:
            if backend == 'pytorch':
                runs.append(((backend, precision), 'pytorch',
                             [last['config'], last['checkpoint']], []))
            elif backend == 'onnxruntime':
                model_args = [last['onnx']['int8' if precision == 'int8'
                                           else 'deployed']]
                label = backend_label(backend, precision)
                runs.append(((backend, precision), label, model_args, []))
                runs.append(((backend, precision), f'{label} --no-spinning',
                             model_args, ['--no-spinning']))
            else:
                runs.append(((backend, precision),
                             backend_label(backend, precision),
                             [last['onnx']['int8' if precision == 'int8'
                                           else 'deployed']], [
                                 '--backend', 'openvino', '--precision',
                                 precision
                             ]))
        for i, (key, label, model_args, options) in enumerate(runs):
            summary = video_fps(
                video, model_args, osp.join(args.work_dir, f'video_{i}'),
                args.threads, *options,
                *(['--save-overlay'] if args.video_overlay else []))
            bound = 1.0 / deployed[key]
            frames = max(summary['written'], 1)
            cpu = summary.get('stage_cpu_seconds', {})
            rows.append([
                last['name'], label, summary['written'],
                f'{summary["seconds"]:.1f}', f'{summary["fps"]:.1f}',
                f'{bound:.1f}', f'{100 * summary["fps"] / bound:.0f} %'
            ] + [
                f'{1e3 * cpu[stage] / frames:.1f}' if stage in cpu else '-'
                for stage in ('read', 'postprocess', 'encode')
            ])
            fps_of[label] = (summary['fps'], summary['fps'] / bound)
        capture = cv2.VideoCapture(video)
        w = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        capture.release()
        drawn = ('overlay, encode; --save-overlay' if args.video_overlay
                 else 'its default options: no overlay, no video')
        print(f'\ntools/infer.py end to end on {video} ({w}x{h}; decode, '
              f'resize, infer, logits to the frame size, mask PNG; {drawn}'
              f'), {args.threads} threads; bound = 1000 / b1 ms; CPU '
              'ms per frame of the stages around the network (read: decode '
              'and resize; post: the map at the frame size and its PNG; '
              'encode: overlay and video), which the network\'s threads '
              'share the cores with:\n')
        print(
            markdown_table([
                'model', 'backend', 'frames', 's', 'FPS', 'bound FPS',
                'of bound', 'read ms', 'post ms', 'encode ms'
            ], rows))

    if len(results) > 1:
        print(f'\nTargets ({results[-1]["name"]} against '
              f'{results[0]["name"]}, deployed graphs, b1):')
        for key, b1 in deployed.items():
            ref = first.get(('deployed', ) + key, {}).get(1)
            if ref:
                ratio = ref / b1
                print(f'- speed-up under {backend_label(*key)}: {ratio:.2f}x '
                      f'(target >= {SPEEDUP_TARGET}x: '
                      f'{"met" if ratio >= SPEEDUP_TARGET else "MISSED"})')
    pending = {
        'bf16': ' (bfloat16: its accuracy is checked by compare_precision.py)',
        'int8': ' (INT8: not a default until checked on trained students)'
    }
    if deployed:
        key, b1 = min(deployed.items(), key=lambda kv: kv[1])
        print(f'- best b1 latency of {last["name"]}: {b1 * 1e3:.1f} ms '
              f'({backend_label(*key)}; target <= {LATENCY_TARGET_MS} ms: '
              f'{"met" if b1 * 1e3 <= LATENCY_TARGET_MS else "MISSED"})' +
              pending.get(key[1], ''))
        f32 = {k: v for k, v in deployed.items() if k[1] == 'f32'}
        if f32 and key[1] != 'f32':
            key, b1 = min(f32.items(), key=lambda kv: kv[1])
            print(f'- best float32 b1 latency: {b1 * 1e3:.1f} ms '
                  f'({backend_label(*key)}; target <= {LATENCY_TARGET_MS} ms: '
                  f'{"met" if b1 * 1e3 <= LATENCY_TARGET_MS else "MISSED"})')
    if fps_of:
        label, (fps, share) = max(fps_of.items(), key=lambda kv: kv[1][0])
        print(f'- best video FPS end to end: {fps:.1f} ({label}; target >= '
              f'{VIDEO_FPS_TARGET}: '
              f'{"met" if fps >= VIDEO_FPS_TARGET else "MISSED"}); '
              f'{100 * share:.0f} % of 1000 / b1 ms (target >= '
              f'{100 * VIDEO_SHARE_TARGET:.0f} %: '
              f'{"met" if share >= VIDEO_SHARE_TARGET else "MISSED"})')


if __name__ == '__main__':
    main()

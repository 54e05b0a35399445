"""Parameters, FLOPs and inference speed of segmentors, side by side.

    python tools/analysis_tools/benchmark_models.py CFG [CFG ...]
        [--size 352] [--batch-sizes 1 16] [--devices cpu cuda]
        [--warmup 2] [--repeats 5]

For a KDAS distiller config the student is measured (it is what ships).
FLOPs are counted by mmengine's ``FlopAnalyzer`` (fvcore's counting rules:
one fused multiply-add counts as one FLOP) for one image. Latency is the
median wall time of ``repeats`` forward passes in tensor mode under
``torch.inference_mode`` after ``warmup`` untimed ones, with the device
synchronised around each; images/s = batch size / median latency. The first
config is the reference of the ratio column.
"""
import argparse
import os.path as osp

import torch

from mmseg_kdas.utils.benchmark import (build_deployed_model, count_flops,
                                        markdown_table, time_call)
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='model or KDAS configs')
    parser.add_argument('--size', type=int, default=352, help='image side')
    parser.add_argument(
        '--batch-sizes', type=int, nargs='+', default=[1, 16])
    parser.add_argument(
        '--devices',
        nargs='+',
        default=None,
        help="default: 'cpu', plus 'cuda' when a GPU is present")
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    return parser.parse_args()


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (['cpu', 'cuda']
                               if torch.cuda.is_available() else ['cpu'])
    header = ['config', 'params (M)', 'GFLOPs']
    for device in devices:
        for bs in args.batch_sizes:
            header += [f'{device} b{bs} ms', f'{device} b{bs} img/s']
    header += ['params ratio', 'FLOPs ratio']

    rows, ref = [], None
    for config in args.configs:
        model = build_deployed_model(config)
        params = sum(p.numel() for p in model.parameters())
        flops = count_flops(model, args.size)
        row = [
            osp.splitext(osp.basename(config))[0], f'{params / 1e6:.2f}',
            f'{flops / 1e9:.2f}'
        ]
        for name in devices:
            device = torch.device(name)
            model.to(device)
            for bs in args.batch_sizes:
                x = torch.randn(bs, 3, args.size, args.size, device=device)

                def forward():
                    with torch.inference_mode():
                        model(x, mode='tensor')

                t = time_call(forward, device, args.warmup, args.repeats)
                row += [
                    f'{t["median"] * 1e3:.1f}', f'{bs / t["median"]:.1f}'
                ]
            model.cpu()
        ref = ref or (params, flops)
        row += [f'{params / ref[0]:.3f}', f'{flops / ref[1]:.3f}']
        rows.append(row)
        print(f'measured {row[0]}', flush=True)

    print(f'\nInput {args.size}x{args.size}; torch {torch.__version__}, '
          f'{torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}'
             if 'cuda' in devices else '') + '; FLOPs: mmengine FlopAnalyzer '
          '(1 multiply-add = 1 FLOP), one image; latency: median of '
          f'{args.repeats} after {args.warmup} warm-up runs.\n')
    print(markdown_table(header, rows))


if __name__ == '__main__':
    main()

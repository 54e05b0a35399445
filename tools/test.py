"""Test (and evaluate) a segmentor or a distilled student (MMSeg's CLI).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]
"""
import argparse
import os.path as osp

from mmengine.runner import Runner

from mmseg_kdas.utils.cli import (add_run_arguments,
                                  ignore_pkg_resources_warning, parse_run_args,
                                  run_config)
from mmseg_kdas.utils.distributed import setup_cpu_distributed


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_run_arguments(
        parser,
        work_dir_help='if specified, the evaluation metric results will be '
        'dumped into the directory as json')
    parser.add_argument(
        '--out',
        type=str,
        help='directory where the predicted probability maps are saved '
        '(one 8-bit PNG per image, under a folder per test set)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where image / ground truth / prediction overlays '
        'are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    return parse_run_args(parser)


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            '--show and --show-dir need default_hooks.visualization '
            "(type='SegVisualizationHook') in the config")
    visualization_hook = default_hooks['visualization']
    visualization_hook['draw'] = True
    if args.show:
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    cfg = run_config(args)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'checkpoint file not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out

    setup_cpu_distributed(cfg, args.launcher)

    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()

"""Train a segmentor or a KDAS distiller (MMSegmentation's CLI).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]]
        [--amp] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

``--resume`` alone resumes from the newest checkpoint of the work dir that
loads: a truncated or corrupt newer one is passed over with a warning that
names it and the one used. ``--resume CHECKPOINT`` resumes from that file,
and fails if it is truncated or corrupt.
"""
import argparse
import logging

import torch
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from mmseg_kdas.engine.checkpoint import find_resumable_checkpoint
from mmseg_kdas.utils.cli import (add_run_arguments,
                                  ignore_pkg_resources_warning, parse_run_args,
                                  run_config)
from mmseg_kdas.utils.distributed import setup_cpu_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    add_run_arguments(
        parser, work_dir_help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or without it from the newest '
        'checkpoint of the work_dir that loads')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (float16 with '
        'dynamic loss scaling on a GPU, bfloat16 on the CPU)')
    return parse_run_args(parser)


def resumable_checkpoint(work_dir: str):
    """The newest checkpoint of ``work_dir`` that loads (None: none)."""
    path, skipped = find_resumable_checkpoint(work_dir)
    for bad, why in skipped:
        print_log(
            f'--resume: passing over {bad} ({why}); resuming from '
            f'{path or "scratch (no checkpoint loads)"}',
            logger='current',
            level=logging.WARNING)
    return path


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    cfg = run_config(args)  # work_dir: CLI > config > ./work_dirs/<name>

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type '
                f'is `OptimWrapper` but got {optim_wrapper}.')
            if torch.cuda.is_available():
                cfg.optim_wrapper.type = 'AmpOptimWrapper'
                cfg.optim_wrapper.loss_scale = 'dynamic'
            else:  # mmengine's AmpOptimWrapper needs a GPU: bfloat16
                cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'

    if args.resume == 'auto':
        # mmengine's own choice (last_checkpoint) may be truncated; with no
        # checkpoint, the run starts as it would without --resume
        resume_from = resumable_checkpoint(cfg.work_dir)
        cfg.resume = resume_from is not None
        if resume_from is not None:
            cfg.load_from = resume_from
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    else:
        cfg.resume = False
    # last_checkpoint is written atomically (checkpoints are, through the
    # plugin's local file backend)
    default_hooks = cfg.get('default_hooks', None) or {}
    checkpoint_hook = default_hooks.get('checkpoint',
                                        dict(type='CheckpointHook',
                                             interval=1))
    if checkpoint_hook is not None and checkpoint_hook.get(
            'type') == 'CheckpointHook':
        default_hooks['checkpoint'] = dict(
            checkpoint_hook, type='AtomicCheckpointHook')
        cfg.default_hooks = default_hooks

    # Checkpoints are saved as plain state so that `--resume` works under
    # torch.load(weights_only=True) (see mmseg_kdas/engine/checkpoint.py);
    # a NaN or infinite loss term stops the run at once (NonFiniteLossHook);
    # a distiller's teacher cache is checked against the training data
    # before the first iteration (TeacherCacheHook, a no-op without one).
    custom_hooks = list(cfg.get('custom_hooks', None) or [])
    for always in ('PlainCheckpointHook', 'NonFiniteLossHook',
                   'TeacherCacheHook'):
        if not any(h.get('type') == always for h in custom_hooks):
            custom_hooks.append(dict(type=always))
    cfg.custom_hooks = custom_hooks

    setup_cpu_distributed(cfg, args.launcher)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()

"""Run a distiller's frozen teacher once over the training set; cache its maps.

    python tools/cache_teacher.py CONFIG --out DIR [--batch-size N]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]
        [--estimate]
    python -m torch.distributed.run --nproc_per_node=N \
        tools/cache_teacher.py CONFIG --out DIR --launcher pytorch

CONFIG is any KDAS or KD-baseline config (a ``KDASDistiller``); its teacher
file is ``model.teacher_ckpt`` (required: the cache is identified by the
file's SHA-256). The teacher runs on every image of ``train_dataloader``'s
dataset, through the training pipeline and the distiller's data
preprocessor, at every size the config's multi-scale training produces
(each rate of its ``BatchMultiScaleResize``), and the maps that the
config's ``at_pairs`` / ``sgm_pairs`` consume are stored in DIR (see
:mod:`mmseg_kdas.teacher_cache`). Train from it with

    python tools/train.py CONFIG --cfg-options model.teacher_cache=DIR

Configs with anything random in the teacher's input (flips, rotations,
continuous random scaling, photometric augmentation) are refused. DIR is
filled under a temporary name and renamed when complete: a DIR that exists
is a finished cache (an existing DIR is an error; remove it to rebuild).
With ``--launcher`` every process caches its share of the images into the
same arrays. ``--estimate`` runs one image and prints the size the cache
would take, without writing anything.
"""
import argparse

from mmseg_kdas.teacher_cache import build_teacher_cache
from mmseg_kdas.utils.cli import (add_run_arguments,
                                  ignore_pkg_resources_warning, load_config,
                                  parse_run_args)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='KDAS / KD-baseline config file')
    parser.add_argument('--out', required=True, help='the cache folder')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='images per teacher forward (default: the training batch)')
    parser.add_argument(
        '--estimate',
        action='store_true',
        help='print the size of the cache and write nothing')
    add_run_arguments(
        parser,
        launchers=('none', 'pytorch', 'slurm'),
        launcher_help='job launcher (each process caches a share of the '
        'images)',
        cfg_options_help='override settings of the config, e.g. '
        'model.teacher_ckpt=teacher.pth')
    return parse_run_args(parser)


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    build_teacher_cache(cfg, args.out, args.batch_size, args.estimate,
                        args.launcher)


if __name__ == '__main__':
    main()

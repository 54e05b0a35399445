"""Extract the student of a KDAS distiller checkpoint as an mmseg model.

Usage::

    python tools/model_converters/kdas2student.py \
        work_dirs/kdas_pvtb2_to_b0_kvasir/epoch_99.pth \
        checkpoints/kdas_pvtv2-b0_student.pth [--config CONFIG]

writes the student's weights (no teacher, no SGM adapter, no optimizer
state) to OUT and the student's own mmseg config next to it (OUT with the
extension ``.py``). The config is derived from CONFIG (the distiller config
of the run) or, without ``--config``, from the config the runner stored in
the checkpoint's meta. The result loads with
``mmseg.apis.init_model('....py', '....pth')`` and ``MMSegInferencer``.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config

from mmseg_kdas.models.distillers import student_checkpoint, student_config
from mmseg_kdas.utils.atomic import atomic_torch_save, atomic_write_text
from mmseg_kdas.utils.checkpoint_file import load_weights_only
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning, load_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract the student of a KDAS distiller checkpoint')
    parser.add_argument('checkpoint', help='distiller checkpoint (.pth)')
    parser.add_argument('out', help='output student checkpoint (.pth)')
    parser.add_argument(
        '--config',
        help='the distiller config of the run; defaults to the config '
        'stored in the checkpoint')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    ignore_pkg_resources_warning()
    args = parse_args(argv)
    try:
        checkpoint = load_weights_only(args.checkpoint, map_location='cpu')
        if args.config is not None:
            cfg = load_config(args.config)
        else:
            text = checkpoint.get('meta', {}).get('cfg')
            if not text:
                raise KeyError(f'{args.checkpoint} stores no config in its '
                               'meta; pass the run config with --config')
            cfg = Config.fromstring(text, '.py')
        cfg = student_config(cfg)
        student = student_checkpoint(checkpoint, cfg)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    atomic_torch_save(student, args.out)
    config_path = osp.splitext(args.out)[0] + '.py'
    atomic_write_text(config_path, cfg.pretty_text)
    print(f'{args.checkpoint} -> {args.out} ({len(student["state_dict"])} '
          f'tensors), config {config_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

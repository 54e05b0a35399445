"""Convert a Polyp-PVT / KDAS checkpoint to an mmseg_kdas checkpoint.

Usage::

    python tools/model_converters/polyp_pvt2mmseg.py PolypPVT.pth \
        checkpoints/polyp-pvt_pvtv2-b2_converted.pth

The variant is detected from the weights: PVTv2-B2 (the Polyp-PVT teacher,
config ``configs/polyp_pvt/polyp-pvt_pvtv2-b2_1xb16-100e_pranet-352x352.py``)
or PVTv2-B0 (the KDAS student, ``...pvtv2-b0...``). Unknown, missing or
mis-shaped keys are an error listing them. PVTv2 ImageNet files need no
conversion: the backbone's ``init_cfg`` loads them.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from mmseg_kdas.models.utils import convert_polyp_pvt
from mmseg_kdas.utils.atomic import atomic_torch_save
from mmseg_kdas.utils.checkpoint_file import (CheckpointError,
                                              load_state_dict_file)
from mmseg_kdas.version import __version__

CONFIGS = {
    'b2': 'configs/polyp_pvt/polyp-pvt_pvtv2-b2_1xb16-100e_pranet-352x352.py',
    'b0': 'configs/polyp_pvt/polyp-pvt_pvtv2-b0_1xb16-100e_pranet-352x352.py',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a reference Polyp-PVT (PVTv2-B2) or KDAS '
        '(PVTv2-B0) checkpoint to an mmseg_kdas checkpoint')
    parser.add_argument('src', help='reference checkpoint (.pth)')
    parser.add_argument('dst', help='output mmseg checkpoint (.pth)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        state_dict, arch = convert_polyp_pvt(load_state_dict_file(args.src))
    except (FileNotFoundError, CheckpointError, KeyError, ValueError) as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 1
    num_params = sum(
        v.numel() for k, v in state_dict.items()
        if not k.endswith(('running_mean', 'running_var',
                           'num_batches_tracked')))
    meta = dict(
        arch=f'pvtv2-{arch}',
        config=CONFIGS.get(arch),
        source=osp.basename(args.src),
        converter=f'mmseg_kdas {__version__} polyp_pvt2mmseg')
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'{args.src} -> {args.dst}: PVTv2-{arch.upper()} Polyp-PVT, '
          f'{len(state_dict)} tensors, {num_params:,} parameters; '
          f'config: {meta["config"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

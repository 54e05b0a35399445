"""Model utilities of mmseg_kdas: checkpoint key conversion, and float32
computations under mixed precision (from :mod:`mmseg_kdas.utils`, where the
models import them from). Checkpoint files are read by
:mod:`mmseg_kdas.utils.checkpoint_file`."""
from mmseg_kdas.utils.precision import in_float32
from .ckpt_convert import (POLYP_PVT_PREFIXES, convert_polyp_pvt,
                           infer_pvtv2_arch, polyp_pvt_convert)

__all__ = [
    'POLYP_PVT_PREFIXES', 'convert_polyp_pvt', 'infer_pvtv2_arch',
    'polyp_pvt_convert', 'in_float32'
]

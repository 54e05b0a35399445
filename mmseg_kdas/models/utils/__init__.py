"""Model utilities of mmseg_kdas: checkpoint key conversion, float32
computations under mixed precision."""
from .ckpt_convert import (POLYP_PVT_PREFIXES, convert_polyp_pvt,
                           infer_pvtv2_arch, load_pvtv2_pretrained,
                           load_state_dict_file, polyp_pvt_convert)
from .precision import in_float32

__all__ = [
    'POLYP_PVT_PREFIXES', 'convert_polyp_pvt', 'infer_pvtv2_arch',
    'load_pvtv2_pretrained', 'load_state_dict_file', 'polyp_pvt_convert',
    'in_float32'
]

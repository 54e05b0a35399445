"""Model utilities of mmseg_kdas: checkpoint key conversion."""
from .ckpt_convert import (POLYP_PVT_PREFIXES, convert_polyp_pvt,
                           infer_pvtv2_arch, load_pvtv2_pretrained,
                           load_state_dict_file, polyp_pvt_convert)

__all__ = [
    'POLYP_PVT_PREFIXES', 'convert_polyp_pvt', 'infer_pvtv2_arch',
    'load_pvtv2_pretrained', 'load_state_dict_file', 'polyp_pvt_convert'
]

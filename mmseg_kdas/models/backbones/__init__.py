"""Backbones of mmseg_kdas."""
from .pvtv2 import PVTv2, load_pvtv2_pretrained

__all__ = ['PVTv2', 'load_pvtv2_pretrained']

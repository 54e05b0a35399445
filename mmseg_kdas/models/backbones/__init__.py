"""Backbones of mmseg_kdas."""
from .pvtv2 import PVTv2

__all__ = ['PVTv2']

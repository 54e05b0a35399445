"""backbones of mmseg_kdas."""

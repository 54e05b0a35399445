"""losses of mmseg_kdas."""

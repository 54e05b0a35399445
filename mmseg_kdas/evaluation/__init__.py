"""evaluation of mmseg_kdas."""

"""utils of mmseg_kdas."""

"""necks of mmseg_kdas."""

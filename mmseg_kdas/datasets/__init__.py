"""datasets of mmseg_kdas."""

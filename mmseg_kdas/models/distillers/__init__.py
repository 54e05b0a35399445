"""distillers of mmseg_kdas."""

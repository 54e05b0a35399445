"""decode_heads of mmseg_kdas."""

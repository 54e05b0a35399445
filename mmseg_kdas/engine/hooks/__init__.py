"""hooks of mmseg_kdas."""

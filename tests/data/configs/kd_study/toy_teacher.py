# A tiny Polyp-PVT teacher for the toy study of the tests (random
# initialisation, the polyp schedule and runtime).
_base_ = ['../../../../configs/_base_/polyp_100e.py']
from mmseg_kdas.testing import tiny_polyp_pvt  # noqa: E402

_preprocessor = dict(
    type='BatchAugSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32,
    test_cfg=dict(size_divisor=32))
model = tiny_polyp_pvt([32, 64, 128, 256], 16,
                       data_preprocessor=_preprocessor)

# A tiny Polyp-PVT teacher for the toy study of the tests (random
# initialisation, the polyp schedule and runtime).
_base_ = ['../../../../configs/_base_/polyp_100e.py']
from mmseg_kdas.testing import TEST_AUG_PREPROCESSOR  # noqa: E402
from mmseg_kdas.testing import tiny_polyp_pvt  # noqa: E402

model = tiny_polyp_pvt([32, 64, 128, 256], 16,
                       data_preprocessor=TEST_AUG_PREPROCESSOR)

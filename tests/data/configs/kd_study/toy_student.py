# The tiny student of the toy study of the tests.
_base_ = ['./toy_teacher.py']
from mmseg_kdas.testing import TEST_AUG_PREPROCESSOR  # noqa: E402
from mmseg_kdas.testing import tiny_polyp_pvt  # noqa: E402

model = dict(
    _delete_=True,
    **tiny_polyp_pvt([16, 32, 64, 128], 8,
                     data_preprocessor=TEST_AUG_PREPROCESSOR))

# The shipped KDAS model (the paper's setting: its pairs, losses and
# weights) from the toy teacher to the toy student, with the distillers'
# schedule and runtime (the KDAS optimiser constructor, the student's
# export).
_base_ = [
    '../../../../configs/_base_/models/kdas_polyp-pvt-b2_polyp-pvt-b0.py',
    '../../../../configs/_base_/kdas_100e.py'
]
from mmseg_kdas.testing import TEST_AUG_PREPROCESSOR  # noqa: E402
from mmseg_kdas.testing import tiny_polyp_pvt  # noqa: E402

model = dict(
    teacher=dict(
        _delete_=True,
        **tiny_polyp_pvt([32, 64, 128, 256], 16,
                         data_preprocessor=TEST_AUG_PREPROCESSOR)),
    teacher_ckpt=None,
    student=dict(
        _delete_=True,
        **tiny_polyp_pvt([16, 32, 64, 128], 8,
                         data_preprocessor=TEST_AUG_PREPROCESSOR)))
data_preprocessor = model['student']['data_preprocessor']

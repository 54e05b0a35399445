# Your own data, step 3: KDAS from the teacher of this folder (its last
# checkpoint, work_dirs/<data>/teacher/epoch_99.pth) to Polyp-PVT on
# PVTv2-B0, at the paper's setting (alpha 0.3, T 2; the model:
# ../_base_/models/kdas_polyp-pvt-b2_polyp-pvt-b0.py). Writes to
# work_dirs/<data>/kdas, with the student alone next to every checkpoint
# (epoch_<n>_student.pth + student_config.py): test, export and ship that.
#   python tools/train.py <this file>   (docs/en/own_data.md)
# Another teacher: --cfg-options model.teacher_ckpt=path/to/teacher.pth
# (an mmseg checkpoint of Polyp-PVT B2, or the authors' PolypPVT.pth).
_base_ = [
    '../_base_/models/kdas_polyp-pvt-b2_polyp-pvt-b0.py',
    './_base_/dataset.py',
    '../_base_/kdas_100e.py',
]

model = dict(teacher_ckpt=_base_.work_root + '/teacher/epoch_99.pth')
work_dir = _base_.work_root + '/kdas'

# KDAS B2 -> B0 (the model: ../_base_/models/kdas_polyp-pvt-b2_polyp-pvt-
# b0.py, alpha = 0.3, T = 2, the paper's setting) on the PraNet training
# split, validated and tested on the five test sets (the paper's protocol),
# 99 epochs of batch 16 on one GPU ("100e": the reference's nominal
# --epoch 100, range(1, 100)).
#
# Teacher weights: pretrain/PolypPVT.pth (the authors' file, loaded as it
# is), or --cfg-options model.teacher_ckpt=path/to/teacher.pth.
# Evaluate the exported student alone (no teacher file needed):
#   python tools/test.py WORK_DIR/student_config.py \
#       WORK_DIR/epoch_99_student.pth
# or the distiller checkpoint with this config and
#   --cfg-options model.teacher_ckpt=None
_base_ = [
    '../_base_/models/kdas_polyp-pvt-b2_polyp-pvt-b0.py',
    '../_base_/datasets/pranet_polyp.py',
    '../_base_/kdas_100e.py',
]

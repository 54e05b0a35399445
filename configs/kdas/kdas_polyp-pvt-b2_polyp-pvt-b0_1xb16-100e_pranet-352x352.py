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
    '../_base_/schedules/schedule_100e_polyp.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
default_scope = 'mmseg'

# the frozen teacher stays out of the optimizer
optim_wrapper = dict(constructor='KDASOptimWrapperConstructor')
# iter_*.pth / epoch_*.pth -> *_student.pth + student_config.py. Not in
# the paper: dict(type='DistillWeightWarmupHook', warmup_iters=N) ramps the
# distillation terms from 0 to full weight over the first N iterations.
custom_hooks = [dict(type='StudentExportHook')]

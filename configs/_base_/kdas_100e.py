# ./polyp_100e.py for a KDAS distiller: the optimiser leaves the frozen
# teacher out (KDASOptimWrapperConstructor), and every checkpoint
# iter_*.pth / epoch_*.pth gets a student-only twin, *_student.pth +
# student_config.py (StudentExportHook). Not in the paper:
# dict(type='DistillWeightWarmupHook', warmup_iters=N) in custom_hooks ramps
# the distillation terms from 0 to full weight over the first N iterations.
_base_ = ['./polyp_100e.py']

optim_wrapper = dict(constructor='KDASOptimWrapperConstructor')
custom_hooks = [dict(type='StudentExportHook')]

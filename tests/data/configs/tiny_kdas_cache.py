# tiny_kdas.py as a teacher cache serves it: multi-scale one rate per
# iteration in turn (rates 0.5 / 1 / 1.5: 32, 64 and 96 px), 5 iterations,
# checkpoints every 2. Set train_dataloader.dataset.data_root,
# model.teacher_ckpt and, for a cached run, model.teacher_cache.
_base_ = ['./tiny_kdas_resume.py']

custom_hooks = [dict(type='StudentExportHook')]

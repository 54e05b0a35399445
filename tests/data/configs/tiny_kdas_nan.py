# tiny_kdas.py recording the dtypes of its maps and KDAS terms, whose
# teacher turns NaN at iteration 3 (checkpoints every 2 iterations)
_base_ = ['./tiny_kdas.py']
custom_imports = dict(
    imports=['mmseg_kdas', 'kdas_test_hooks'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(interval=2))
custom_hooks = [
    dict(type='StudentExportHook'),
    dict(type='KDASTestAutocastHook'),
    dict(type='KDASTestNaNTeacherHook', iter=3)
]

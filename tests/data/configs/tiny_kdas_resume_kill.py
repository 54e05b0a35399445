# tiny_kdas_resume.py killed (SIGKILL) after iteration 2 and its checkpoint.
_base_ = ['./tiny_kdas_resume.py']
custom_imports = dict(
    imports=['mmseg_kdas', 'kdas_test_hooks'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [
    dict(type='KDASTestKillAtIterHook', iter=2)
]

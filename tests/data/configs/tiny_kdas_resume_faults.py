# tiny_kdas_resume.py with KDASTestWriteFaultHook: KDAS_TEST_FAULT in the
# environment kills the run (or fails it as a full disk) while it writes a
# given file; unset, the run is tiny_kdas_resume.py's.
_base_ = ['./tiny_kdas_resume.py']
custom_imports = dict(
    imports=['mmseg_kdas', 'kdas_test_hooks'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='KDASTestWriteFaultHook')]

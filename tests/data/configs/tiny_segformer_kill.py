_base_ = ['./tiny_segformer.py']
custom_imports = dict(
    imports=['mmseg_kdas', 'kdas_test_hooks'], allow_failed_imports=False)
custom_hooks = [dict(type='KDASTestKillAtIterHook', iter=3)]

# tiny_kdas.py for comparing a two-process run with a one-process run of
# the same global batch: GroupNorm in the student's head (BatchNorm's batch
# statistics differ between 2 x b and 1 x 2b images, and the CPU has no
# SyncBN; the teacher's BN is in eval mode), every rank's final weights
# saved (end_rank<rank>.pth).
_base_ = ['./tiny_kdas.py']

custom_imports = dict(
    imports=['mmseg_kdas', 'kdas_test_hooks'], allow_failed_imports=False)
model = dict(
    student=dict(
        decode_head=dict(norm_cfg=dict(type='GN', num_groups=1))))
custom_hooks = [
    dict(type='StudentExportHook'),
    dict(type='KDASTestRecordHook')
]

# mmseg's runtime, with the polyp visualiser: `tools/test.py --show-dir DIR`
# writes one image / ground truth / prediction panel per test image, named
# <test set>_<image stem>.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
default_scope = 'mmseg'

visualizer = dict(
    type='PolypLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
log_processor = dict(by_epoch=True)

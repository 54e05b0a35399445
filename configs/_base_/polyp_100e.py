# The reference recipe's schedule (schedules/schedule_100e_polyp.py: AdamW
# 1e-4, 99 epochs of three multi-scale steps per batch) with the plugin's
# runtime (default_runtime.py: `custom_imports` of mmseg_kdas, the mmseg
# scope, epoch-based logging, the polyp visualiser). A config lists its
# model, its data and this file.
_base_ = [
    './schedules/schedule_100e_polyp.py',
    './default_runtime.py',
]

# PraNet polyp split, validated and tested on the 100 Kvasir test images only
# (faster validation during training); training as in pranet_polyp.py.
_base_ = ['./pranet_polyp.py', './kvasir_test_set.py']

val_dataloader = dict(
    dataset=dict(
        _base_.kvasir_test_set,
        _delete_=True,
        data_root=_base_.data_root,
        pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='PolypMetric')
test_evaluator = val_evaluator

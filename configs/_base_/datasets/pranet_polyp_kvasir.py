# PraNet polyp split, validated and tested on the 100 Kvasir test images only
# (faster validation during training); training as in pranet_polyp.py.
_base_ = ['./pranet_polyp.py']

val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=_base_.dataset_type,
        data_root=_base_.data_root,
        data_prefix=dict(
            img_path='TestDataset/Kvasir/images',
            seg_map_path='TestDataset/Kvasir/masks'),
        test_set='Kvasir',
        test_mode=True,
        pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='PolypMetric')
test_evaluator = val_evaluator

# PraNet polyp split with a validation split: train on the 1,300 training
# images that are not in mmseg_kdas/datasets/splits/pranet_val.txt
# (split='train-minus-val'), validate on the 150 listed ones (90 Kvasir-SEG
# images, 60 CVC-ClinicDB frames in 4 whole video sequences; split='val',
# one table row 'PraNet-val'), and test on the five test sets as in
# pranet_polyp.py. Choose checkpoints and settings on 'PraNet-val/mDice',
# never on a test set, e.g.
#   default_hooks = dict(checkpoint=dict(save_best='PraNet-val/mDice',
#                                        rule='greater'))
# The split and how it was made: mmseg_kdas/datasets/pranet_split.py.
_base_ = ['./pranet_polyp.py']

val_set = 'PraNet-val'
train_dataloader = dict(dataset=dict(split='train-minus-val'))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=_base_.dataset_type,
        data_root=_base_.data_root,
        data_prefix=dict(
            img_path='TrainDataset/images', seg_map_path='TrainDataset/masks'),
        split='val',
        test_set=val_set,
        test_mode=True,
        pipeline=_base_.test_pipeline))
val_evaluator = dict(type='PolypMetric')

# A binary segmentation data set of your own (any organ, any test-set
# names), in the PraNet layout:
#
#   <data_root>/TrainDataset/{images,masks}
#   <data_root>/TestDataset/<test set>/{images,masks}   (one per test set)
#   <data_root>/val.txt        (validation stems, one per line)
#
# Images and masks are matched by file stem; masks are 0 / 255 (or 0 / 1)
# images of the image's size. Check the data, then write the validation
# list (docs/en/own_data.md):
#   python tools/dataset_converters/polyp.py --check <data_root>
#   python tools/dataset_converters/make_val_split.py \
#       --images <data_root>/TrainDataset/images --out <data_root>/val.txt
#
# Pipelines (352x352, soft training masks as in the reference recipe) and
# the evaluator are those of the PraNet data config.
#
# Copy the folder configs/own_data (e.g. to configs/organ) and change the
# two keys below; everything else follows from them.
_base_ = ['../../_base_/datasets/pranet_polyp.py']

data_root = 'data/own_data'
test_sets = ['Test']

# Derived from the two keys above.
# Trained on TrainDataset minus the stems of val.txt, validated on them
# (one table row, 'val'), tested on every set of test_sets (one row each).
val_file = data_root + '/val.txt'
val_set = 'val'
# The configs of this folder write to work_dirs/<name of data_root>/
# {teacher,student,kdas}; the distiller reads the teacher's last checkpoint.
work_root = 'work_dirs/' + data_root.rstrip('/').split('/')[-1]

train_dataloader = dict(
    dataset=dict(
        data_root=data_root, split='train-minus-val', split_file=val_file))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PolypDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='TrainDataset/images', seg_map_path='TrainDataset/masks'),
        split='val',
        split_file=val_file,
        test_set=val_set,
        test_mode=True,
        pipeline=_base_.test_pipeline))
test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type='PolypDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path=f'TestDataset/{name}/images',
                    seg_map_path=f'TestDataset/{name}/masks'),
                test_set=name,
                test_mode=True,
                pipeline=_base_.test_pipeline) for name in test_sets
        ]))

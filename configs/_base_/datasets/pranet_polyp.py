# PraNet polyp split (used by PraNet, Polyp-PVT and KDAS): train on the 1,450
# images of TrainDataset (900 Kvasir-SEG + 550 CVC-ClinicDB), validate and
# test on the five test sets in one pass, with one row of measures per set.
#
#   data/polyp/TrainDataset/{images,masks}
#   data/polyp/TestDataset/<set>/{images,masks}
#
# Arrange downloads with tools/dataset_converters/polyp.py, or write a tiny
# synthetic stand-in with tools/dataset_converters/make_synthetic_polyp.py.
# The configs that use this base set custom_imports=['mmseg_kdas'] and
# default_scope='mmseg' (left out here: bases may not repeat a key).

dataset_type = 'PolypDataset'
data_root = 'data/polyp'
img_scale = (352, 352)
test_sets = [
    'Kvasir', 'CVC-ClinicDB', 'CVC-ColonDB', 'ETIS-LaribPolypDB', 'CVC-300'
]
# PackSegInputs' default meta keys plus the test set of each sample.
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'test_set')

# The reference recipe: every image and its 0/255 mask resized to 352x352
# (PIL bilinear, as torchvision's Resize of the reference), so the training
# masks are soft (float, values in (0, 1) along the edges); the multi-scale
# rates 0.75 / 1 / 1.25 are applied to whole batches by the model's data
# preprocessor (images and soft masks bilinearly), e.g.
#   data_preprocessor=dict(type='BatchAugSegDataPreProcessor', ...,
#       batch_augments=[dict(type='BatchMultiScaleResize',
#                            rates=(0.75, 1.0, 1.25), mode='all')])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPolypAnnotations'),
    dict(
        type='SoftMaskResize',
        scale=img_scale,
        keep_ratio=False,
        backend='pillow'),
    dict(type='PackPolypInputs', meta_keys=meta_keys),
]
# Binarised {0, 1} training masks (nearest-neighbour resize): heads whose
# loss needs labels (softmax cross-entropy), or to train without soft edges:
#   train_dataloader = dict(dataset=dict(pipeline=train_pipeline_binary))
train_pipeline_binary = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPolypAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
# Optional augmentations (off in the reference recipe): random flips and a
# rotation in [-90, 90] degrees, padding with black image / background mask.
# Use with train_dataloader=dict(dataset=dict(pipeline=...)).
flip_rotate_augments = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate', prob=0.5, degree=90, pad_val=0, seg_pad_val=0),
]
train_pipeline_flip_rotate = train_pipeline[:3] + flip_rotate_augments + \
    train_pipeline[3:]
# Ground truth loaded after Resize: it keeps the original image size, at
# which the metric evaluates (predictions are resized back to it).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow'),
    dict(type='LoadPolypAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='TrainDataset/images', seg_map_path='TrainDataset/masks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                data_prefix=dict(
                    img_path=f'TestDataset/{name}/images',
                    seg_map_path=f'TestDataset/{name}/masks'),
                test_set=name,
                test_mode=True,
                pipeline=test_pipeline) for name in test_sets
        ]))
test_dataloader = val_dataloader

val_evaluator = dict(type='PolypMetric')
test_evaluator = val_evaluator

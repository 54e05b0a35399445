# The Kvasir test set of the PraNet split (100 images) as one PolypDataset,
# the one definition shared by the configs that validate and test on Kvasir
# alone. Put this file next to a data config in `_base_` (it defines nothing
# else, so it clashes with no key) and complete it there, e.g.
#   val_dataloader = dict(dataset=dict(
#       _base_.kvasir_test_set, _delete_=True,
#       data_root=_base_.data_root, pipeline=_base_.test_pipeline))
kvasir_test_set = dict(
    type='PolypDataset',
    data_prefix=dict(
        img_path='TestDataset/Kvasir/images',
        seg_map_path='TestDataset/Kvasir/masks'),
    test_set='Kvasir',
    test_mode=True)

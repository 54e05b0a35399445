"""PolypDataset and LoadPolypAnnotations on generated data and bad files."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import ConcatDataset
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image

from mmseg_kdas.datasets import (LoadPolypAnnotations, PolypDataset,
                                 binarize_mask, make_synthetic_polyp_dataset)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'test_set')


def pipeline(size=(32, 32)):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=size, keep_ratio=False),
        dict(type='LoadPolypAnnotations'),
        dict(type='PackSegInputs', meta_keys=META_KEYS),
    ]


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    init_default_scope('mmseg')
    root = str(tmp_path_factory.mktemp('polyp'))
    return make_synthetic_polyp_dataset(
        root,
        num_train=3,
        num_test=2,
        size=(40, 48),
        test_sets=('Kvasir', 'CVC-300'))


def names(dataset):
    return [
        osp.basename(dataset.get_data_info(i)['img_path'])
        for i in range(len(dataset))
    ]


def write_pair(img_dir, mask_dir, stem, size=(20, 24), img_ext='.jpg',
               mask_ext='.png', mask=None):
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    h, w = size
    img = np.full((h, w, 3), 90, np.uint8)
    if mask is None:
        mask = np.zeros((h, w), np.uint8)
        mask[4:12, 6:16] = 255
    assert cv2.imwrite(osp.join(img_dir, stem + img_ext), img)
    assert cv2.imwrite(osp.join(mask_dir, stem + mask_ext), mask)
    return mask


def test_pranet_layout(synthetic):
    train = PolypDataset(
        data_root=synthetic,
        data_prefix=dict(
            img_path='TrainDataset/images',
            seg_map_path='TrainDataset/masks'),
        pipeline=pipeline())
    assert len(train) == 3
    assert train.metainfo['classes'] == ('background', 'polyp')
    info = train.get_data_info(0)
    assert info['test_set'] == 'TrainDataset'
    assert info['img_path'].endswith(osp.join('images', '0000.jpg'))
    assert info['seg_map_path'].endswith(osp.join('masks', '0000.png'))

    test = PolypDataset(
        data_root=synthetic,
        data_prefix=dict(
            img_path='TestDataset/Kvasir/images',
            seg_map_path='TestDataset/Kvasir/masks'),
        pipeline=pipeline(),
        test_mode=True)
    sample = test[1]
    data_sample = sample['data_samples']
    assert data_sample.test_set == 'Kvasir'
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    # the ground truth keeps the original size and is binarised: every
    # mask pixel >= 128 is a polyp (label 1), none is 255 (ignored)
    gt = data_sample.gt_sem_seg.data[0].numpy()
    mask = cv2.imread(test.get_data_info(1)['seg_map_path'], 0)
    assert gt.shape == (40, 48)
    np.testing.assert_array_equal(gt, (mask >= 128).astype(np.int64))
    assert set(np.unique(gt)) == {0, 1}


def test_concat_of_test_sets_keeps_each_set(synthetic):
    cfg = dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type='PolypDataset',
                data_root=synthetic,
                data_prefix=dict(
                    img_path=f'TestDataset/{name}/images',
                    seg_map_path=f'TestDataset/{name}/masks'),
                test_set=name,
                pipeline=pipeline()) for name in ('Kvasir', 'CVC-300')
        ])
    dataset = DATASETS.build(cfg)
    assert isinstance(dataset, ConcatDataset) and len(dataset) == 4
    sets = [dataset[i]['data_samples'].test_set for i in range(4)]
    assert sets == ['Kvasir', 'Kvasir', 'CVC-300', 'CVC-300']


def test_raw_kvasir_seg_layout_with_jpeg_masks(tmp_path):
    root = tmp_path / 'Kvasir-SEG'
    mask = np.zeros((30, 40), np.uint8)
    cv2.ellipse(mask, (20, 15), (12, 8), 0, 0, 360, 255, -1)
    rgb = np.repeat(mask[..., None], 3, axis=2)
    for stem in ('cju0a', 'cju0b'):
        write_pair(str(root / 'images'), str(root / 'masks'), stem,
                   (30, 40), '.jpg', '.jpg', rgb)
    dataset = PolypDataset(data_root=str(root), pipeline=pipeline())
    assert len(dataset) == 2
    data_sample = dataset[0]['data_samples']
    assert data_sample.test_set == 'Kvasir-SEG'
    gt = data_sample.gt_sem_seg.data[0].numpy()
    # JPEG noise near 0 and 255 is gone; the edges may move by a pixel
    assert set(np.unique(gt)) == {0, 1}
    assert (gt != (mask > 127)).mean() < 0.02


def test_raw_cvc_clinicdb_layout_with_tiff(tmp_path):
    root = tmp_path / 'CVC-ClinicDB'
    for i in (1, 2, 10):
        write_pair(str(root / 'Original'), str(root / 'Ground Truth'), str(i),
                   (24, 32), '.tif', '.tif')
    dataset = PolypDataset(
        data_root=str(root),
        data_prefix=dict(img_path='Original', seg_map_path='Ground Truth'),
        pipeline=pipeline())
    assert names(dataset) == ['1.tif', '10.tif', '2.tif']
    gt = dataset[0]['data_samples'].gt_sem_seg.data[0].numpy()
    assert gt.sum() == 8 * 10 and gt.max() == 1
    assert dataset[0]['data_samples'].test_set == 'CVC-ClinicDB'


def test_mixed_suffixes_and_ann_file(tmp_path):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    write_pair(img_dir, mask_dir, 'a', img_ext='.png', mask_ext='.bmp')
    write_pair(img_dir, mask_dir, 'b', img_ext='.JPG', mask_ext='.tiff')
    write_pair(img_dir, mask_dir, 'c')
    (tmp_path / 'split.txt').write_text('c\na\n')
    dataset = PolypDataset(data_root=str(tmp_path), pipeline=pipeline())
    assert len(dataset) == 3
    for i in range(3):
        assert dataset[i]['data_samples'].gt_sem_seg.data.sum() == 80
    subset = PolypDataset(
        data_root=str(tmp_path), ann_file='split.txt', pipeline=pipeline())
    assert names(subset) == ['c.jpg', 'a.png']


def test_missing_mask_is_an_error_when_listing(tmp_path):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    write_pair(img_dir, mask_dir, 'ok')
    write_pair(img_dir, mask_dir, 'lonely')
    os.remove(osp.join(mask_dir, 'lonely.png'))
    with pytest.raises(FileNotFoundError, match='lonely.jpg'):
        PolypDataset(data_root=str(tmp_path), pipeline=pipeline())
    with pytest.raises(FileNotFoundError, match='mask folder not found'):
        PolypDataset(
            data_root=str(tmp_path),
            data_prefix=dict(img_path='images', seg_map_path='nothing'))
    (tmp_path / 'split.txt').write_text('ok\nghost\n')
    os.remove(osp.join(img_dir, 'lonely.jpg'))
    with pytest.raises(FileNotFoundError, match='ghost'):
        PolypDataset(data_root=str(tmp_path), ann_file='split.txt')


def test_two_files_of_one_stem_is_an_error(tmp_path):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    write_pair(img_dir, mask_dir, 'x')
    write_pair(img_dir, mask_dir, 'x', img_ext='.png')
    with pytest.raises(ValueError, match="'x'"):
        PolypDataset(data_root=str(tmp_path))


def test_size_mismatch_is_an_error_when_loading(tmp_path):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    write_pair(img_dir, mask_dir, 'good')
    write_pair(img_dir, mask_dir, 'bad')
    cv2.imwrite(osp.join(mask_dir, 'bad.png'), np.zeros((21, 24), np.uint8))
    dataset = PolypDataset(data_root=str(tmp_path), pipeline=pipeline())
    dataset[1]  # 'good'
    with pytest.raises(RuntimeError, match=r'bad\.png.*21x24.*bad\.jpg'):
        dataset[0]


@pytest.mark.parametrize('which', ['image', 'mask'])
@pytest.mark.parametrize('content', [b'', b'not an image at all'])
def test_unreadable_file_is_an_error_naming_it(tmp_path, which, content):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    write_pair(img_dir, mask_dir, 'broken')
    path = osp.join(img_dir, 'broken.jpg') if which == 'image' else \
        osp.join(mask_dir, 'broken.png')
    with open(path, 'wb') as f:
        f.write(content)
    dataset = PolypDataset(data_root=str(tmp_path), pipeline=pipeline())
    with pytest.raises(RuntimeError) as info:
        dataset[0]
    assert path in str(info.value)


def _truncate(path, keep=0.9):
    """Cut a file at ``keep`` of its bytes, as an interrupted copy does."""
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


def test_truncated_jpeg_is_an_error_naming_it(tmp_path):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    rng = np.random.default_rng(0)
    # a textured image, so that its last 10 % of bytes hold image rows
    write_pair(img_dir, mask_dir, 'cut', size=(64, 80))
    path = osp.join(img_dir, 'cut.jpg')
    assert cv2.imwrite(path, rng.integers(0, 256, (64, 80, 3), np.uint8))
    _truncate(path)
    dataset = PolypDataset(data_root=str(tmp_path), pipeline=pipeline())
    with pytest.raises(RuntimeError) as info:
        dataset[0]
    assert path in str(info.value)


def test_images_only_for_inference(tmp_path):
    img_dir, mask_dir = str(tmp_path / 'images'), str(tmp_path / 'masks')
    write_pair(img_dir, mask_dir, 'a')
    write_pair(img_dir, mask_dir, 'b', size=(30, 24))
    dataset = PolypDataset(
        data_root=str(tmp_path),
        data_prefix=dict(img_path='images', seg_map_path=None),
        test_mode=True,
        pipeline=pipeline())
    assert not dataset.with_masks
    assert names(dataset) == ['a.jpg', 'b.jpg']
    assert 'seg_map_path' not in dataset.get_data_info(0)
    sample = dataset[1]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert sample['data_samples'].ori_shape == (30, 24)
    assert 'gt_sem_seg' not in sample['data_samples']
    # with masks, the same folder has ground truth
    with_masks = PolypDataset(
        data_root=str(tmp_path), test_mode=True, pipeline=pipeline())
    assert with_masks.with_masks
    assert 'gt_sem_seg' in with_masks[1]['data_samples']


def test_load_polyp_annotations_alone(tmp_path):
    write_pair(str(tmp_path), str(tmp_path), 'm', mask_ext='.png')
    results = LoadPolypAnnotations()(
        dict(seg_map_path=str(tmp_path / 'm.png'), ori_shape=(20, 24)))
    assert results['gt_seg_map'].dtype == np.uint8
    assert results['gt_seg_map'].sum() == 80
    assert results['seg_fields'] == ['gt_seg_map']
    with pytest.raises(ValueError, match='m.png is 20x24'):
        LoadPolypAnnotations()(
            dict(seg_map_path=str(tmp_path / 'm.png'), ori_shape=(10, 10)))
    with pytest.raises(OSError, match='nope.png'):
        LoadPolypAnnotations()(dict(seg_map_path=str(tmp_path / 'nope.png')))


def test_binarize_mask_values():
    u8 = np.array([[0, 3, 127, 128, 250, 255]], np.uint8)
    assert binarize_mask(u8).tolist() == [[0, 0, 0, 1, 1, 1]]
    assert binarize_mask(u8 > 100).tolist() == [[0, 0, 1, 1, 1, 1]]
    labels = np.array([[0, 1, 1]], np.uint8)  # already {0, 1}
    assert binarize_mask(labels).tolist() == [[0, 1, 1]]
    assert binarize_mask(np.zeros((2, 2), np.uint8)).sum() == 0
    assert binarize_mask(np.full((2, 2), 255, np.uint8)).sum() == 4
    rgb = np.stack([u8, u8, u8], axis=2)
    rgba = np.concatenate([rgb, np.full_like(u8, 255)[..., None]], axis=2)
    assert binarize_mask(rgb).tolist() == [[0, 0, 0, 1, 1, 1]]
    assert binarize_mask(rgba).tolist() == [[0, 0, 0, 1, 1, 1]]
    u16 = np.array([[0, 30000, 40000, 65535]], np.uint16)
    assert binarize_mask(u16).tolist() == [[0, 0, 1, 1]]
    assert binarize_mask(np.array([[0.2, 0.7]])).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match='negative'):
        binarize_mask(np.array([[-1.0, 1.0]]), name='x.tif')
    with pytest.raises(ValueError, match='shape'):
        binarize_mask(np.zeros((2, 2, 2, 2), np.uint8))


def test_reduce_zero_label_is_refused(tmp_path):
    with pytest.raises(ValueError, match='reduce_zero_label'):
        PolypDataset(data_root=str(tmp_path), reduce_zero_label=True)


def test_base_configs_build(synthetic):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/pranet_polyp.py'))
    assert cfg.val_evaluator == dict(type='PolypMetric')
    assert cfg.test_sets == [
        'Kvasir', 'CVC-ClinicDB', 'CVC-ColonDB', 'ETIS-LaribPolypDB',
        'CVC-300'
    ]
    assert [d.test_set for d in cfg.val_dataloader.dataset.datasets] == \
        cfg.test_sets
    # point the config at generated data holding two of the sets
    train_cfg = cfg.train_dataloader.dataset
    train_cfg.data_root = synthetic
    train = DATASETS.build(train_cfg)
    sample = train[0]
    assert tuple(sample['inputs'].shape) == (3, 352, 352)
    # the reference's soft mask: the 0/255 mask resized by PIL (bilinear)
    soft = sample['data_samples'].gt_sem_seg.data
    assert soft.dtype == torch.float32
    mask = Image.open(train.get_data_info(0)['seg_map_path']).convert('L')
    mask = Image.fromarray(((np.asarray(mask) > 127) * 255).astype(np.uint8))
    expected = np.asarray(mask.resize((352, 352), Image.BILINEAR)) / 255
    np.testing.assert_allclose(soft[0].numpy(), expected, atol=1e-6)
    assert ((soft > 0) & (soft < 1)).any()
    train_cfg.pipeline = cfg.train_pipeline_binary
    binary = DATASETS.build(train_cfg)[0]['data_samples'].gt_sem_seg.data
    assert binary.dtype == torch.int64
    assert set(np.unique(binary)) == {0, 1}
    val_cfg = cfg.val_dataloader.dataset
    val_cfg.datasets = [
        d for d in val_cfg.datasets if d.test_set in ('Kvasir', 'CVC-300')
    ]
    for d in val_cfg.datasets:
        d.data_root = synthetic
    val = DATASETS.build(val_cfg)
    sample = val[3]
    assert sample['data_samples'].test_set == 'CVC-300'
    assert tuple(sample['inputs'].shape) == (3, 352, 352)
    assert tuple(sample['data_samples'].gt_sem_seg.shape) == (40, 48)

    flip_rotate = cfg.train_pipeline_flip_rotate
    assert [t['type'] for t in flip_rotate][3:6] == [
        'RandomFlip', 'RandomFlip', 'RandomRotate'
    ]
    train_cfg.pipeline = flip_rotate
    sample = DATASETS.build(train_cfg)[1]
    soft = sample['data_samples'].gt_sem_seg.data
    assert 0 <= soft.min() and soft.max() <= 1

    kvasir = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/pranet_polyp_kvasir.py'))
    kvasir_val = kvasir.val_dataloader.dataset
    assert kvasir_val.type == 'PolypDataset'
    assert kvasir_val.test_set == 'Kvasir'
    kvasir_val.data_root = synthetic
    assert len(DATASETS.build(kvasir_val)) == 2
    assert kvasir.test_evaluator == dict(type='PolypMetric')

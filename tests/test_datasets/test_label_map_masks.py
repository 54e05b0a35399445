"""A mask that is a label map with more than two values is an error.

Binarised at half its range, a 0 / 1 / 2 label map (as the exports of
multi-class annotation tools have) would be background everywhere; a
0 / 128 / 255 one would merge two classes. Both are refused, naming the file
and its values, at ``polyp.py --check`` and at load time; JPEG noise and
soft edges of a binary mask stay accepted.
"""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import load_tool
from mmengine.registry import init_default_scope

from mmseg_kdas.datasets import (LoadPolypAnnotations, PolypDataset,
                                 binarize_mask, make_synthetic_polyp_dataset)

converter = load_tool('tools/dataset_converters/polyp.py')


def disk_mask(size=(48, 64), value=255):
    """A filled ellipse of ``value`` on 0."""
    mask = np.zeros(size, np.uint8)
    cv2.ellipse(mask, (30, 22), (18, 12), 20, 0, 360, value, -1)
    return mask


def label_map(size=(48, 64)):
    """0 background, 1 and 2 two classes (two halves of the ellipse)."""
    labels = (disk_mask(size) > 0).astype(np.uint8)
    labels[:, 32:][labels[:, 32:] == 1] = 2
    return labels


def test_a_label_map_is_refused_naming_its_values():
    with pytest.raises(ValueError) as err:
        binarize_mask(label_map(), name='mask file m.png')
    message = str(err.value)
    assert message.startswith('mask file m.png is not a binary mask')
    # the values with their shares, and what to do
    assert '0 (' in message and '1 (' in message and '2 (' in message
    assert 'every pixel would be background' in message
    assert '(labels == 1) * 255' in message


def test_a_grey_level_label_map_is_refused():
    grey = disk_mask()
    grey[:, 32:][grey[:, 32:] == 255] = 128  # 0 / 128 / 255: three classes
    with pytest.raises(ValueError, match=r'128 \(') as err:
        binarize_mask(grey, name='g.png')
    assert 'fill areas' in str(err.value)
    # a colour label map of a dark palette: every class below half range
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[label_map() == 1] = (0, 0, 128)
    colour[label_map() == 2] = (0, 128, 0)
    with pytest.raises(ValueError, match=r'\(0, 0, 128\)'):
        binarize_mask(colour, name='c.png')


@pytest.mark.parametrize('quality', [95, 75, 30])
def test_jpeg_noise_near_0_and_255_is_accepted(quality):
    mask = disk_mask()
    ok, buf = cv2.imencode('.jpg', mask, [cv2.IMWRITE_JPEG_QUALITY, quality])
    noisy = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert len(np.unique(noisy)) > 2  # not 0 / 255 any more
    binary = binarize_mask(noisy, name='noisy.jpg')
    # the same mask as the clean one, up to a few edge pixels
    assert (binary != (mask > 0)).mean() < 0.01


def test_soft_edges_are_accepted():
    mask = disk_mask((24, 32))
    up = cv2.resize(mask, (128, 96), interpolation=cv2.INTER_LINEAR)
    assert ((up > 25) & (up < 230)).any()  # soft edges
    assert binarize_mask(up).sum() > 0
    # binary masks of every kind stay what they were
    assert binarize_mask(disk_mask(value=1)).sum() == (disk_mask() > 0).sum()
    assert binarize_mask(disk_mask() > 0).sum() == (disk_mask() > 0).sum()
    assert binarize_mask(np.zeros((8, 8), np.uint8)).sum() == 0


def _data_root(tmp_path):
    root = make_synthetic_polyp_dataset(
        str(tmp_path / 'organ'), num_train=3, num_test=2, size=(48, 64),
        test_sets=('SiteA', ))
    bad = osp.join(root, 'TrainDataset', 'masks', '0001.png')
    assert cv2.imwrite(bad, label_map())
    jpeg = osp.join(root, 'TestDataset', 'SiteA', 'masks', '0000.png')
    mask = cv2.imread(jpeg, cv2.IMREAD_UNCHANGED)
    assert cv2.imwrite(jpeg[:-4] + '.jpg', mask,
                       [cv2.IMWRITE_JPEG_QUALITY, 50])
    os.remove(jpeg)
    return root, bad


def test_check_names_the_label_map_and_passes_jpeg_masks(tmp_path):
    root, bad = _data_root(tmp_path)
    with pytest.raises(ValueError) as err:
        converter.main(['--check', root])
    lines = str(err.value).splitlines()
    assert lines[0] == f'1 problem(s) in {root} (5 image / mask pairs read):'
    assert lines[1].strip().startswith(f'{bad} is not a binary mask')
    assert '2 (' in lines[1]


def test_loading_names_the_label_map(tmp_path):
    init_default_scope('mmseg')
    root, bad = _data_root(tmp_path)
    dataset = PolypDataset(
        data_root=root,
        data_prefix=dict(
            img_path='TrainDataset/images', seg_map_path='TrainDataset/masks'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPolypAnnotations')
        ])
    dataset[0]
    with pytest.raises(RuntimeError, match='0001') as err:
        dataset[1]
    assert f'{bad} is not a binary mask' in str(err.value)
    with pytest.raises(ValueError, match='is not a binary mask'):
        LoadPolypAnnotations()(dict(seg_map_path=bad, ori_shape=(48, 64)))
    # the JPEG mask of the test set loads
    test = PolypDataset(
        data_root=root,
        data_prefix=dict(
            img_path='TestDataset/SiteA/images',
            seg_map_path='TestDataset/SiteA/masks'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPolypAnnotations')
        ])
    assert test[0]['seg_map_path'].endswith('0000.jpg')
    assert set(np.unique(test[0]['gt_seg_map'])) == {0, 1}

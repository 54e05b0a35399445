"""The synthetic polyp data generator and its command line."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np

from mmseg_kdas.datasets import (make_synthetic_polyp_dataset,
                                 make_synthetic_polyp_pair)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def read_tree(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            out[osp.relpath(path, root)] = cv2.imread(path,
                                                      cv2.IMREAD_UNCHANGED)
    return out


def test_layout_values_and_determinism(tmp_path):
    root = make_synthetic_polyp_dataset(
        str(tmp_path / 'a'),
        num_train=3,
        num_test=2,
        size=(48, 40),
        test_sets=('Kvasir', 'ETIS-LaribPolypDB'))
    tree = read_tree(root)
    assert sorted(tree) == sorted([
        *(f'TrainDataset/images/000{i}.jpg' for i in range(3)),
        *(f'TrainDataset/masks/000{i}.png' for i in range(3)),
        *(f'TestDataset/{s}/images/000{i}.jpg' for i in range(2)
          for s in ('Kvasir', 'ETIS-LaribPolypDB')),
        *(f'TestDataset/{s}/masks/000{i}.png' for i in range(2)
          for s in ('Kvasir', 'ETIS-LaribPolypDB')),
    ])
    for path, array in tree.items():
        if path.endswith('.png'):
            assert array.shape == (48, 40) and array.dtype == np.uint8
            assert set(np.unique(array)) == {0, 255}  # always a lesion
            assert 0.01 < (array > 0).mean() < 0.7
        else:
            assert array.shape == (48, 40, 3)
    # the lesion differs from the background it lies on
    img = tree['TrainDataset/images/0000.jpg'].astype(float)
    mask = tree['TrainDataset/masks/0000.png'] > 0
    assert np.abs(img[mask].mean(0) - img[~mask].mean(0)).max() > 10

    again = read_tree(
        make_synthetic_polyp_dataset(
            str(tmp_path / 'b'),
            num_train=3,
            num_test=2,
            size=(48, 40),
            test_sets=('ETIS-LaribPolypDB', )))
    # same seed: same files; a test set does not depend on the others
    for path, array in again.items():
        np.testing.assert_array_equal(array, tree[path])
    other = read_tree(
        make_synthetic_polyp_dataset(
            str(tmp_path / 'c'), num_train=1, num_test=0, seed=1))
    assert not np.array_equal(other['TrainDataset/masks/0000.png'],
                              tree['TrainDataset/masks/0000.png'])


def test_pair_generator():
    rng = np.random.default_rng(3)
    img, mask = make_synthetic_polyp_pair(rng, (16, 20))
    assert img.shape == (16, 20, 3) and mask.shape == (16, 20)
    assert mask.max() == 255


def test_command_line(tmp_path):
    out = str(tmp_path / 'syn')
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/dataset_converters/make_synthetic_polyp.py'),
        out, '--num-train', '2', '--num-test', '1', '--size', '32', '36',
        '--test-sets', 'Kvasir', 'CVC-300'
    ],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True)
    assert proc.returncode == 0, proc.stdout
    assert len(os.listdir(osp.join(out, 'TrainDataset', 'images'))) == 2
    mask = cv2.imread(osp.join(out, 'TestDataset/CVC-300/masks/0000.png'), 0)
    assert mask.shape == (32, 36)

import importlib.util
import os.path as osp
import sys

import cv2
import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'tests', 'data', 'configs')


def load_tool(path: str):
    """Import a tool script of the repository (e.g.
    ``'tools/kd_study.py'``) as a module."""
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_binary_dataset(root: str, num: int = 6, size: int = 40) -> str:
    """Random images with a filled disk labelled 1 (0 elsewhere)."""
    rng = np.random.default_rng(0)
    for sub in ('images', 'masks'):
        import os
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for i in range(num):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        cx, cy = rng.integers(10, size - 10, 2)
        cv2.circle(mask, (int(cx), int(cy)), 8, 1, -1)
        img[mask == 1] = (40, 40, 220)
        cv2.imwrite(osp.join(root, 'images', f'{i}.png'), img)
        cv2.imwrite(osp.join(root, 'masks', f'{i}.png'), mask)
    return root


@pytest.fixture(scope='session')
def binary_data_root(tmp_path_factory):
    return write_binary_dataset(str(tmp_path_factory.mktemp('binary')))


@pytest.fixture(scope='session')
def polyp_root(tmp_path_factory):
    """A synthetic polyp data root: 8 training and 2 test images."""
    from mmseg_kdas.datasets import make_synthetic_polyp_dataset
    return make_synthetic_polyp_dataset(
        str(tmp_path_factory.mktemp('polyp')), num_train=8, num_test=2)


@pytest.fixture(scope='session')
def python():
    return sys.executable

"""Tiny synthetic polyp data sets in the PraNet layout, for tests and demos.

Each image is a textured, vignetted reddish "mucosa" background with one or
two elliptical lesions of random size, orientation, colour and shading; its
mask marks the lesions (0 background, 255 polyp). Nothing here resembles
real endoscopy closely; the point is a deterministic, learnable data set of
the right format that any machine can build in a fraction of a second.

Example:
    >>> import tempfile
    >>> root = make_synthetic_polyp_dataset(tempfile.mkdtemp(), num_train=2,
    ...                                     num_test=1)
    >>> sorted(os.listdir(os.path.join(root, 'TestDataset', 'Kvasir')))
    ['images', 'masks']
"""
import os
import os.path as osp
import zlib
from typing import Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'make_synthetic_polyp_dataset', 'make_synthetic_polyp_pair',
    'write_polyp_pairs'
]


def _smooth_noise(rng: np.random.Generator, size: Tuple[int, int],
                  cell: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled."""
    h, w = size
    gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
    grid = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def make_synthetic_polyp_pair(
        rng: np.random.Generator,
        size: Tuple[int, int] = (64, 64)) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic endoscopy-like image and its lesion mask.

    Args:
        rng: Random generator (the only source of randomness).
        size: ``(height, width)`` of the image, each at least 16.

    Returns:
        ``(image, mask)``: a BGR uint8 image of shape ``(H, W, 3)`` and a
        uint8 mask of shape ``(H, W)`` with values 0 (background) and 255
        (polyp). The mask always has at least one polyp pixel.
    """
    h, w = size
    if h < 16 or w < 16:
        raise ValueError(f'size must be at least (16, 16), got {size}')
    side = min(h, w)

    # Background: pinkish mucosa (BGR), textured, darker towards the corners.
    base = np.array([rng.uniform(60, 110), rng.uniform(70, 120),
                     rng.uniform(150, 210)], np.float32)
    texture = (_smooth_noise(rng, size, 8) - 0.5) * 60
    texture += (_smooth_noise(rng, size, 3) - 0.5) * 25
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy - h / 2) / (h / 2))**2 + ((xx - w / 2) / (w / 2))**2
    vignette = 1.0 - 0.45 * np.clip(r2 / 2, 0, 1)
    img = (base[None, None, :] + texture[..., None]) * vignette[..., None]

    # One or two elliptical lesions, each with its own colour and shading.
    mask = np.zeros(size, np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        axes = (int(rng.uniform(0.08, 0.25) * side) + 3,
                int(rng.uniform(0.08, 0.25) * side) + 3)
        centre = (int(rng.uniform(0.2, 0.8) * w),
                  int(rng.uniform(0.2, 0.8) * h))
        angle = float(rng.uniform(0, 180))
        lesion = np.zeros(size, np.uint8)
        cv2.ellipse(lesion, centre, axes, angle, 0, 360, 255, -1)
        inside = lesion > 0
        colour = np.array([rng.uniform(20, 90), rng.uniform(20, 90),
                           rng.uniform(120, 255)], np.float32)
        # Dome-like shading: brighter near a highlight point of the lesion.
        d2 = ((yy - centre[1] + axes[1] * 0.3)**2 +
              (xx - centre[0] + axes[0] * 0.3)**2) / float(max(axes))**2
        shade = np.clip(1.25 - 0.5 * d2, 0.6, 1.25)
        img[inside] = colour[None, :] * shade[inside][:, None]
        mask |= lesion

    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def write_polyp_pairs(img_dir: str, mask_dir: str, num: int,
                      rng: np.random.Generator, size: Tuple[int, int],
                      prefix: str = '') -> None:
    """Write ``num`` synthetic pairs as ``{prefix}{i:04d}.jpg`` / ``.png``.

    Args:
        img_dir: Folder of the images (created if missing).
        mask_dir: Folder of the masks (created if missing).
        num: Number of pairs.
        rng: Random generator.
        size: ``(height, width)`` of every image.
        prefix: Prefix of the file stems.
    """
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    for i in range(num):
        img, mask = make_synthetic_polyp_pair(rng, size)
        stem = f'{prefix}{i:04d}'
        jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95]
        if not cv2.imwrite(osp.join(img_dir, stem + '.jpg'), img, jpeg):
            raise OSError(f'could not write {osp.join(img_dir, stem)}.jpg')
        if not cv2.imwrite(osp.join(mask_dir, stem + '.png'), mask):
            raise OSError(f'could not write {osp.join(mask_dir, stem)}.png')


def make_synthetic_polyp_dataset(root: str,
                                 num_train: int = 8,
                                 num_test: int = 4,
                                 size: Tuple[int, int] = (64, 64),
                                 test_sets: Sequence[str] = ('Kvasir', ),
                                 seed: int = 0) -> str:
    """Write a synthetic polyp data set in the PraNet layout.

    Layout (images are JPEG, masks PNG with values 0 / 255)::

        root/TrainDataset/images/0000.jpg   root/TrainDataset/masks/0000.png
        root/TestDataset/<Name>/images/...  root/TestDataset/<Name>/masks/...

    The output is a deterministic function of the arguments; the training
    split and each test set (keyed by its name) draw from their own random
    streams, so adding a test set leaves the others unchanged.

    Args:
        root: Output folder (created if missing; existing files of the same
            names are overwritten).
        num_train: Number of training pairs.
        num_test: Number of pairs in each test set.
        size: ``(height, width)`` of every image.
        test_sets: Names of the test sets (folders under ``TestDataset``).
        seed: Base seed.

    Returns:
        ``root``.
    """
    if num_train < 0 or num_test < 0:
        raise ValueError('num_train and num_test must be >= 0, got '
                         f'{num_train} and {num_test}')
    if isinstance(test_sets, str):
        raise TypeError('test_sets must be a sequence of names, got the '
                        f'string {test_sets!r}')
    size = (int(size[0]), int(size[1]))
    train_dir = osp.join(root, 'TrainDataset')
    write_polyp_pairs(
        osp.join(train_dir, 'images'), osp.join(train_dir, 'masks'),
        num_train, np.random.default_rng([seed, 0]), size)
    for name in test_sets:
        if not name or osp.basename(name) != name:
            raise ValueError(f'invalid test set name {name!r}')
        set_dir = osp.join(root, 'TestDataset', name)
        stream = np.random.default_rng([seed, 1, zlib.crc32(name.encode())])
        write_polyp_pairs(
            osp.join(set_dir, 'images'), osp.join(set_dir, 'masks'),
            num_test, stream, size)
    return root

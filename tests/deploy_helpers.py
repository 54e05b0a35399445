"""Tiny models and their calibration for the deployment tests.

The random weights of a tiny model get the batch-norm statistics of the
images they are tested on (:func:`calibrate_batch_norm`), as training
would give them: with PyTorch's default statistics (mean 0, variance 1)
the Polyp-PVT decoder's products of feature maps grow the logits to
thousands, where float32 rounding alone moves them by 1e-2 and
probabilities near 0.5 by up to a quarter of that. Calibrated, the logits
stay within tens, as a trained model's.

:func:`run_tool` runs a tool's ``__main__`` in the test's process;
:func:`one_thread`, imported by a test module, runs it on one thread.
"""
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from mmengine.config import Config

from mmseg_kdas import testing
from mmseg_kdas.testing import tiny_binary_segformer

SIZE = 64
DIMS = [16, 32, 80, 128]
PREPROCESSOR = dict(testing.TEST_PREPROCESSOR, test_cfg=dict(size_divisor=32))


def tiny_polyp_pvt() -> dict:
    """Polyp-PVT on a PVTv2 of 16-128 channels, MLP ratio 4."""
    return testing.tiny_polyp_pvt(
        DIMS, 16, mlp_ratio=4, data_preprocessor=PREPROCESSOR)


def softmax_segformer() -> dict:
    """The tiny SegFormer with two softmax classes."""
    model = tiny_binary_segformer(PREPROCESSOR)
    model['decode_head'].update(
        out_channels=2,
        threshold=None,
        loss_decode=dict(type='CrossEntropyLoss'))
    return model


def config_for(model: dict, data_root: str) -> Config:
    """A test config: the model and a 64 x 64 pillow test pipeline."""
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=False,
             backend='pillow'),
        dict(type='PackSegInputs')
    ]
    return Config(
        dict(
            custom_imports=dict(imports=['mmseg_kdas']),
            default_scope='mmseg',
            model=model,
            test_dataloader=dict(
                batch_size=1,
                dataset=dict(
                    type='PolypDataset',
                    data_root=data_root,
                    data_prefix=dict(img_path='images', seg_map_path='masks'),
                    pipeline=pipeline))))


def calibrate_batch_norm(model: torch.nn.Module, images: np.ndarray) -> None:
    """Set every BN's statistics to those of ``images`` (N x H x W x 3)."""
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().flip(1)
    x = (x - torch.tensor(PREPROCESSOR['mean']).view(1, 3, 1, 1)) / \
        torch.tensor(PREPROCESSOR['std']).view(1, 3, 1, 1)
    model.train()
    with torch.no_grad():
        model(x, mode='tensor')
    model.eval()


def run_tool(monkeypatch, tool: str, *args) -> int:
    """Run a tool's ``__main__`` in this process; return its exit status."""
    monkeypatch.setattr(sys, 'argv', [tool, *map(str, args)])
    try:
        runpy.run_path(osp.join(ROOT, tool), run_name='__main__')
    except SystemExit as exit_:
        if isinstance(exit_.code, int) or exit_.code is None:
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)  # as the interpreter would
        return 1
    return 0


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One CPU thread (tiny models; torch's threads wait long for each
    other on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

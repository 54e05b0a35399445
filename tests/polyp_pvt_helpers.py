"""Shared helpers of the Polyp-PVT tests: reference weights and models.

``reference_state_dict`` regenerates, from a seed, a state dict in the
authors' key layout (``tests/data/polyp_pvt_b{0,2}_keys.txt`` lists every
key and shape of their models, in order). The fingerprint file
``tests/data/polyp_pvt_fingerprint.pt`` holds the outputs of the authors'
own code for these weights and input, written by
``tests/data/make_polyp_pvt_fingerprint.py`` from a checkout of their code.
"""
import copy
import math
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch import Tensor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data')
BASE_MODEL = osp.join(ROOT, 'configs', '_base_', 'models',
                      'polyp_pvt_pvtv2-b2.py')
FINGERPRINT = osp.join(DATA, 'polyp_pvt_fingerprint.pt')
IN_CHANNELS = {'b0': [32, 64, 160, 256], 'b2': [64, 128, 320, 512]}
NUM_PARAMS = {'b0': 3_650_740, 'b2': 25_107_604}


def read_reference_keys(arch: str) -> List[Tuple[str, Tuple[int, ...]]]:
    """Keys and shapes of the authors' Polyp-PVT on PVTv2-``arch``."""
    entries = []
    with open(osp.join(DATA, f'polyp_pvt_{arch}_keys.txt')) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape = line.rstrip('\n').split('\t')
            dims = shape.strip('()').replace(' ', '').split(',')
            entries.append((key, tuple(int(d) for d in dims if d)))
    return entries


def reference_state_dict(arch: str,
                         seed: int = 0) -> Tuple[Dict[str, Tensor], Tensor]:
    """Seeded random weights in reference layout, and a 1x3x64x64 input.

    One ``torch.rand`` draw per float entry, in file order: norm weights and
    running variances in [0.5, 1.5], biases and running means in
    [-0.1, 0.1], other weights uniform with variance 1 / fan_in. The input
    is drawn (``randn``) after the weights from the same generator.
    """
    gen = torch.Generator().manual_seed(seed)
    state_dict = OrderedDict()
    for key, shape in read_reference_keys(arch):
        if key.endswith('num_batches_tracked'):
            state_dict[key] = torch.tensor(0)
            continue
        u = torch.rand(shape, generator=gen)
        if key.endswith('running_var') or (key.endswith('.weight')
                                           and len(shape) == 1):
            value = 0.5 + u
        elif key.endswith(('.bias', 'running_mean')):
            value = 0.2 * (u - 0.5)
        else:
            fan_in = math.prod(shape[1:])
            value = (2 * u - 1) * math.sqrt(3 / fan_in)
        state_dict[key] = value
    image = torch.randn(1, 3, 64, 64, generator=gen)
    return state_dict, image


def build_polyp_pvt(arch: str, **head_overrides):
    """The mmseg Polyp-PVT model of the base config, without pretraining."""
    cfg = copy.deepcopy(Config.fromfile(BASE_MODEL).model)
    cfg.backbone.arch = arch
    cfg.backbone.init_cfg = None
    cfg.decode_head.in_channels = IN_CHANNELS[arch]
    cfg.decode_head.update(head_overrides)
    init_default_scope('mmseg')
    return MODELS.build(cfg)

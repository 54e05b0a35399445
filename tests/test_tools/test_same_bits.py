"""A tiny KDAS run trains to pinned weights.

The digests were recorded with the code of commit e5445ba (before the
teacher cache, the checkpoint files and the loss modules were each moved
into one place), on 2 cores of an AMD EPYC (family 26 model 2, AVX512-BF16)
under the study's CPU settings, which make training bit-identical across
this machine class. A refactor that changes what a KDAS run computes, by
one bit, fails here; a change meant to alter training must say so and
record new digests.
"""
import os.path as osp
import sys

import pytest
from conftest import CONFIGS, ROOT
from test_train import train

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.utils.checkpoint_file import weights_digest

sys.path.insert(0, osp.join(ROOT, 'tests', 'test_teacher_cache'))
from test_teacher_cache import save_teacher  # noqa: E402

# The study's pinned code paths (polyp_experiment.reproducible_env, 2
# threads).
CPU_SETTINGS = {
    'MKL_CBWR': 'AVX2,STRICT',
    'ATEN_CPU_CAPABILITY': 'avx2',
    'ONEDNN_MAX_CPU_ISA': 'AVX2',
    'DNNL_MAX_CPU_ISA': 'AVX2',
    'OMP_NUM_THREADS': '2',
    'MKL_NUM_THREADS': '2',
}

# weights_digest of iter_5.pth of tiny_kdas_resume.py (5 multi-scale
# iterations with the distillation warm-up) from teacher seed 0 on the
# synthetic set of 6 images: the KDAS terms, and the AT baseline's
# backbone sources.
PINNED = {
    'kdas': '5b2c5cf9f9beb4c68777dc9653184ef856d7fc755d3ab1c452d265e35a18399e',
    'at': 'a29adfcdd83e26692d64b99d5550f6005e1ca3e1bdc45ca2e5067eff260de139',
}
# the AT baseline's settings (configs/kd_baselines/at_*.py)
AT_CONFIG = """_base_ = [{base!r}]
model = dict(
    at_weight=1.0,
    at_pairs=[
        dict(student=f'backbone:{{i}}', teacher=f'backbone:{{i}}')
        for i in range(4)
    ],
    loss_at=dict(type='AttentionTransferLoss', p=2.0, loss_weight=500.0),
    sgm_weight=0.0,
    sgm_pairs=[])
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('same_bits')
    data_root = make_synthetic_polyp_dataset(str(root / 'data'),
                                             num_train=6,
                                             num_test=0)
    return dict(data_root=data_root, ckpt=save_teacher(root / 't.pth', 0))


@pytest.mark.parametrize('method', ['kdas', 'at'])
def test_a_tiny_run_ends_with_the_pinned_weights(setup, python, tmp_path,
                                                 monkeypatch, method):
    for name, value in CPU_SETTINGS.items():
        monkeypatch.setenv(name, value)
    config = 'tiny_kdas_resume.py'  # CONFIGS/...; an absolute path as is
    if method == 'at':
        config = str(tmp_path / 'tiny_at.py')
        with open(config, 'w') as f:
            f.write(AT_CONFIG.format(
                base=osp.join(CONFIGS, 'tiny_kdas_resume.py')))
    train(config, tmp_path / 'work', python, setup['data_root'],
          f'model.teacher_ckpt={setup["ckpt"]}')
    assert weights_digest(str(tmp_path / 'work' /
                              'iter_5.pth')) == PINNED[method]

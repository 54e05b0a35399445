"""The Polyp-PVT teacher and student configs train through tools/train.py.

Each run uses the configs as shipped (including the ``Pretrained`` ImageNet
init of the backbone, from a generated ``pretrain/pvt_v2_b*.pth`` in the
official layout) on a generated PraNet-layout data set, shrunk to 64x64
images, 2 iterations and one validation pass over the five test sets.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from polyp_pvt_helpers import ROOT, read_reference_keys

from mmseg_kdas.datasets.synthetic import make_synthetic_polyp_dataset
from mmseg_kdas.models.backbones import PVTv2

TEST_SETS = ('Kvasir', 'CVC-ClinicDB', 'CVC-ColonDB', 'ETIS-LaribPolypDB',
             'CVC-300')
CONFIG = osp.join(ROOT, 'configs', 'polyp_pvt',
                  'polyp-pvt_pvtv2-{}_1xb16-100e_pranet-352x352.py')


def _options():
    options = [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
        'train_dataloader.dataset.pipeline.2.scale=(64,64)',
        'env_cfg.cudnn_benchmark=False'
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False'
        ]
    for i in range(len(TEST_SETS)):
        options.append(
            f'val_dataloader.dataset.datasets.{i}.pipeline.1.scale=(64,64)')
    return options


@pytest.mark.parametrize('arch', ['b0', 'b2'])
def test_config_trains_and_validates(tmp_path, arch):
    make_synthetic_polyp_dataset(
        str(tmp_path / 'data' / 'polyp'),
        num_train=4,
        num_test=1,
        size=(64, 64),
        test_sets=TEST_SETS)
    # an ImageNet file in the official layout (with the classifier head)
    pretrained = PVTv2(arch=arch)
    pretrained.init_weights()
    state = dict(pretrained.state_dict())
    state['head.weight'] = torch.zeros(1000, pretrained.embed_dims[-1])
    state['head.bias'] = torch.zeros(1000)
    os.makedirs(tmp_path / 'pretrain')
    torch.save(state, tmp_path / 'pretrain' / f'pvt_v2_{arch}.pth')

    env = dict(os.environ, OMP_NUM_THREADS='2')
    env['PYTHONPATH'] = os.pathsep.join([ROOT, env.get('PYTHONPATH', '')])
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'),
            CONFIG.format(arch), '--work-dir', 'work', '--cfg-options',
            *_options()
        ],
        cwd=tmp_path,  # the configs read data/polyp and pretrain/ from here
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    log = proc.stdout
    assert proc.returncode == 0, log[-4000:]
    num_tensors = sum(1 for key, _ in read_reference_keys(arch)
                      if key.startswith('backbone.'))
    assert f'PVTv2: loaded {num_tensors} tensors from pretrain/' in log
    assert 'decode.loss_structure_p1' in log
    assert 'decode.loss_structure_p2' in log
    assert 'CVC-300/mDice' in log

    checkpoint = torch.load(
        tmp_path / 'work' / 'epoch_1.pth', weights_only=True)
    trained = checkpoint['state_dict']['backbone.patch_embed1.proj.weight']
    start = state['patch_embed1.proj.weight']
    # two batches, each trained at the three multi-scale rates: six AdamW
    # steps of lr 1e-4 from the pretrained weights
    assert {int(s['step'])
            for s in checkpoint['optimizer']['state'].values()} == {6}
    step = (trained - start).abs().max().item()
    assert 0 < step < 6.5e-4

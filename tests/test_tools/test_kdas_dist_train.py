"""A tiny KDAS config trained by two gloo processes (tools/dist_train.sh)."""
import glob
import json
import math
import os.path as osp

import pytest
import torch
from conftest import CONFIGS
from test_train import load, run_tool

from mmseg_kdas.datasets.synthetic import make_synthetic_polyp_dataset


@pytest.fixture(scope='module')
def polyp_root(tmp_path_factory):
    return make_synthetic_polyp_dataset(
        str(tmp_path_factory.mktemp('polyp')), num_train=8, num_test=2)


def test_kdas_two_gloo_processes(tmp_path, python, polyp_root):
    work_dir = tmp_path / 'kdas'
    run_tool([
        'bash', 'tools/dist_train.sh',
        osp.join(CONFIGS, 'tiny_kdas.py'), '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={polyp_root}'
    ], work_dir, python)

    # every logged iteration has finite KDAS terms, each on its own
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1, scalars
    with open(scalars[0]) as f:
        logs = [json.loads(line) for line in f if line.strip()]
    logs = [log for log in logs if 'loss' in log]
    assert [log['step'] for log in logs] == [1, 2, 3, 4]
    for log in logs:
        terms = {k: v for k, v in log.items() if 'loss' in k}
        assert any(k.startswith('loss_at') for k in terms), terms
        assert any(k.startswith('loss_sgm') for k in terms), terms
        assert any(k.startswith('seg.') for k in terms), terms
        assert all(math.isfinite(v) for v in terms.values()), terms

    # the distiller checkpoint and the student-only export
    ckpt = load(work_dir / 'iter_4.pth')
    assert any(k.startswith('teacher.') for k in ckpt['state_dict'])
    student = load(work_dir / 'iter_4_student.pth')
    assert student['state_dict']
    assert not any(k.startswith(('teacher.', 'student.'))
                   for k in student['state_dict'])
    for key, value in student['state_dict'].items():
        torch.testing.assert_close(value, ckpt['state_dict']['student.' +
                                                             key])

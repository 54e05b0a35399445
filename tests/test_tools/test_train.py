"""tools/train.py and tools/dist_train.sh on a tiny CPU run."""
import os
import os.path as osp
import signal
import subprocess

import pytest
import torch
from conftest import CONFIGS, ROOT

from mmseg_kdas.datasets import make_synthetic_polyp_dataset


def run_tool(args, work_dir, python, check=True):
    """Run a tool of this checkout; ``--work-dir`` is added unless None."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [osp.join(ROOT, 'tests', 'data'), ROOT, env.get('PYTHONPATH', '')])
    env['PYTHON'] = python
    env.setdefault('OMP_NUM_THREADS', '1')
    proc = subprocess.run(
        args + ([] if work_dir is None else ['--work-dir', str(work_dir)]),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n'
                    f'{proc.stdout[-4000:]}')
    return proc


def train(cfg, work_dir, python, data_root, *extra, check=True):
    return run_tool([
        python, 'tools/train.py',
        osp.join(CONFIGS, cfg), '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}', *extra
    ], work_dir, python, check)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_train_prints_no_pkg_resources_warning(tmp_path, python,
                                               binary_data_root):
    # mmengine's Config.fromfile imports and reloads pkg_resources for the
    # mmseg:: base config; setuptools < 81 warns at each
    proc = train('tiny_segformer.py', tmp_path, python, binary_data_root,
                 'train_cfg.max_iters=1')
    assert 'pkg_resources' not in proc.stdout, proc.stdout[-3000:]


def kill_and_resume(tmp_path, python, data_root, cfg, kill_cfg, kill_iter,
                    last_iter):
    """Run ``cfg`` straight, and ``kill_cfg`` (SIGKILL after ``kill_iter``)
    resumed with ``cfg``; check both end with the same weights, to the bit.

    Returns:
        The killed run's work dir.
    """
    straight = tmp_path / 'straight'
    train(cfg, straight, python, data_root)

    killed = tmp_path / 'killed'
    proc = train(kill_cfg, killed, python, data_root, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    assert osp.isfile(killed / f'iter_{kill_iter}.pth')
    assert not osp.exists(killed / f'iter_{last_iter}.pth')
    train(cfg, killed, python, data_root, '--resume')

    final = load(killed / f'iter_{last_iter}.pth')
    ref = load(straight / f'iter_{last_iter}.pth')
    assert final['meta']['iter'] == ref['meta']['iter'] == last_iter
    assert final['state_dict'].keys() == ref['state_dict'].keys()
    for key, value in ref['state_dict'].items():
        assert torch.equal(final['state_dict'][key], value), key
    return killed


def test_resume_after_kill(tmp_path, python, binary_data_root):
    killed = kill_and_resume(tmp_path, python, binary_data_root,
                             'tiny_segformer_record.py',
                             'tiny_segformer_kill.py', 3, 6)
    start = load(killed / 'start_rank0.pth')
    ckpt3 = load(killed / 'iter_3.pth')
    # The resumed run starts at iteration 3 with the weights, optimizer
    # state and logged history of the checkpoint ...
    assert start['iter'] == 3
    assert start['state_dict'].keys() == ckpt3['state_dict'].keys()
    for key, value in ckpt3['state_dict'].items():
        assert torch.equal(start['state_dict'][key], value), key
    # ... 3 iterations of 3 multi-scale optimiser steps each
    steps = [s['step'] for s in start['optimizer']['state'].values()]
    assert steps and all(int(s) == 9 for s in steps)
    assert len(start['loss_history']) == 3


def test_kdas_resume_restores_warmup_and_multiscale_phase(
        tmp_path, python):
    # resumed at iteration 2: the next rate is the third (1.5, not the
    # first again) and the warm-up multiplier is 2 / 4, not 0
    data_root = make_synthetic_polyp_dataset(
        str(tmp_path / 'data'), num_train=6, num_test=0)
    killed = kill_and_resume(tmp_path, python, data_root,
                             'tiny_kdas_resume.py',
                             'tiny_kdas_resume_kill.py', 2, 5)
    # the exported students agree too
    ref = load(tmp_path / 'straight' / 'iter_5_student.pth')['state_dict']
    final = load(killed / 'iter_5_student.pth')['state_dict']
    assert final.keys() == ref.keys()
    for key, value in ref.items():
        assert torch.equal(final[key], value), key


def test_dist_train_two_gloo_processes(tmp_path, python, binary_data_root):
    work_dir = tmp_path / 'dist'
    run_tool([
        'bash', 'tools/dist_train.sh',
        osp.join(CONFIGS, 'tiny_segformer_record.py'), '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={binary_data_root}'
    ], work_dir, python)
    for rank in (0, 1):
        assert load(work_dir / f'start_rank{rank}.pth')['world_size'] == 2
    # the ranks step with one all-reduced gradient: the same weights (the
    # head's BatchNorm statistics are each rank's own: buffers are not
    # broadcast, as in mmseg's GPU runs)
    end0, end1 = (load(work_dir / f'end_rank{rank}.pth')['state_dict']
                  for rank in (0, 1))
    assert end0.keys() == end1.keys()
    for key, value in end0.items():
        if not key.endswith(('running_mean', 'running_var')):
            assert torch.equal(end1[key], value), key
    ckpt = load(work_dir / 'iter_6.pth')
    assert ckpt['meta']['iter'] == 6
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.is_floating_point())

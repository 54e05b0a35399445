"""tools/cache_teacher.py, then training from the cache: single process,
resumed, two gloo processes, and a cache filled by two processes."""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from conftest import CONFIGS, ROOT
from test_train import load, run_tool, train

from mmseg_kdas.datasets import make_synthetic_polyp_dataset

sys.path.insert(0, osp.join(ROOT, 'tests', 'test_teacher_cache'))
from test_teacher_cache import save_teacher  # noqa: E402

CFG = 'tiny_kdas_cache.py'
# Student weights of a cached run against the online one after 5 AdamW
# steps (lr 1e-3): the teacher maps agree to float rounding (a batch of
# other images changes the last bits of the teacher's convolutions).
WEIGHTS_ATOL = 1e-5


def cache_tool(args, python):
    return run_tool(args, None, python)


@pytest.fixture(scope='module')
def cached(tmp_path_factory, python):
    root = tmp_path_factory.mktemp('cached_runs')
    data_root = make_synthetic_polyp_dataset(
        str(root / 'data'), num_train=6, num_test=0)
    ckpt = save_teacher(root / 'teacher.pth', 0)
    cache = str(root / 'cache')
    proc = cache_tool([
        python, 'tools/cache_teacher.py',
        osp.join(CONFIGS, CFG), '--out', cache, '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}',
        f'model.teacher_ckpt={ckpt}'
    ], python)
    assert 'wrote' in proc.stdout and osp.isdir(cache), proc.stdout
    return dict(root=root, data_root=data_root, ckpt=ckpt, cache=cache)


def options(setup, with_cache=True):
    opts = [f'model.teacher_ckpt={setup["ckpt"]}']
    if with_cache:
        opts.append(f'model.teacher_cache={setup["cache"]}')
    return opts


def assert_same_student(a, b, atol=WEIGHTS_ATOL):
    a, b = load(a)['state_dict'], load(b)['state_dict']
    keys = [k for k in a if k.startswith('student.')]
    assert keys and keys == [k for k in b if k.startswith('student.')]
    for key in keys:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol)


def test_cached_training_matches_the_online_teacher(cached, python, tmp_path):
    online, from_cache = tmp_path / 'online', tmp_path / 'cache'
    train(CFG, online, python, cached['data_root'],
          *options(cached, with_cache=False))
    proc = train(CFG, from_cache, python, cached['data_root'],
                 *options(cached))
    assert 'TeacherCacheHook: 6 training images' in proc.stdout
    assert 'the teacher is neither built nor run' in proc.stdout
    assert_same_student(online / 'iter_5.pth', from_cache / 'iter_5.pth')
    ckpt = load(from_cache / 'iter_5.pth')['state_dict']
    assert not any(k.startswith('teacher.') for k in ckpt)
    # the student twin ships as usual
    assert load(from_cache / 'iter_5_student.pth')['state_dict']


def test_cached_run_resumes(cached, python, tmp_path):
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    train('tiny_kdas_resume.py', straight, python, cached['data_root'],
          *options(cached))
    proc = train('tiny_kdas_resume_kill.py', killed, python,
                 cached['data_root'], *options(cached), check=False)
    assert proc.returncode == -9, proc.stdout[-3000:]
    assert not osp.exists(killed / 'iter_5.pth')
    train('tiny_kdas_resume.py', killed, python, cached['data_root'],
          *options(cached), '--resume')
    # a resumed run continues bit for bit
    assert_same_student(straight / 'iter_5.pth', killed / 'iter_5.pth',
                        atol=0)


def test_cached_run_on_two_gloo_processes(cached, python, tmp_path):
    work_dir = tmp_path / 'dist'
    proc = run_tool([
        'bash', 'tools/dist_train.sh',
        osp.join(CONFIGS, CFG), '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={cached["data_root"]}',
        *options(cached)
    ], work_dir, python)
    assert proc.stdout.count('TeacherCacheHook: 6 training images') >= 1
    ckpt = load(work_dir / 'iter_5.pth')
    assert ckpt['meta']['iter'] == 5
    assert not any(k.startswith('teacher.') for k in ckpt['state_dict'])
    assert all(
        torch.isfinite(v).all() for v in ckpt['state_dict'].values()
        if v.is_floating_point())


def test_two_processes_fill_the_same_cache(cached, python, tmp_path):
    def fill(out, *launch):
        return cache_tool([
            python, *launch, 'tools/cache_teacher.py',
            osp.join(CONFIGS, CFG), '--out', out, '--batch-size', '1',
            '--cfg-options',
            f'train_dataloader.dataset.data_root={cached["data_root"]}',
            f'model.teacher_ckpt={cached["ckpt"]}'
        ] + (['--launcher', 'pytorch'] if launch else []), python)

    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    fill(one)
    proc = fill(two, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                '--master_port=29517')
    assert '[rank 1] 3/3 images' in proc.stdout, proc.stdout
    files = sorted(f for f in os.listdir(one) if f.endswith('.npy'))
    assert len(files) == 6
    assert files == sorted(f for f in os.listdir(two) if f.endswith('.npy'))
    for name in files:
        a, b = np.load(osp.join(one, name)), np.load(osp.join(two, name))
        # every row was written, each by one of the processes, and holds
        # what one process computes image by image
        assert (np.abs(b).reshape(len(b), -1).max(axis=1) > 0).all(), name
        assert np.array_equal(a, b), name

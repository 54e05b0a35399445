"""A tiny KDAS config trained by two gloo processes (tools/dist_train.sh)."""
import glob
import json
import math
import os.path as osp

import pytest
import torch
from conftest import CONFIGS
from test_train import load, run_tool

# tiny_kdas.py with GroupNorm in the student's head, each rank's final
# weights saved: 4 iterations of AdamW at lr 1e-3, batch 2
CFG = osp.join(CONFIGS, 'tiny_kdas_dist.py')
ITERS, LR = 4, 1e-3


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory, python, polyp_root):
    """The work dir of CFG trained by two gloo processes."""
    work_dir = tmp_path_factory.mktemp('kdas')
    run_tool([
        'bash', 'tools/dist_train.sh', CFG, '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={polyp_root}'
    ], work_dir, python)
    return work_dir


def test_kdas_two_gloo_processes(two_processes):
    work_dir = two_processes
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


def test_two_processes_train_as_one_process_of_their_batch(
        two_processes, tmp_path, python, polyp_root):
    # 2 processes of batch 2 against 1 process of batch 4, from one seed:
    # the InfiniteSampler gives rank r the places r, r + 2, ... of one
    # seeded permutation, so every iteration trains on the same 4 images;
    # every loss term is a mean over the images, DDP averages the ranks'
    # gradients, and the student has no BatchNorm (its batch statistics
    # would differ; the CPU has no SyncBN)
    one = tmp_path / 'one'
    run_tool([
        python, 'tools/train.py', CFG, '--cfg-options',
        f'train_dataloader.dataset.data_root={polyp_root}',
        'train_dataloader.batch_size=4'
    ], one, python)
    rank0, rank1 = (load(two_processes / f'end_rank{r}.pth')
                    for r in (0, 1))
    single = load(one / 'end_rank0.pth')
    assert rank0['iter'] == rank1['iter'] == single['iter'] == ITERS
    rank0, rank1 = rank0['state_dict'], rank1['state_dict']
    single = single['state_dict']
    assert rank0.keys() == rank1.keys() == single.keys()

    # the ranks step with one all-reduced gradient: the same bits
    for key, value in rank0.items():
        assert torch.equal(rank1[key], value), key

    # one process differs by rounding only (another order of the sums):
    # 1.9e-7 at most, measured; 1e-6 allowed. A run on other images
    # (batch 2 alone) differs by 7.5e-3. Apart: the key biases of the
    # attention, whose gradient is zero but for rounding (the softmax over
    # the keys ignores a bias added to every key), and which AdamW,
    # normalising that noise, moves by up to LR a step (8.3e-5 measured)
    worst = {}
    for key, value in single.items():
        diff = (rank0[key] - value).abs()
        if key.endswith('attn.kv.bias'):  # keys, then values
            keys = diff.numel() // 2
            assert diff[:keys].max() <= ITERS * LR, key
            diff = diff[keys:]
        worst[key] = diff.max().item()
    key = max(worst, key=worst.get)
    assert worst[key] <= 1e-6, (key, worst[key])

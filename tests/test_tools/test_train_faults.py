"""Faults during a tiny KDAS run: kills and a full disk during checkpoint
saves, a checkpoint truncated afterwards. Every run must end with the
weights of an uninterrupted one, to the bit.

The faults come from ``KDASTestWriteFaultHook`` (tests/data/kdas_test_hooks
.py), armed by ``KDAS_TEST_FAULT=<kill|enospc>:<file name>:<bytes>``: the
process dies (or its write fails) that many bytes into writing that file,
or the temporary file of an atomic write of it.
"""
import glob
import os
import shutil
import signal

import pytest
import torch
from test_train import load, train

from mmseg_kdas.engine import load_from_local_weights_only

CFG = 'tiny_kdas_resume_faults.py'  # 5 iterations, checkpoints 2, 4, 5


@pytest.fixture(scope='module')
def data_root(polyp_root):
    return polyp_root


@pytest.fixture(scope='module')
def straight(tmp_path_factory, python, data_root):
    """The work dir of an uninterrupted run."""
    work_dir = tmp_path_factory.mktemp('straight')
    train(CFG, work_dir, python, data_root)
    return work_dir


def faulty(fault, work_dir, python, data_root, *extra):
    """Run with ``KDAS_TEST_FAULT=fault``; return the finished process."""
    os.environ['KDAS_TEST_FAULT'] = fault
    try:
        return train(CFG, work_dir, python, data_root, *extra, check=False)
    finally:
        del os.environ['KDAS_TEST_FAULT']


def assert_same_weights(work_dir, straight):
    for name in ('iter_5.pth', 'iter_5_student.pth'):
        ref = load(straight / name)['state_dict']
        got = load(work_dir / name)['state_dict']
        assert got.keys() == ref.keys(), name
        for key, value in ref.items():
            assert torch.equal(got[key], value), f'{name}: {key}'


def assert_no_short_file(work_dir):
    """Every file under its final name is whole; last_checkpoint names one.
    """
    for path in glob.glob(str(work_dir / '*.pth')):
        load_from_local_weights_only(path, map_location='cpu')  # CRC too
    record = work_dir / 'last_checkpoint'
    if record.exists():
        named = record.read_text().strip()
        assert named, f'{record} is empty'
        load_from_local_weights_only(named, map_location='cpu')
    config = work_dir / 'student_config.py'
    if config.exists():
        compile(config.read_text(), str(config), 'exec')


def test_full_disk_and_sigkill_during_saves_then_resume(
        tmp_path, python, data_root, straight):
    work_dir = tmp_path / 'faults'
    # a save that fails on a full disk stops the run, naming the file; the
    # previous checkpoint stays intact and named
    proc = faulty('enospc:iter_4.pth:4096', work_dir, python, data_root)
    assert proc.returncode != 0
    assert 'No space left on device' in proc.stdout, proc.stdout[-3000:]
    assert f'writing {work_dir / "iter_4.pth"} failed' in proc.stdout
    assert not (work_dir / 'iter_4.pth').exists()
    assert_no_short_file(work_dir)
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(
        work_dir / 'iter_2.pth')
    # then three runs killed at three points of a save, each resumed by the
    # next
    for fault in [
            'kill:iter_4.pth:4096',  # in the checkpoint's data
            'kill:last_checkpoint:0',  # checkpoint written, not recorded
            'kill:iter_5_student.pth:4096',  # in its student export
    ]:
        proc = faulty(fault, work_dir, python, data_root, '--resume')
        assert proc.returncode == -signal.SIGKILL, (fault,
                                                    proc.stdout[-3000:])
        assert_no_short_file(work_dir)
    train(CFG, work_dir, python, data_root, '--resume')
    assert_same_weights(work_dir, straight)
    # the killed saves' temporary files were removed by the next runs
    assert not glob.glob(str(work_dir / '.*.tmp'))


def test_resume_passes_over_a_truncated_checkpoint(tmp_path, python,
                                                   data_root, straight):
    # a power loss after the save, or a bad copy: the newest checkpoint,
    # named by last_checkpoint, is short
    work_dir = tmp_path / 'truncated'
    shutil.copytree(straight, work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_5.pth'))
    newest = work_dir / 'iter_5.pth'
    newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])
    for student in work_dir.glob('*_student.pth'):
        student.unlink()

    # named explicitly, it is an error that says what is wrong with it
    proc = train(CFG, work_dir, python, data_root, '--resume', str(newest),
                 check=False)
    assert proc.returncode != 0
    assert f'{newest} is truncated or corrupt' in proc.stdout, \
        proc.stdout[-3000:]
    assert 'weights-only' not in proc.stdout

    # --resume alone passes over it, saying so, and resumes from iter_4
    proc = train(CFG, work_dir, python, data_root, '--resume')
    assert (f'--resume: passing over {newest}' in proc.stdout
            and f'resuming from {work_dir / "iter_4.pth"}' in proc.stdout), \
        proc.stdout[-3000:]
    assert_same_weights(work_dir, straight)

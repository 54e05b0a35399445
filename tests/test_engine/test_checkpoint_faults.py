"""Damaged checkpoint files: named as truncated or corrupt wherever one is
read, passed over by ``--resume``'s choice; atomic checkpoint writes."""
import os.path as osp
import sys

import pytest
import torch
from conftest import ROOT
from kdas_helpers import build_distiller, tiny_list_model
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, load_checkpoint, save_checkpoint
from mmseg.registry import MODELS

from mmseg_kdas.engine.checkpoint import (AtomicLocalBackend,
                                          find_resumable_checkpoint,
                                          load_from_local_weights_only)
from mmseg_kdas.models.backbones import PVTv2
from mmseg_kdas.utils.atomic import atomic_torch_save
from mmseg_kdas.utils.checkpoint_file import (CorruptCheckpointError,
                                              load_state_dict_file)

sys.path.insert(0, osp.join(ROOT, 'tests', 'data'))
from kdas_test_hooks import write_fault  # noqa: E402

DAMAGE = ['empty', 'header', 'half', 'last_bytes', 'flipped_byte']


def _save(path, state_dict=None):
    state_dict = state_dict or dict(w=torch.randn(64, 64), b=torch.zeros(3))
    torch.save(dict(state_dict=state_dict, meta=dict(iter=1)), str(path))
    return str(path)


def _damage(path, how):
    data = bytearray(open(path, 'rb').read())
    cut = dict(empty=0, header=30, half=len(data) // 2,
               last_bytes=len(data) - 10).get(how)
    if cut is not None:
        data = data[:cut]
    else:  # a flipped bit in the tensor data: torch.load takes it as is
        data[len(data) // 2] ^= 0x10
    open(path, 'wb').write(bytes(data))
    return path


def _objects(path):
    torch.save({'hub': HistoryBuffer([1.0], [1])}, str(path))
    return str(path)


@pytest.mark.parametrize('how', DAMAGE)
def test_a_damaged_file_is_named_truncated_or_corrupt(tmp_path, how):
    path = _damage(_save(tmp_path / 'iter_5.pth'), how)
    for load in (load_from_local_weights_only, load_state_dict_file,
                 lambda p: CheckpointLoader.load_checkpoint(p, 'cpu')):
        with pytest.raises(CorruptCheckpointError) as err:
            load(path)
        assert f'{path} is truncated or corrupt' in str(err.value)


def test_a_file_holding_objects_is_told_apart(tmp_path):
    path = _objects(tmp_path / 'objects.pth')
    with pytest.raises(RuntimeError, match='cannot be loaded weights-only'):
        try:
            load_from_local_weights_only(path)
        except CorruptCheckpointError:
            pytest.fail('an intact file that holds objects is not corrupt')
    with pytest.raises(ValueError, match='cannot be read weights-only'):
        load_state_dict_file(path)


def test_truncated_teacher_pretrained_and_load_from_name_the_file(tmp_path):
    teacher = MODELS.build(tiny_list_model(16))
    path = _damage(_save(tmp_path / 'teacher.pth', teacher.state_dict()),
                   'half')
    with pytest.raises(CorruptCheckpointError,
                       match=f'{path} is truncated or corrupt'):
        build_distiller(teacher_ckpt=path)

    backbone = PVTv2(
        arch='b0', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CorruptCheckpointError, match='truncated or corrupt'):
        backbone.init_weights()

    # load_from, tools/test.py and the exporter load through mmengine
    with pytest.raises(CorruptCheckpointError, match='truncated or corrupt'):
        load_checkpoint(teacher, path, map_location='cpu')


def _run(tmp_path, steps, last):
    for step in steps:
        _save(tmp_path / f'iter_{step}.pth')
    if last is not None:
        (tmp_path / 'last_checkpoint').write_text(last)
    return str(tmp_path)


def test_resume_choice_passes_over_damaged_checkpoints(tmp_path):
    work_dir = _run(tmp_path, [2, 4, 5], str(tmp_path / 'iter_5.pth'))
    assert find_resumable_checkpoint(work_dir) == (str(tmp_path /
                                                       'iter_5.pth'), [])
    _damage(str(tmp_path / 'iter_5.pth'), 'half')
    _damage(str(tmp_path / 'iter_4.pth'), 'flipped_byte')
    path, skipped = find_resumable_checkpoint(work_dir)
    assert path == str(tmp_path / 'iter_2.pth')
    assert [p for p, _ in skipped] == [
        str(tmp_path / 'iter_5.pth'),
        str(tmp_path / 'iter_4.pth')
    ]


def test_resume_choice_follows_last_checkpoint(tmp_path):
    # a newer numbered file than last_checkpoint's (an older run's) is not
    # taken; an empty last_checkpoint falls back to the newest file
    work_dir = _run(tmp_path, [2, 4, 8], str(tmp_path / 'iter_4.pth'))
    assert find_resumable_checkpoint(work_dir)[0] == str(tmp_path /
                                                         'iter_4.pth')
    (tmp_path / 'last_checkpoint').write_text('')
    path, skipped = find_resumable_checkpoint(work_dir)
    assert path == str(tmp_path / 'iter_8.pth')
    assert skipped == [(str(tmp_path / 'last_checkpoint'), 'empty')]
    assert find_resumable_checkpoint(str(tmp_path / 'none')) == (None, [])


def test_resume_choice_stops_at_an_intact_file_with_objects(tmp_path):
    work_dir = _run(tmp_path, [2], str(tmp_path / 'iter_4.pth'))
    _objects(tmp_path / 'iter_4.pth')
    with pytest.raises(RuntimeError, match='cannot be loaded weights-only'):
        find_resumable_checkpoint(work_dir)


def test_checkpoints_are_written_through_the_atomic_backend(tmp_path):
    path = str(tmp_path / 'iter_1.pth')
    assert isinstance(get_file_backend(path), AtomicLocalBackend)
    save_checkpoint(dict(state_dict=dict(w=torch.ones(2))), path)
    # a save that fails on a full disk keeps the previous file and names it
    with write_fault('enospc', 'iter_1.pth', 100):
        with pytest.raises(OSError, match=f'writing {path} failed'):
            save_checkpoint(dict(state_dict=dict(w=torch.zeros(1000))),
                            path)
    assert torch.equal(
        load_from_local_weights_only(path)['state_dict']['w'], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_1.pth']


def test_atomic_torch_save_names_the_file_on_a_full_disk(tmp_path):
    # torch.save turns the OSError into a RuntimeError of its zip writer
    path = str(tmp_path / 'student.pth')
    with write_fault('enospc', 'student.pth', 100):
        with pytest.raises(OSError, match=f'writing {path} failed'):
            atomic_torch_save(dict(w=torch.zeros(1000)), path)
    assert not osp.exists(path)

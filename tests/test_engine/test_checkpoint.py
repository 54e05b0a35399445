import io
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmseg_kdas.engine import (from_plain, load_from_local_weights_only,
                               to_plain)


def _hub_state():
    hub = MessageHub.get_instance('test_plain_checkpoint')
    for i in range(5):
        hub.update_scalar('train/loss', np.float32(0.5 / (i + 1)))
        hub.update_scalar('train/lr', 1e-4 * (i + 1))
    hub.update_info('best_score', np.float64(0.8125))
    hub.update_info('iter', 5)
    return hub.state_dict()


def _weights_only_roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_raw_message_hub_state_is_refused_weights_only():
    # The failure the hook exists for: numpy state does not load weights-only.
    with pytest.raises(pickle.UnpicklingError):
        _weights_only_roundtrip(_hub_state())


def test_plain_state_roundtrips_exactly_weights_only():
    state = _hub_state()
    loaded = from_plain(_weights_only_roundtrip(to_plain(state)))

    for key, buffer in state['log_scalars'].items():
        restored = loaded['log_scalars'][key]
        assert isinstance(restored, HistoryBuffer)
        assert restored.max_length == buffer.max_length
        np.testing.assert_array_equal(restored._log_history,
                                      buffer._log_history)
        assert restored._log_history.dtype == buffer._log_history.dtype
        np.testing.assert_array_equal(restored._count_history,
                                      buffer._count_history)
        assert restored.mean(3) == buffer.mean(3)
    best = loaded['runtime_info']['best_score']
    assert isinstance(best, np.float64) and best == 0.8125
    assert loaded['runtime_info']['iter'] == 5
    assert loaded['resumed_keys'] == state['resumed_keys']


def test_plain_keeps_tensors_and_tuples():
    obj = dict(t=torch.arange(3), pair=(1, 'a'), arr=np.eye(2, dtype=np.int64))
    out = from_plain(_weights_only_roundtrip(to_plain(obj)))
    assert torch.equal(out['t'], torch.arange(3))
    assert out['pair'] == (1, 'a')
    np.testing.assert_array_equal(out['arr'], np.eye(2, dtype=np.int64))
    assert out['arr'].dtype == np.int64


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match='dtype object'):
        to_plain({'x': np.array([object()])})


def test_local_loader_is_weights_only(tmp_path):
    ok = tmp_path / 'ok.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, ok)
    assert torch.equal(
        load_from_local_weights_only(str(ok))['state_dict']['w'],
        torch.ones(2))

    evil = tmp_path / 'evil.pth'
    torch.save({'hub': HistoryBuffer([1.0], [1])}, evil)
    with pytest.raises(RuntimeError, match='evil.pth'):
        load_from_local_weights_only(str(evil))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_from_local_weights_only(str(tmp_path / 'missing.pth'))


def test_mmengine_loads_local_files_through_it(tmp_path):
    from mmengine.runner import CheckpointLoader
    evil = tmp_path / 'evil.pth'
    torch.save({'hub': HistoryBuffer([1.0], [1])}, evil)
    with pytest.raises(RuntimeError, match='weights-only'):
        CheckpointLoader.load_checkpoint(str(evil), map_location='cpu')

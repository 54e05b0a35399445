"""Checkpoint files: the state dict taken out of a file, one report of the
keys that do not fit for every loader, the weights digest pinned."""
import pytest
import torch
import torch.nn as nn

from mmseg_kdas.deployment.model import load_segmentor_weights
from mmseg_kdas.models.distillers import load_teacher_weights
from mmseg_kdas.utils.checkpoint_file import (CheckpointError,
                                              CorruptCheckpointError,
                                              NotAStateDictError,
                                              StateDictMismatchError,
                                              WeightsOnlyError,
                                              extract_state_dict,
                                              load_state_dict_file,
                                              state_dict_digest,
                                              state_dict_mismatch,
                                              weights_digest)

# state_dict_digest of _pinned() as the study's tool computed it before
# the digest moved here; the study's ledger (tools/kd_study.py,
# docs/polyp_experiment/ledger) holds digests of this function
PINNED = '9cfb53aa39f4de4b6fc916821cd25c4369d50d5d7cc80abd9cadaa1546f56ba2'


def _pinned():
    return {
        'head.bias': torch.tensor([0.5, -2.25], dtype=torch.float32),
        'backbone.weight': torch.arange(6, dtype=torch.int64).reshape(2, 3),
        'backbone.num_batches_tracked': torch.tensor(7),
        'empty': torch.zeros(0, 4, dtype=torch.float16),
    }


def test_weights_digest_is_pinned(tmp_path):
    assert state_dict_digest(_pinned()) == PINNED
    # name order, not insertion order; whatever else the file holds
    assert state_dict_digest(dict(reversed(_pinned().items()))) == PINNED
    path = str(tmp_path / 'iter_1.pth')
    torch.save(dict(state_dict=_pinned(), meta=dict(iter=1)), path)
    assert weights_digest(path) == PINNED
    changed = dict(_pinned(), **{'head.bias': torch.tensor([0.5, -2.0])})
    assert state_dict_digest(changed) != PINNED


def test_the_state_dict_is_taken_out_of_its_wrappers():
    weights = dict(w=torch.ones(2), b=torch.zeros(1))
    for obj in (weights, dict(state_dict=weights, meta={}),
                dict(model={f'module.{k}': v
                            for k, v in weights.items()})):
        out = extract_state_dict(obj, 'f.pth')
        assert list(out) == ['w', 'b']
        assert torch.equal(out['w'], weights['w'])
    nested = dict(state_dict={'backbone.w': torch.ones(1), 'head.b': 0})
    with pytest.raises(NotAStateDictError,
                       match=r"f.pth: entries that are not tensors: "
                       r"\['head.b'\]"):
        extract_state_dict(nested, 'f.pth')
    with pytest.raises(NotAStateDictError, match='f.pth: expected a '
                       'non-empty state dict, got list'):
        extract_state_dict([1], 'f.pth')
    prefixed = dict(state_dict={'backbone.w': torch.ones(1)})
    assert list(extract_state_dict(prefixed, 'f.pth', 'backbone.')) == ['w']
    with pytest.raises(StateDictMismatchError,
                       match="f.pth: no key starts with 'neck.'"):
        extract_state_dict(prefixed, 'f.pth', 'neck.')


def test_the_errors_are_one_family_of_the_old_types(tmp_path):
    objects = str(tmp_path / 'objects.pth')
    torch.save(dict(w=torch.ones(1), fn=nn.Identity()), objects)
    with pytest.raises(WeightsOnlyError) as err:
        load_state_dict_file(objects)
    assert f'{objects} cannot be loaded weights-only' in str(err.value)
    assert err.value.path == objects
    assert issubclass(WeightsOnlyError, (RuntimeError, ValueError))
    assert issubclass(CorruptCheckpointError, RuntimeError)
    assert issubclass(NotAStateDictError, ValueError)
    assert issubclass(StateDictMismatchError, KeyError)
    for kind in (WeightsOnlyError, CorruptCheckpointError, NotAStateDictError,
                 StateDictMismatchError):
        assert issubclass(kind, CheckpointError)
    # a KeyError's message is not quoted
    assert str(StateDictMismatchError('a b')) == 'a b'


def test_the_report_counts_what_it_leaves_out():
    own = {f'k{i}': torch.zeros(2) for i in range(12)}
    loaded = {f'k{i}': torch.zeros(3) for i in range(7)}
    loaded['x'] = torch.zeros(1)
    assert state_dict_mismatch(own, loaded, 'teacher') == [
        '7 tensor(s) of another shape (a checkpoint of another variant?): ' +
        '; '.join(f'k{i} is (3,) in the file and (2,) in the teacher'
                  for i in range(5)) + ' (and 2 more)',
        'missing keys: k7, k8, k9, k10, k11', 'unexpected keys: x'
    ]
    assert state_dict_mismatch(own, dict(own), 'teacher') == []
    assert state_dict_mismatch(own, {}, 'model') == [
        'missing keys: ' + ', '.join(f'k{i}' for i in range(10)) +
        ' (and 2 more)'
    ]


class _Tiny(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.BatchNorm2d(4)


def test_teacher_and_deployed_model_report_keys_alike(tmp_path):
    state = _Tiny().state_dict()
    state['conv.weight'] = torch.zeros(5, 3, 1, 1)
    del state['norm.bias']
    state['extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'wrong.pth')
    torch.save(dict(state_dict=state, meta={}), path)
    report = ('1 tensor(s) of another shape (a checkpoint of another '
              'variant?): conv.weight is (5, 3, 1, 1) in the file and '
              '(4, 3, 1, 1) in the {target}. missing keys: norm.bias. '
              'unexpected keys: extra.weight')

    model = _Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(StateDictMismatchError) as err:
        load_segmentor_weights(model, path)
    assert str(err.value) == (f'{path} does not fit the model. ' +
                              report.format(target='model'))
    with pytest.raises(StateDictMismatchError) as err:
        load_teacher_weights(model, path)
    assert str(err.value) == (f'teacher checkpoint {path} does not fit the '
                              'teacher. ' + report.format(target='teacher'))
    # nothing was loaded
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key

    torch.save(_Tiny().state_dict(), path)
    load_segmentor_weights(model, path)
    load_teacher_weights(model, path)

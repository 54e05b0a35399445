import doctest

import pytest
import torch
from mmseg.registry import MODELS

from mmseg_kdas.models.necks import SGMNeck, gram_embedding
from mmseg_kdas.models.necks import sgm_neck as sgm_neck_module
from mmseg_kdas.models.necks import transpose_embedding


def test_transpose_embedding_by_hand():
    x = torch.tensor([[[[1., 2.], [3., 4.]]]])
    assert transpose_embedding(x).tolist() == [[[[2., 5.], [5., 8.]]]]
    with pytest.raises(ValueError, match='square'):
        transpose_embedding(torch.zeros(1, 1, 2, 3))


def test_gram_and_covariance_by_hand():
    # one sample, two channels, two pixels: X = [[1, 2], [3, 4]]
    x = torch.tensor([[[[1., 2.]], [[3., 4.]]]])
    # X X^T / 2 = [[5, 11], [11, 25]] / 2
    assert gram_embedding(x).tolist() == [[[2.5, 5.5], [5.5, 12.5]]]
    # centred: [[-0.5, 0.5], [-0.5, 0.5]] -> every entry 0.5 / 2
    assert gram_embedding(x, center=True).tolist() == [[[0.25, 0.25],
                                                        [0.25, 0.25]]]
    constant = torch.full((1, 3, 4, 4), 7.)
    assert gram_embedding(constant, center=True).abs().max().item() == 0


@pytest.mark.parametrize('embedding', ['transpose', 'gram', 'covariance'])
def test_embeddings_are_symmetric(embedding):
    torch.manual_seed(0)
    neck = SGMNeck(embedding=embedding, size=6)
    student, teacher = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 9, 9)
    for emb in neck(student, teacher):
        assert torch.equal(emb, emb.transpose(-2, -1))


def test_transpose_sizes():
    student, teacher = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 8, 8)
    # size None: the teacher's width, and the teacher map is left untouched
    s_emb, t_emb = SGMNeck()(student, teacher)
    assert s_emb.shape == t_emb.shape == (2, 1, 8, 8)
    assert torch.equal(t_emb, teacher + teacher.transpose(-2, -1))
    s_emb, t_emb = SGMNeck(size=16)(student, torch.randn(2, 1, 8, 12))
    assert s_emb.shape == t_emb.shape == (2, 1, 16, 16)


def test_adapter_maps_channels_and_gets_gradients():
    torch.manual_seed(1)
    neck = SGMNeck(
        embedding='gram', student_channels=4, teacher_channels=8)
    student = torch.randn(2, 4, 6, 6, requires_grad=True)
    # the teacher's map is a target: even one that requires grad gets none
    teacher = torch.randn(2, 8, 3, 3, requires_grad=True)
    s_emb, t_emb = neck(student, teacher)
    assert s_emb.shape == t_emb.shape == (2, 8, 8)
    ((s_emb - t_emb)**2).mean().backward()
    assert neck.adapter.weight.grad.abs().sum().item() > 0
    assert student.grad.abs().sum().item() > 0
    assert teacher.grad is None
    assert not t_emb.requires_grad


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match='embedding'):
        SGMNeck(embedding='outer')
    with pytest.raises(ValueError, match='both'):
        SGMNeck(student_channels=4)
    with pytest.raises(ValueError, match='differ in channels'):
        SGMNeck(embedding='gram')(torch.zeros(1, 4, 2, 2),
                                  torch.zeros(1, 8, 2, 2))
    neck = SGMNeck(embedding='gram', student_channels=4, teacher_channels=8)
    with pytest.raises(ValueError, match='student_channels=4'):
        neck(torch.zeros(1, 3, 2, 2), torch.zeros(1, 8, 2, 2))


def test_registered_and_docstring_example_runs():
    assert MODELS.get('SGMNeck') is SGMNeck
    result = doctest.testmod(sgm_neck_module)
    assert result.attempted > 0 and result.failed == 0

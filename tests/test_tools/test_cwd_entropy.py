"""The CWD entropy measurement: values by hand, and a run on tiny weights."""
import json
import math
import os.path as osp

import pytest
import torch
from conftest import CONFIGS, load_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_kdas.datasets import make_synthetic_polyp_dataset

tool = load_tool('tools/analysis_tools/cwd_entropy.py')


def test_uniform_and_peaked_maps():
    flat = torch.zeros(1, 1, 4, 4)
    stats = tool.softmax_stats(flat, 1.0, torch.ones(1, 1, 4, 4))
    assert stats['entropy'].item() == pytest.approx(1.0)
    assert stats['support'].item() == pytest.approx(1.0)
    assert stats['polyp_mass'].item() == pytest.approx(1.0)
    peak = torch.zeros(1, 1, 4, 4)
    peak[0, 0, 1, 2] = 30.0  # a trained teacher's logit magnitude
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, :2, :2] = 1  # the polyp elsewhere
    stats = tool.softmax_stats(peak, 1.0, mask)
    assert stats['entropy'].item() < 1e-9
    assert stats['support'].item() == pytest.approx(1 / 16)
    # 4 polyp pixels of logit 0 against 15 of 0 and one of 30
    assert stats['polyp_mass'].item() == pytest.approx(
        4 / (15 + math.exp(30)), rel=1e-9)


def test_two_pixels_by_hand_and_the_temperature():
    z = torch.tensor([[[[math.log(3.0), 0.0]]]])  # softmax (3/4, 1/4)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    stats = tool.softmax_stats(z, 1.0)
    assert stats['entropy'].item() == pytest.approx(h / math.log(2))
    assert stats['support'].item() == pytest.approx(math.exp(h) / 2)
    # T = 2 halves the logits: softmax (sqrt 3, 1) / (sqrt 3 + 1)
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    h2 = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert tool.softmax_stats(z, 2.0)['entropy'].item() == pytest.approx(
        h2 / math.log(2))
    with pytest.raises(ValueError, match='temperature'):
        tool.spatial_softmax(z, 0.0)


def test_two_channel_logits():
    z = torch.randn(2, 1, 3, 5) * 10
    two = tool.two_channel(z)
    assert two.shape == (2, 2, 3, 5)
    # their softmax over the channels is (1 - sigmoid, sigmoid)
    assert torch.allclose(two.softmax(1)[:, 1:], z.sigmoid(), atol=1e-6)
    # the polyp channel at T is the one-channel map at 2 T
    stats = tool.map_stats(z, (z > 0).float(), [1.0, 2.0])
    assert stats['two-channel/polyp/T=1/entropy'] == pytest.approx(
        stats['one-channel/polyp/T=2/entropy'])
    with pytest.raises(ValueError, match='expects'):
        tool.two_channel(torch.zeros(1, 2, 3, 3))


def test_the_tool_on_a_tiny_teacher(tmp_path, capsys):
    init_default_scope('mmseg')
    root = make_synthetic_polyp_dataset(
        str(tmp_path / 'data'), num_train=3, num_test=0, size=(64, 64),
        test_sets=())
    config = osp.join(CONFIGS, 'tiny_kdas.py')
    torch.manual_seed(0)
    teacher = MODELS.build(Config.fromfile(config).model.teacher)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    out = str(tmp_path / 'cwd.json')
    assert tool.main([
        config, ckpt, root, '--split', 'all', '--size', '64',
        '--temperatures', '1', '4', '--out', out
    ]) == 0
    result = json.load(open(out))
    assert result['images'] == 3
    means = result['means']
    assert set(means) == {'P1', 'P2'}
    for stats in means.values():
        for t in ('1', '4'):
            assert 0 <= stats[f'one-channel/polyp/T={t}/entropy'] <= 1
            assert 0 <= stats[f'two-channel/background/T={t}/polyp_mass'] <= 1
        # a higher temperature spreads the distribution
        assert stats['one-channel/polyp/T=4/entropy'] >= stats[
            'one-channel/polyp/T=1/entropy']
    assert len(result['per_image']['P1']['polyp_share']) == 3
    table = capsys.readouterr().out
    assert '| P1 | two-channel | background | 4 |' in table

"""PVTv2 backbone: variants, outputs, pretrained loading, freezing."""
import math

import pytest
import torch
from mmseg.registry import MODELS
from polyp_pvt_helpers import read_reference_keys

from mmseg_kdas.models.backbones import PVTv2
from mmseg_kdas.models.backbones.pvtv2_layers import SpatialReductionAttention


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def _reference_backbone_params(arch):
    return sum(
        math.prod(shape) for key, shape in read_reference_keys(arch)
        if key.startswith('backbone.'))


@pytest.mark.parametrize('arch', ['b0', 'b2'])
def test_parameter_count_and_names_match_reference(arch):
    model = PVTv2(arch=arch)
    assert _num_params(model) == _reference_backbone_params(arch)
    expected = {(k[len('backbone.'):], s)
                for k, s in read_reference_keys(arch)
                if k.startswith('backbone.')}
    actual = {(k, tuple(v.shape)) for k, v in model.state_dict().items()}
    assert actual == expected
    # 3.41 M and 24.85 M, as in the PVTv2 paper
    millions = {'b0': 3.41, 'b2': 24.85}[arch]
    assert round(_num_params(model) / 1e6, 2) == millions


def test_registered_and_output_shapes():
    model = MODELS.build(dict(type='PVTv2', arch='b0')).eval()
    outs = model(torch.rand(2, 3, 64, 96))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 16, 24), (2, 64, 8, 12),
                                              (2, 160, 4, 6), (2, 256, 2, 3)]
    model = PVTv2(arch='b0', out_indices=(1, 3)).eval()
    assert [o.shape[1] for o in model(torch.rand(1, 3, 64, 64))] == [64, 256]


def test_custom_arch_equals_named_arch():
    custom = dict(
        embed_dims=[32, 64, 160, 256],
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1],
        mlp_ratios=[8, 8, 4, 4])
    named, explicit = PVTv2(arch='b0').eval(), PVTv2(arch=custom).eval()
    explicit.load_state_dict(named.state_dict())
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(named(x), explicit(x)):
        assert torch.equal(a, b)
    for bad in ('b9', dict(custom, depths=[2, 2, 2]), dict(embed_dims=[1])):
        with pytest.raises(ValueError, match='PVTv2'):
            PVTv2(arch=bad)


def test_attention_matches_explicit_formula():
    torch.manual_seed(0)
    attn = SpatialReductionAttention(dim=8, num_heads=2, sr_ratio=2).eval()
    x = torch.randn(1, 16, 8)
    with torch.no_grad():
        q = attn.q(x).reshape(1, 16, 2, 4).transpose(1, 2)
        grid = attn.sr(x.transpose(1, 2).reshape(1, 8, 4, 4))
        y = attn.norm(grid.flatten(2).transpose(1, 2))
        k, v = attn.kv(y).reshape(1, 4, 2, 2, 4).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(1, 16, 8))
        torch.testing.assert_close(attn(x, (4, 4)), expected)


def test_stochastic_depth_is_linear():
    model = PVTv2(arch='b2', drop_path_rate=0.1)
    blocks = [b for i in range(1, 5) for b in getattr(model, f'block{i}')]
    rates = [0.] + [b.drop_path.drop_prob for b in blocks[1:]]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    torch.testing.assert_close(
        torch.tensor(rates), torch.linspace(0, 0.1, 16), atol=1e-7, rtol=0)


def test_default_init():
    model = PVTv2(arch='b0')
    model.init_weights()
    assert torch.all(model.norm4.weight == 1) and torch.all(
        model.norm4.bias == 0)
    fc1 = model.block3[0].mlp.fc1
    assert torch.all(fc1.bias == 0)
    assert abs(fc1.weight.std().item() - 0.02) < 0.002
    dw = model.block1[0].mlp.dwconv.dwconv  # fan_out = 9 per group
    assert abs(dw.weight.std().item() - math.sqrt(2 / 9)) < 0.03


def _imagenet_file(tmp_path, arch='b0'):
    """A file laid out like the official ImageNet checkpoints."""
    source = PVTv2(arch=arch)
    state = dict(source.state_dict())
    dim = source.embed_dims[-1]
    state['head.weight'] = torch.randn(1000, dim)
    state['head.bias'] = torch.randn(1000)
    path = tmp_path / f'pvt_v2_{arch}.pth'
    torch.save(state, path)
    return str(path), source


def test_pretrained_imagenet_file_loads(tmp_path):
    path, source = _imagenet_file(tmp_path)
    model = MODELS.build(
        dict(
            type='PVTv2',
            arch='b0',
            init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pretrained_with_prefix(tmp_path):
    source = PVTv2(arch='b0')
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['decode_head.cls.weight'] = torch.zeros(1)
    path = tmp_path / 'segmentor.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    model = PVTv2(
        arch='b0',
        init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    assert torch.equal(model.patch_embed1.proj.weight,
                       source.patch_embed1.proj.weight)


def test_pretrained_errors_name_the_fault(tmp_path):
    path, _ = _imagenet_file(tmp_path, arch='b0')
    wrong = PVTv2(
        arch='b1', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(KeyError, match='patch_embed1.proj.weight'):
        wrong.init_weights()
    state = torch.load(path, weights_only=True)
    del state['block2.1.mlp.fc2.bias']
    torch.save(state, tmp_path / 'cut.pth')
    cut = PVTv2(
        arch='b0',
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cut.pth')))
    with pytest.raises(KeyError, match=r'block2\.1\.mlp\.fc2\.bias'):
        cut.init_weights()
    missing = PVTv2(
        arch='b0',
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'no.pth')))
    with pytest.raises(FileNotFoundError, match='no.pth'):
        missing.init_weights()


def test_frozen_stages():
    model = PVTv2(arch='b0', frozen_stages=2)
    model.train()
    for i in (1, 2):
        assert not any(p.requires_grad for p in getattr(
            model, f'block{i}').parameters())
        assert not getattr(model, f'patch_embed{i}').training
    assert all(p.requires_grad for p in model.block3.parameters())
    assert model.block3.training
    # gradients flow only into the unfrozen stages
    sum(o.sum() for o in model(torch.rand(1, 3, 64, 64))).backward()
    assert model.patch_embed1.proj.weight.grad is None
    assert model.patch_embed3.proj.weight.grad is not None
    with pytest.raises(ValueError, match='frozen_stages'):
        PVTv2(arch='b0', frozen_stages=5)


def test_no_dead_norm_eval_option():
    # PVTv2 has LayerNorms only: a norm_eval flag would change nothing
    with pytest.raises(TypeError, match='norm_eval'):
        PVTv2(arch='b0', norm_eval=True)


def test_dropout_only_in_training():
    model = PVTv2(arch='b0', drop_path_rate=0.5, drop_rate=0.2).eval()
    x = torch.rand(1, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(model(x), model(x)))
    model.train()
    assert not torch.equal(model(x)[3], model(x)[3])

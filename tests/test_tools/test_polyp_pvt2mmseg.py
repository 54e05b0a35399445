"""tools/model_converters/polyp_pvt2mmseg.py on reference-shaped files."""
import importlib.util
import os.path as osp
import re
from collections import OrderedDict

import pytest
import torch
from polyp_pvt_helpers import (NUM_PARAMS, ROOT, build_polyp_pvt,
                               read_reference_keys)

from mmseg_kdas.models.utils import (POLYP_PVT_PREFIXES, convert_polyp_pvt,
                                     infer_pvtv2_arch, polyp_pvt_convert)

TOOL = osp.join(ROOT, 'tools', 'model_converters', 'polyp_pvt2mmseg.py')


def _tool():
    spec = importlib.util.spec_from_file_location('polyp_pvt2mmseg', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_reference(arch, seed=0):
    """Random tensors with every key and shape of the authors' model."""
    gen = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in read_reference_keys(arch):
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


@pytest.mark.parametrize('arch', ['b0', 'b2'])
def test_convert_file_and_load_strictly(tmp_path, arch, capsys):
    source = _random_reference(arch)
    src, dst = tmp_path / 'PolypPVT.pth', tmp_path / 'out' / 'mmseg.pth'
    torch.save(source, src)
    assert _tool().main([str(src), str(dst)]) == 0
    assert f'PVTv2-{arch.upper()}' in capsys.readouterr().out

    checkpoint = torch.load(dst, weights_only=True)
    assert checkpoint['meta']['arch'] == f'pvtv2-{arch}'
    assert f'pvtv2-{arch}_' in checkpoint['meta']['config']
    model = build_polyp_pvt(arch)
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[arch]

    # every tensor is carried over unchanged under its mapped name
    state = model.state_dict()
    assert len(state) == len(source)
    pairs = {
        'backbone.block1.0.attn.kv.weight': 'backbone.block1.0.attn.kv.weight',
        'Translayer2_0.conv.weight': 'decode_head.cim_conv.conv.weight',
        'Translayer4_1.bn.running_var':
        'decode_head.lateral_convs.2.bn.running_var',
        'ca.fc2.weight': 'decode_head.cim.channel_attn.fc2.weight',
        'sa.conv1.weight': 'decode_head.cim.spatial_attn.conv.weight',
        'CFM.conv_concat3.bn.bias': 'decode_head.cfm.conv_concat3.bn.bias',
        'SAM.gcn.conv1.weight': 'decode_head.sam.gcn.conv1.weight',
        'out_CFM.bias': 'decode_head.cls_cfm.bias',
        'out_SAM.weight': 'decode_head.cls_sam.weight',
    }
    for old, new in pairs.items():
        assert torch.equal(state[new], source[old]), old


def test_prefix_table_covers_every_reference_key():
    keys = [k for k, _ in read_reference_keys('b2')]
    converted = polyp_pvt_convert(OrderedDict((k, torch.zeros(1))
                                              for k in keys))
    assert len(converted) == len(keys)
    assert len(POLYP_PVT_PREFIXES) == 11
    assert infer_pvtv2_arch(_random_reference('b0'), 'backbone.') == 'b0'


def test_dataparallel_and_wrapped_files(tmp_path):
    source = _random_reference('b0')
    torch.save(source, tmp_path / 'plain.pth')
    assert _tool().main(
        [str(tmp_path / 'plain.pth'),
         str(tmp_path / 'plain_out.pth')]) == 0
    plain = torch.load(tmp_path / 'plain_out.pth', weights_only=True)
    # a DataParallel state dict ('module.' keys) under a 'model' key gives
    # the same converted weights as the bare state dict
    wrapped = {'model': {f'module.{k}': v for k, v in source.items()}}
    src = tmp_path / 'wrapped.pth'
    torch.save(wrapped, src)
    assert _tool().main([str(src), str(tmp_path / 'out.pth')]) == 0
    converted = torch.load(tmp_path / 'out.pth', weights_only=True)
    assert converted['meta']['arch'] == 'pvtv2-b0'
    assert converted['state_dict'].keys() == plain['state_dict'].keys()
    for key, value in plain['state_dict'].items():
        assert torch.equal(converted['state_dict'][key], value), key
    assert torch.equal(converted['state_dict']['decode_head.cls_sam.weight'],
                       source['out_SAM.weight'])


@pytest.mark.parametrize('edit, message', [
    (lambda s: s.update({'SAM.extra.weight': torch.zeros(1)}),
     'SAM.extra.weight'),
    (lambda s: s.update({'aux_head.weight': torch.zeros(1)}),
     'aux_head.weight'),
    (lambda s: s.pop('CFM.conv4.bn.running_mean'),
     'missing keys: [\'CFM.conv4.bn.running_mean'),
    (lambda s: s.pop('backbone.block3.1.attn.q.bias'),
     'backbone.block3.1.attn.q.bias'),
    (lambda s: s.update({'ca.fc1.weight': torch.zeros(3, 32, 1, 1)}),
     'ca.fc1.weight: (3, 32, 1, 1) vs (2, 32, 1, 1)'),
])
def test_unknown_missing_or_misshaped_keys_are_listed(edit, message):
    source = _random_reference('b0')
    edit(source)
    with pytest.raises((KeyError, ValueError), match=re.escape(message)):
        convert_polyp_pvt(source)


def test_cli_reports_errors(tmp_path, capsys):
    imagenet = {
        k[len('backbone.'):]: v
        for k, v in _random_reference('b0').items() if k.startswith('backbone')
    }
    imagenet['head.weight'] = torch.zeros(1000, 256)
    src = tmp_path / 'pvt_v2_b0.pth'
    torch.save(imagenet, src)
    assert _tool().main([str(src), str(tmp_path / 'x.pth')]) == 1
    assert 'ImageNet' in capsys.readouterr().err
    assert _tool().main([str(tmp_path / 'absent.pth'), 'x.pth']) == 1
    assert 'absent.pth' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'x.pth')

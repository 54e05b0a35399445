"""tools/test.py's command line."""
import importlib.util
import os.path as osp
import sys

import pytest
from conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location(
        'kdas_test_tool', osp.join(ROOT, 'tools', 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_dead_tta_option(monkeypatch, capsys):
    # no config defines tta_model / tta_pipeline, and mmseg's SegTTAModel
    # would store probabilities where the polyp metric expects logits
    tool = _tool()
    monkeypatch.setattr(sys, 'argv', ['test.py', 'cfg.py', 'ckpt.pth'])
    assert tool.parse_args().checkpoint == 'ckpt.pth'
    monkeypatch.setattr(sys, 'argv',
                        ['test.py', 'cfg.py', 'ckpt.pth', '--tta'])
    with pytest.raises(SystemExit):
        tool.parse_args()
    assert 'unrecognized arguments: --tta' in capsys.readouterr().err

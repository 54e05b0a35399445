"""The command line of tools/test.py, and the run arguments it shares."""
import argparse
import os
import os.path as osp
import sys

import pytest
from conftest import load_tool

from mmseg_kdas.utils.cli import run_config


def test_no_dead_tta_option(monkeypatch, capsys):
    # no config defines tta_model / tta_pipeline, and mmseg's SegTTAModel
    # would store probabilities where the polyp metric expects logits
    tool = load_tool('tools/test.py')
    monkeypatch.setattr(sys, 'argv', ['test.py', 'cfg.py', 'ckpt.pth'])
    assert tool.parse_args().checkpoint == 'ckpt.pth'
    monkeypatch.setattr(sys, 'argv',
                        ['test.py', 'cfg.py', 'ckpt.pth', '--tta'])
    with pytest.raises(SystemExit):
        tool.parse_args()
    assert 'unrecognized arguments: --tta' in capsys.readouterr().err


@pytest.mark.parametrize('path,positional', [
    ('tools/train.py', ['cfg.py']),
    ('tools/test.py', ['cfg.py', 'ckpt.pth']),
    ('tools/cache_teacher.py', ['cfg.py', '--out', 'cache']),
])
def test_run_arguments(monkeypatch, path, positional):
    parse_args = load_tool(path).parse_args

    def parse(*options, local_rank=None):
        monkeypatch.setattr(sys, 'argv', [path, *positional, *options])
        if local_rank is None:
            monkeypatch.delenv('LOCAL_RANK', raising=False)
        else:
            monkeypatch.setenv('LOCAL_RANK', local_rank)
        return parse_args()

    args = parse()
    assert args.cfg_options is None and args.launcher == 'none'
    assert os.environ['LOCAL_RANK'] == '0'
    args = parse('--cfg-options', 'a.b=1', 'c=[1,2]', '--launcher',
                 'pytorch', '--local-rank', '3')
    assert args.cfg_options == {'a.b': 1, 'c': [1, 2]}
    assert args.launcher == 'pytorch'
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    assert os.environ['LOCAL_RANK'] == '3'
    parse('--local_rank', '3', local_rank='1')
    assert os.environ['LOCAL_RANK'] == '1'


def test_run_config(tmp_path):
    # work_dir: --work-dir, else the config's, else ./work_dirs/<name>
    path = tmp_path / 'tiny_run.py'
    path.write_text('a = 1\n')
    args = argparse.Namespace(
        config=str(path), cfg_options=dict(a=2), launcher='pytorch',
        work_dir=None)
    cfg = run_config(args)
    assert (cfg.a, cfg.launcher) == (2, 'pytorch')
    assert cfg.work_dir == osp.join('./work_dirs', 'tiny_run')
    path.write_text("work_dir = 'from_config'\n")
    assert run_config(args).work_dir == 'from_config'
    args.work_dir = 'from_cli'
    assert run_config(args).work_dir == 'from_cli'
    args.config = str(tmp_path / 'absent.py')
    with pytest.raises(FileNotFoundError,
                       match=f'config file not found: {args.config}'):
        run_config(args)

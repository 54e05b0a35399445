"""config_text: a config as Python text that reads back the same."""
import os.path as osp

from conftest import ROOT
from mmengine.config import Config

from mmseg_kdas.utils.config_text import config_text


def test_a_run_config_reads_back_equal_without_yapf(tmp_path, monkeypatch):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/kdas/kdas-t4_polyp-pvt-b2_polyp-pvt-b0_'
                 '1xb16-100e_pranet-352x352.py'))
    cfg.merge_from_dict({'train_dataloader.dataset.pipeline.0.scale':
                         (128, 128)})  # a tuple stays a tuple
    # the fast path never formats with yapf
    monkeypatch.setattr(Config, 'pretty_text', property(
        lambda self: (_ for _ in ()).throw(AssertionError('yapf'))))
    text = config_text(cfg)
    monkeypatch.undo()
    path = tmp_path / 'run.py'
    path.write_text(text)
    back = Config.fromfile(str(path))
    assert back.to_dict() == cfg.to_dict()
    assert back.model.loss_at.temperature == 4.0
    assert back.train_dataloader.dataset.pipeline[0].scale == (128, 128)


def test_a_value_that_is_no_literal_goes_through_pretty_text():
    cfg = Config(dict(model=dict(type='M', eps=float('inf')), lr=0.1))
    # 'inf' is no literal: the text is mmengine's own, as before
    assert config_text(cfg) == cfg.pretty_text
    assert 'eps=inf' in config_text(cfg)
    literal = Config(dict(model=dict(type='M', eps=1e-5), lr=0.1))
    assert config_text(literal) != literal.pretty_text
    assert config_text(literal) == ("model = {'type': 'M', 'eps': 1e-05}\n"
                                    'lr = 0.1\n')

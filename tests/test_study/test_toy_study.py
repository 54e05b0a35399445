"""A whole distillation study at toy size, through the real tools.

``tools/kd_study.py`` on a generated data root with two test sets and no
validation list (one is made), a tiny teacher, student and KDAS
(``tests/data/configs/kd_study/toy.py``): the teacher, the gate, the
teacher cache, a grid of two settings, two seeds, the tests with
``tools/test.py``, the report and the full-scale config of the chosen
setting; every command the real one (``tools/train.py``, ``tools/test.py``,
``tools/cache_teacher.py``), on CPU.
"""
import json
import os.path as osp

import pytest
from conftest import ROOT, load_tool
from mmengine.config import Config

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.datasets.pranet_split import read_split_file
from mmseg_kdas.study import read_json
from mmseg_kdas.utils.checkpoint_file import weights_digest

tool = load_tool('tools/kd_study.py')
TOY = osp.join(ROOT, 'tests/data/configs/kd_study/toy.py')


@pytest.fixture(scope='module')
def toy_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('toy_study')
    data = make_synthetic_polyp_dataset(
        str(tmp / 'data'), num_train=12, num_test=2,
        test_sets=('Kvasir', 'Organ'))
    argv = [TOY, data, '--work-dir', str(tmp / 'work'), '--ledger',
            str(tmp / 'ledger')]
    assert tool.main(argv) == 0
    return tmp, data, argv


def test_a_toy_study_runs_end_to_end(toy_study, capsys):
    tmp, data, argv = toy_study
    work = tmp / 'work'
    # the split: made, 3 of 12, written to the work dir and the ledger
    val = read_split_file(str(work / 'val_split.txt'))
    assert len(val) == 3
    assert (tmp / 'ledger' / 'val_split.txt').read_text() == (
        work / 'val_split.txt').read_text()
    # every stage's files, by the real tools
    record = read_json(str(work / 'teacher' / 'seed0' / 'record.json'))
    assert set(record['val']) == {'2', '4'}
    assert record['test']['Organ/mDice'] >= 0
    assert osp.isdir(work / 'teacher_cache' / 'head0-head1')
    for key in ('student/default/seed0', 'student/default/seed1',
                'KDAS/a0.3_T2/seed0', 'KDAS/a0.3_T4/seed0',
                'KDAS/a0.3_T2/seed1'):
        record = read_json(str(work / 'runs' / key / 'record.json'))
        assert record['weights'] == weights_digest(
            str(work / 'runs' / key / 'iter_2.pth'))
        assert 0 <= record['val_last'] <= 1
    results = json.loads((work / 'results.json').read_text())
    assert results['test_sets'] == ['Kvasir', 'Organ']
    selected = results['selected']['KDAS']
    for method in ('student', 'KDAS (paper)'):
        seeds = results['methods'][method]['seeds']
        assert sorted(seeds) == ['0', '1']
        for test in (s['test'] for s in seeds.values()):
            assert 0 <= test['Kvasir/mDice'] <= 1
            assert 0 <= test['Organ/mDice'] <= 1
    report = (work / 'results.md').read_text()
    assert 'Organ' in report and 'Kvasir' in report
    # the full-scale config of the chosen KDAS setting, for this data
    cfg = Config.fromfile(str(work / 'kdas_selected.py'))
    assert cfg.train_dataloader.dataset.data_root == data
    assert cfg.train_dataloader.dataset.split_file == str(
        work / 'val_split.txt')
    temperature = 4.0 if 'T = 4' in selected else 2.0
    assert cfg.model.loss_at.temperature == temperature
    assert [d.test_set for d in cfg.test_dataloader.dataset.datasets] == [
        'Kvasir', 'Organ'
    ]
    # run again: every step is done, nothing runs
    capsys.readouterr()
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    assert '$ ' not in out

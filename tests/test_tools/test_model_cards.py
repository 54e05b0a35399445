"""The model cards written from the KD experiment's results.

The committed cards must equal what the tool writes from the committed
results (none, or ``docs/polyp_experiment/results.json``); the values it
writes are checked on the fake protocol run of ``test_kd_study``
(whose per-seed test values are known by construction).
"""
import json
import os
import shutil

import pytest
import yaml
from conftest import ROOT, load_tool
from test_kd_study import FakeRunner, _argv
from test_kd_study import tool as experiment

from mmseg_kdas.study import cards

tool = load_tool('tools/kd_study.py')
FILES = [
    cards.STUDY, 'configs/kdas/README.md', 'configs/kd_baselines/README.md',
    'configs/kdas/metafile.yaml', 'configs/kd_baselines/metafile.yaml',
    cards.SUMMARY
]


def test_the_committed_cards_match_the_committed_results(capsys):
    assert tool.main(['--cards', '--check']) == 0, capsys.readouterr().err


def _fake_repo(tmp_path):
    root = tmp_path / 'repo'
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(ROOT, rel), root / rel)
    return root


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """A finished fake protocol run and a copy of the repo's cards."""
    tmp_path = tmp_path_factory.mktemp('cards')
    assert experiment.main(_argv(tmp_path), FakeRunner()) == 0
    return tmp_path / 'work', _fake_repo(tmp_path)


def test_the_cards_hold_the_results(finished, capsys):
    work, root = finished
    assert tool.main(['--cards', str(work), '--root', str(root)]) == 0
    assert (root / cards.DOCS / 'results_Kvasir.png').is_file()
    # the fake: a student's test mDice is its validation score - 0.05 +
    # 0.001 * seed, the teacher 0.80 on Kvasir and 0.50 on ETIS
    with open(root / 'configs/kdas/metafile.yaml') as f:
        meta = yaml.safe_load(f)
    models = {m['Name']: m for m in meta['Models']}
    tuned = models['kdas_polyp-pvt-b2_polyp-pvt-b0_pranet-128x128_tuned']
    assert tuned['Metadata']['Setting'] == ('α = 0.5, T = 4 (chosen on '
                                            'PraNet-val)')
    assert tuned['Metadata']['Seeds'] == [0, 1, 2]
    etis, kvasir = tuned['Results']  # the test sets in name order
    assert kvasir['Dataset'] == 'Kvasir' and etis['Dataset'] == 'ETIS'
    assert kvasir['Metrics']['mDice'] == pytest.approx(0.686)
    assert kvasir['Metrics']['mDice std'] == pytest.approx(0.001)
    assert etis['Metrics']['MAE'] == pytest.approx(0.586)
    teacher = tuned['Metadata']['Teacher']
    assert teacher['Results'][0]['Metrics']['mDice'] == 0.5
    assert teacher['Results'][1]['Metrics']['mDice'] == 0.8
    student = tuned['Metadata']['Student']
    assert student['Results'][1]['Metrics']['mDice'] == pytest.approx(0.651)
    sgm = models['kdas_polyp-pvt-b2_polyp-pvt-b0_pranet-128x128_sgm-only']
    assert sgm['Results'][1]['Metrics']['mDice'] == pytest.approx(0.661)
    with open(root / 'configs/kd_baselines/metafile.yaml') as f:
        base = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    cwd = base['cwd_polyp-pvt-b2_polyp-pvt-b0_pranet-128x128_tuned']
    assert cwd['Metadata']['Setting'] == ('T = 4, weight = 1 (chosen on '
                                          'PraNet-val)')
    assert cwd['Results'][1]['Metrics']['mDice'] == pytest.approx(0.651)

    readme = (root / 'configs/kdas/README.md').read_text()
    assert ('| KDAS (tuned) | PVTv2-B0 | α = 0.5, T = 4 (chosen on '
            'PraNet-val) | [config](../../'
            'configs/kdas/kdas_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-'
            '352x352.py) | 3 | 0.6860 ± 0.0010 |') in readme
    assert '| +0.0350 (+0.0350, +0.0350, +0.0350) |' in readme
    assert '| teacher, Polyp-PVT | PVTv2-B2 |' in readme
    assert 'CWD (tuned)' not in readme  # the baselines' own card has it
    assert 'That run has not been made yet' not in readme
    assert 'agreement check failed' not in readme
    baselines = (root / 'configs/kd_baselines/README.md').read_text()
    assert ('| CWD (tuned) | PVTv2-B0 | T = 4, weight = 1 (chosen on '
            'PraNet-val) |') in baselines
    assert ("| KDAS-ref | PVTv2-B0 | the authors' effective objective, "
            'L_seg + 0.3·MSE(P1 + P1ᵀ) |') in readme
    # the row of KDAS at the paper's setting is named as this repository's
    assert "| KDAS at the paper's setting | PVTv2-B0 |" in readme
    assert '| KDAS (paper) |' not in readme
    # the front page's summary: every method on every set, in the study
    # config's order, with the difference to the plain student
    front = (root / cards.SUMMARY).read_text()
    summary = front.split(cards.BEGIN, 1)[1].split(cards.END, 1)[0]
    assert '| model | ETIS | Kvasir |' in summary
    assert '| teacher: Polyp-PVT, PVTv2-B2 | 0.5000 | 0.8000 |' in summary
    assert ('| KDAS (tuned), α = 0.5, T = 4 | 0.5860 ± 0.0010 (+0.035, t -)'
            ' | 0.6860 ± 0.0010 (+0.035, t -) |') in summary
    names = [line.split(' | ')[0] for line in summary.splitlines()
             if line.startswith('| ')][2:]
    assert names[:3] == ['| plain student: Polyp-PVT, PVTv2-B0',
                         "| KDAS at the paper's setting, α = 0.3, T = 2",
                         '| KDAS (tuned), α = 0.5, T = 4']
    assert len(names) == 9 and '| KDAS-ref' in names  # 'as configured'
    assert 'Kvasir 23%' in summary  # (0.686 - 0.651) / (0.8 - 0.651)
    with open(os.path.join(ROOT, cards.SUMMARY)) as f:
        assert front.endswith(f.read().split(cards.END, 1)[1])
    study = (root / cards.STUDY).read_text()
    report = (work / 'results.md').read_text().rstrip('\n')
    assert report in study
    block = study.split(cards.BEGIN, 1)[1].split(cards.END, 1)[0]
    assert 'again from scratch' not in block  # no rerun made
    # the plots, relative to the page (docs/en/study.md)
    assert '](../polyp_experiment/results_ETIS.png)' in study
    assert (root / 'docs/en' / '../polyp_experiment/results_ETIS.png'
            ).resolve().is_file()
    # the text around the blocks is kept
    with open(os.path.join(ROOT, cards.STUDY)) as f:
        assert study.endswith(f.read().split(cards.END, 1)[1])
    assert tool.main(['--cards', '--check', '--root', str(root)]) == 0

    # a hand edit of a generated file is caught, naming it
    meta_file = root / 'configs/kd_baselines/metafile.yaml'
    meta_file.write_text(meta_file.read_text().replace('0.651', '0.7'))
    assert tool.main(['--cards', '--check', '--root', str(root)]) == 1
    err = capsys.readouterr().err
    assert 'configs/kd_baselines/metafile.yaml' in err
    assert 'configs/kdas/metafile.yaml' not in err


def test_a_rerun_is_copied_and_shown(tmp_path):
    argv = _argv(tmp_path, '--rerun', 'runs/student/*/seed1')
    assert experiment.main(argv, FakeRunner()) == 0
    root = _fake_repo(tmp_path)
    assert tool.main(
        ['--cards', str(tmp_path / 'work'), '--root', str(root)]) == 0
    rerun = (tmp_path / 'work' / 'rerun.md').read_text()
    assert (root / cards.DOCS / 'rerun.md').read_text() == rerun
    assert (root / cards.DOCS / 'rerun.json').is_file()
    assert '| runs/student/default/seed1 | the same bits |' in rerun
    study = (root / cards.STUDY).read_text()
    assert 'Runs of it trained again from scratch (`--rerun`)' in study
    assert rerun.rstrip('\n') in study
    assert tool.main(['--cards', '--check', '--root', str(root)]) == 0


def test_a_failed_agreement_check_is_stated_on_the_cards(tmp_path):
    curves = {0: [0.70, 0.78], 1: [0.71, 0.81]}
    assert experiment.main(_argv(tmp_path, '--accept-teacher-disagreement'),
                           FakeRunner(teacher_curves=curves)) == 0
    root = _fake_repo(tmp_path)
    assert tool.main(
        ['--cards', str(tmp_path / 'work'), '--root', str(root)]) == 0
    for folder in ('configs/kdas', 'configs/kd_baselines'):
        readme = (root / folder / 'README.md').read_text()
        assert ("The teacher runs' agreement check failed (their best "
                'PraNet-val mDice 0.0300 apart, more than the protocol\'s '
                '0.02)') in readme
    assert '**The agreement check failed**' in (root /
                                                cards.STUDY).read_text()


def test_without_results_no_model_has_results(tmp_path):
    root = _fake_repo(tmp_path)
    assert tool.main(['--cards', '--root', str(root)]) == 0
    for folder in ('configs/kdas', 'configs/kd_baselines'):
        with open(root / folder / 'metafile.yaml') as f:
            meta = yaml.safe_load(f)
        assert all('Results' not in m for m in meta['Models'])
        names = [m['Name'] for m in meta['Models']]
        assert not any(n.endswith('kdas_polyp-pvt-b2_polyp-pvt-b0_pranet-'
                                  '128x128_tuned') for n in names)
        assert cards.PENDING in (root / folder / 'README.md').read_text()


def test_bad_inputs_are_named(tmp_path):
    root = _fake_repo(tmp_path)
    with pytest.raises(FileNotFoundError, match='results.json not found'):
        tool.main(['--cards', str(tmp_path / 'nowhere'), '--root', str(root)])
    readme = root / 'configs/kdas/README.md'
    readme.write_text(readme.read_text().replace(cards.END, ''))
    with pytest.raises(ValueError, match='configs/kdas/README.md'):
        tool.main(['--cards', '--root', str(root)])
    docs = root / cards.DOCS
    docs.mkdir(parents=True)
    (docs / 'results.json').write_text(json.dumps({'test_sets': []}))
    with pytest.raises(KeyError, match="no 'teacher'"):
        tool.main(['--cards', '--root', str(root)])


def _get(cfg, dotted):
    for key in dotted.split('.'):
        cfg = cfg[key]
    return cfg


def test_a_tuned_config_holds_its_setting_and_nothing_else():
    from mmengine.config import Config

    from mmseg_kdas.study.protocol import setting_label
    preset = cards.preset()
    assert cards.TUNED_CONFIGS  # else this test checks nothing
    for family, configs in cards.TUNED_CONFIGS.items():
        base = Config.fromfile(os.path.join(ROOT, preset.families[family]))
        for label, path in configs.items():
            chosen = [s for s in preset.grids[family]
                      if setting_label(s) == label]
            assert len(chosen) == 1, (label, preset.grids[family])
            cfg = Config.fromfile(os.path.join(ROOT, path))
            for key, value in chosen[0]:
                assert _get(cfg.model, key) == value, (path, key)
            # not the family's own setting
            assert any(_get(base.model, k) != v for k, v in chosen[0])
            # the family's config with the setting's keys set is this one
            base_copy = Config(base.to_dict())
            base_copy.merge_from_dict(
                {f'model.{k}': v for k, v in chosen[0]})
            assert base_copy.to_dict() == cfg.to_dict(), path
            # its card names it when the study chose that setting
            spec = cards.cards()['configs/kdas']['models']['KDAS (tuned)']
            assert cards._config(spec, dict(setting=label)) == path
            assert cards._config(spec, dict(
                setting='α = 0.5, T = 2')) == preset.families[family]

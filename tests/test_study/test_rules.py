"""The study's rules on fake records: selection, the teacher's agreement
and gate, the statistics of the report, the grids and the caches."""
import os.path as osp

import pytest

from mmseg_kdas import study

NAN = float('nan')
#: The README's study config: its grids, methods and families.
PRESET = study.load_study(
    osp.join(study.ROOT, 'configs/kd_study/polyp-cpu-128.py'))
GRIDS = PRESET.grids
KDAS_PAPER = (('alpha', 0.3), ('loss_at.temperature', 2.0))


# The rules, on fake records


def test_select_setting_picks_the_best_and_the_first_on_a_tie():
    a, b, c = ((('x', 1.0), ), (('x', 2.0), ), (('x', 3.0), ))
    assert study.select_setting([a, b, c], {a: 0.60, b: 0.64, c: 0.62}) == b
    assert study.select_setting([a, b, c], {a: 0.64, b: 0.64, c: 0.62}) == a
    # a diverged run is never chosen, even first in the grid
    assert study.select_setting([a, b, c], {a: NAN, b: 0.5, c: 0.4}) == b
    with pytest.raises(KeyError, match='x = 3'):
        study.select_setting([a, b, c], {a: 0.6, b: 0.6})
    with pytest.raises(study.ProtocolError, match='diverged'):
        study.select_setting([a], {a: NAN})


def test_choose_teacher_and_its_agreement_check():
    curves = {0: {600: 0.70, 1200: 0.78, 1800: 0.78},
              1: {600: 0.72, 1200: 0.77, 1800: 0.79}}
    choice = study.choose_teacher(curves, tolerance=0.02)
    # the first run is the teacher, not the best one
    assert (choice['seed'], choice['iter'], choice['value']) == (0, 1200,
                                                                 0.78)
    assert study.choose_teacher({1: curves[1], 0: curves[0]}, 0.02)[
        'seed'] == 1
    assert choice['runs'] == {0: (1200, 0.78), 1: (1800, 0.79)}  # earliest
    assert choice['spread'] == pytest.approx(0.01)
    curves[1][1800] = 0.81  # 0.03 apart
    with pytest.raises(study.ProtocolError) as err:
        study.choose_teacher(curves, tolerance=0.02)
    assert '0.7800' in str(err.value) and '0.8100' in str(err.value)
    assert choice['agreed']
    # accepted: the same teacher, and the failed check is recorded
    accepted = study.choose_teacher(curves, 0.02, accept_disagreement=True)
    assert (accepted['seed'], accepted['value']) == (0, 0.78)
    assert not accepted['agreed']
    assert accepted['spread'] == pytest.approx(0.03)
    assert study.best_checkpoint({3: NAN, 5: 0.2}) == (5, 0.2)


def test_gate_refuses_a_teacher_too_close_to_the_student():
    assert study.check_gate(0.80, 0.72, 0.05) == pytest.approx(0.08)
    assert study.check_gate(0.75, 0.70, 0.05) == pytest.approx(0.05)
    with pytest.raises(study.ProtocolError) as err:
        study.check_gate(0.7412, 0.7098, 0.05)
    assert 'teacher 0.7412' in str(err.value)
    assert 'plain student (seed 0) 0.7098' in str(err.value)
    with pytest.raises(study.ProtocolError):
        study.check_gate(0.66, 0.68, 0.05)  # behind


def test_gap_share_only_where_the_teacher_leads():
    assert study.gap_share(0.82, 0.62, 0.67) == pytest.approx(0.25)
    assert study.gap_share(0.667, 0.684, 0.669) is None  # behind (issue)
    assert study.gap_share(0.685, 0.684, 0.7) is None  # lead under 0.01
    assert study.gap_share(0.685, 0.684, 0.7, min_lead=0.0) == pytest.approx(
        16.0)


def _record(mdice):
    return dict(test={'Kvasir/mDice': mdice}, minutes=1.0, val={})


def test_summarize_by_hand():
    results = {
        'student': {0: _record(0.60), 1: _record(0.64), 2: _record(0.62)},
        'KDAS': {0: _record(0.66), 1: _record(0.65), 2: _record(0.70)},
    }
    stats = study.summarize(results, _record(0.82), 'Kvasir/mDice')
    assert stats['mean']['student'] == pytest.approx(0.62)
    assert stats['std']['student'] == pytest.approx(0.02)  # sample std
    assert stats['mean']['KDAS'] == pytest.approx(0.67)
    assert stats['std']['KDAS'] == pytest.approx(
        ((0.01**2 + 0.02**2 + 0.03**2) / 2)**0.5)
    assert stats['paired']['KDAS'] == pytest.approx({
        0: 0.06,
        1: 0.01,
        2: 0.08
    })
    # differences 0.06, 0.01, 0.08: mean 0.05, sample std
    # sqrt((0.01² + 0.04² + 0.03²) / 2) = 0.036056, t = 0.05 / (std / √3)
    assert stats['paired_t']['KDAS'] == pytest.approx(2.40192, abs=1e-5)
    # (0.67 - 0.62) / (0.82 - 0.62)
    assert stats['gap_closed']['KDAS'] == pytest.approx(0.25)
    assert 'student' not in stats['paired']
    behind = study.summarize(results, _record(0.61), 'Kvasir/mDice')
    assert behind['gap_closed'] == {'KDAS': None}


def test_one_seed_has_zero_std_and_no_student_no_pairs():
    stats = study.summarize({'KDAS': {0: _record(0.7)}}, _record(0.8),
                            'Kvasir/mDice')
    assert stats['std']['KDAS'] == 0
    assert stats['paired'] == {} and stats['gap_closed'] == {}
    assert stats['paired_t'] == {}


def test_paired_t_by_hand():
    # differences 0.02, 0.04: mean 0.03, std 0.014142, t = 0.03 / 0.01 = 3
    assert study.paired_t([0.02, 0.04]) == pytest.approx(3.0)
    assert study.paired_t([-0.02, -0.04]) == pytest.approx(-3.0)
    assert study.paired_t([0.05]) is None  # one seed
    assert study.paired_t([0.03, 0.03, 0.03]) is None  # no spread


def test_final_methods_hold_the_ablation_and_tuned_only_if_different():
    paper = {f: g[0] for f, g in GRIDS.items()}
    methods = study.final_methods(PRESET.methods, paper)
    assert list(methods) == [
        'student', 'KDAS (paper)', 'KDAS-ref', 'PixelKD (tuned)',
        'CWD (tuned)', 'AT (tuned)', 'L_AT alone', 'L_SGM alone'
    ]
    assert dict(methods['L_AT alone'].setting)['sgm_weight'] == 0.0
    assert dict(methods['L_SGM alone'].setting)['at_weight'] == 0.0
    assert dict(methods['L_SGM alone'].setting)['alpha'] == 0.3
    tuned = dict(paper, KDAS=GRIDS['KDAS'][3])
    methods = study.final_methods(PRESET.methods, tuned)
    assert methods['KDAS (tuned)'] == study.Run('KDAS',
                                                GRIDS['KDAS'][3])
    assert methods['KDAS (paper)'].setting == KDAS_PAPER


def test_grids_are_small_and_hold_the_published_settings():
    assert all(len(g) <= 4 for g in GRIDS.values())
    assert GRIDS['KDAS'][0] == (('alpha', 0.3), ('loss_at.temperature',
                                                 2.0))
    cwd = [dict(s) for s in GRIDS['CWD']]
    assert {s['loss_at.temperature'] for s in cwd} == {1.0, 4.0}
    assert {'loss_at.temperature': 1.0, 'loss_at.loss_weight': 5.0} in cwd
    assert {'loss_at.temperature': 4.0, 'loss_at.loss_weight': 3.0} in cwd
    slugs = [study.Run(f, s).key for f, g in GRIDS.items() for s in g]
    assert len(set(slugs)) == len(slugs)


def test_caches_one_per_set_of_teacher_maps():
    needs = {
        f: study.family_sources(PRESET, f)
        for f in PRESET.families if f != 'student'
    }
    assert needs['KDAS'] == {'head:0', 'head:1'}
    assert needs['KDAS-ref'] == {'head:0'}
    assert needs['AT'] == {f'backbone:{i}' for i in range(4)}
    plan = study.plan_caches(needs)
    head = frozenset({'head:0', 'head:1'})
    assert plan['KDAS-ref'] == plan['CWD'] == plan['PixelKD'] == head
    assert plan['AT'] == needs['AT'] and len(set(plan.values())) == 2
    assert study.cache_name(head) == 'head0-head1'
    cmd = study.cache_command('c.py', 'out', 't.pth')
    assert cmd[1:] == [
        'tools/cache_teacher.py', 'c.py', '--out', 'out', '--cfg-options',
        'model.teacher_ckpt=t.pth'
    ]

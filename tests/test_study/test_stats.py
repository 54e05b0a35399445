"""The study's statistics, by hand: the paired t and the share of the gap."""
import math

import pytest
from scipy import stats as scipy_stats

from mmseg_kdas.study.stats import gap_share, paired_t, summarize


def test_paired_t_is_the_mean_over_its_standard_error():
    # differences 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3
    # = 14 / 3, standard error sqrt(14 / 3 / 4), t = 3 * sqrt(6 / 7)
    assert paired_t([1.0, 2.0, 3.0, 6.0]) == pytest.approx(
        3 * math.sqrt(6 / 7))
    # the paired test of the two methods' values
    method, student = [0.66, 0.65, 0.70], [0.60, 0.64, 0.62]
    assert paired_t([m - s for m, s in zip(method, student)]) == (
        pytest.approx(scipy_stats.ttest_rel(method, student).statistic))
    assert paired_t([0.0, 0.0]) is None  # no spread
    assert paired_t([]) is None


def test_gap_share_by_hand():
    # teacher 0.80, plain student 0.70: a lead of 0.10
    assert gap_share(0.80, 0.70, 0.75) == pytest.approx(0.5)
    assert gap_share(0.80, 0.70, 0.80) == pytest.approx(1.0)  # all of it
    assert gap_share(0.80, 0.70, 0.70) == 0.0  # none
    assert gap_share(0.80, 0.70, 0.68) == pytest.approx(-0.2)  # worse
    assert gap_share(0.80, 0.70, 0.85) == pytest.approx(1.5)  # past it


def test_gap_share_only_from_the_smallest_lead_on():
    # exact in binary: a lead of 0.25, method 0.125 ahead of the student
    assert gap_share(0.75, 0.5, 0.625, min_lead=0.25) == 0.5
    assert gap_share(0.75, 0.5, 0.625, min_lead=0.25 + 2**-20) is None
    assert gap_share(0.70, 0.70, 0.75) is None  # no lead
    assert gap_share(0.60, 0.70, 0.75) is None  # the teacher is behind
    assert gap_share(float('nan'), 0.70, 0.75) is None  # no teacher figure


def _record(mdice):
    return dict(test={'Kvasir/mDice': mdice})


def test_summarize_gives_the_gap_closed_of_the_means():
    results = {
        'student': {0: _record(0.5), 1: _record(0.75)},  # mean 0.625
        'KDAS': {0: _record(0.75), 1: _record(0.75)},  # mean 0.75
    }
    stats = summarize(results, _record(0.875), 'Kvasir/mDice')
    # (0.75 - 0.625) / (0.875 - 0.625)
    assert stats['gap_closed'] == {'KDAS': 0.5}
    assert stats['paired'] == {'KDAS': {0: 0.25, 1: 0.0}}
    # differences 0.25, 0: mean 0.125, std 0.25 / sqrt(2), t = 1
    assert stats['paired_t']['KDAS'] == pytest.approx(1.0)
    assert summarize(results, _record(0.63), 'Kvasir/mDice')[
        'gap_closed'] == {'KDAS': None}  # a lead under 0.01


def test_paired_test_values_and_rounding_noise():
    from mmseg_kdas.study.stats import paired_test

    # mean 2, std 1, n 3: t = 2 / (1 / sqrt 3) = 3.464, two-sided p at 2
    # degrees of freedom 0.0742
    t, p = paired_test([1.0, 2.0, 3.0])
    assert t == pytest.approx(3.4641, abs=1e-4)
    assert p == pytest.approx(0.0742, abs=1e-4)
    # equal differences up to float rounding: no spread, no t
    assert paired_test([0.7 - 0.6, 0.8 - 0.7, 0.5 - 0.4]) is None
    assert paired_test([0.1]) is None


def test_head_to_head_and_ranking():
    from mmseg_kdas.study.stats import head_to_head, ranking

    def runs(*values):
        return {s: dict(test={'K/mDice': v}) for s, v in enumerate(values)}

    results = {'student': runs(0.5, 0.6, 0.55), 'A': runs(0.6, 0.7, 0.7),
               'B': runs(0.55, 0.6, 0.6, 0.9)}  # B has a fourth seed
    rows = head_to_head(results, 'A', ['student', 'A', 'B'], 'K/mDice')
    assert [r['other'] for r in rows] == ['student', 'B']  # not itself
    vs_b = rows[1]
    assert list(vs_b['diffs']) == [0, 1, 2]  # the seeds both have
    assert vs_b['mean'] == pytest.approx(0.25 / 3)
    assert vs_b['t'] is not None and 0 < vs_b['p'] < 1
    # means: A 0.6667, B 0.6625 (its four seeds), student 0.55
    assert ranking(results, 'K/mDice') == ['A', 'B', 'student']

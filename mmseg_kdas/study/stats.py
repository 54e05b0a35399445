"""The study's statistics: pure functions of the test figures.

Across seeds: the mean and the sample standard deviation of each method;
paired by seed against the plain student: the differences and their
paired t; against the teacher: the share of its lead a method closes.
"""
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from scipy.stats import ttest_1samp


def gap_share(teacher: float, student: float, method: float,
              min_lead: float = 0.01) -> Optional[float]:
    """The share of the teacher's lead over the plain student a method closes.

    Args:
        teacher: The teacher's value.
        student: The plain student's mean.
        method: The method's mean.
        min_lead: The smallest lead for which a share is given: below it
            (or when the teacher is behind) the share is meaningless.

    Returns:
        ``(method - student) / (teacher - student)``, or None when the
        teacher is not at least ``min_lead`` ahead.
    """
    lead = teacher - student
    if not lead >= min_lead:
        return None
    return (method - student) / lead


def summarize(results: Dict[str, Dict[int, dict]],
              teacher: dict,
              key: str,
              min_lead: float = 0.01) -> dict:
    """Statistics of one test measure across seeds.

    Args:
        results: ``{method: {seed: record}}``, records with ``test``.
        teacher: The teacher's record (with ``test``).
        key: A metric key, e.g. ``'Kvasir/mDice'``.
        min_lead: See :func:`gap_share`.

    Returns:
        dict: ``mean`` and ``std`` (sample standard deviation, 0 for one
        seed) per method; ``paired`` ``{method: {seed: value - the plain
        student's value of the same seed}}`` for the seeds both have;
        ``paired_t`` ``{method: t or None}`` (:func:`paired_t` of those
        differences); ``gap_closed`` ``{method: share or None}``
        (:func:`gap_share`) when the plain student was run.
    """
    mean, std, paired, t, gap_closed = {}, {}, {}, {}, {}
    for method, seeds in results.items():
        values = [rec['test'][key] for rec in seeds.values()]
        mean[method] = statistics.mean(values)
        std[method] = statistics.stdev(values) if len(values) > 1 else 0.0
    student = results.get('student')
    if student:
        for method, seeds in results.items():
            if method == 'student':
                continue
            paired[method] = {
                seed: rec['test'][key] - student[seed]['test'][key]
                for seed, rec in seeds.items() if seed in student
            }
            t[method] = paired_t(list(paired[method].values()))
            gap_closed[method] = gap_share(teacher['test'][key],
                                           mean['student'], mean[method],
                                           min_lead)
    return dict(mean=mean, std=std, paired=paired, paired_t=t,
                gap_closed=gap_closed)


def paired_t(diffs: Sequence[float]) -> Optional[float]:
    """The paired t statistic of per-seed differences.

    Their mean over its standard error, ``mean / (std / sqrt(n))`` (sample
    std; ``n - 1`` degrees of freedom): :func:`scipy.stats.ttest_1samp`
    of the differences against 0, which is
    :func:`scipy.stats.ttest_rel` of the two methods' values.

    Args:
        diffs: Per-seed differences, method - plain student.

    Returns:
        The t statistic, or None for fewer than two differences or when
        they are all equal, up to float rounding (no spread to measure the
        mean against).
    """
    test = paired_test(diffs)
    return None if test is None else test[0]


def paired_test(diffs: Sequence[float]) -> Optional[Tuple[float, float]]:
    """The paired t of per-seed differences and its two-sided p value
    (:func:`scipy.stats.ttest_1samp` against 0, ``n - 1`` degrees of
    freedom), or None as :func:`paired_t`."""
    if len(diffs) < 2:
        return None
    # equal differences up to float rounding (0.7 - 0.6 vs 0.8 - 0.7) have
    # no spread to measure the mean against either
    scale = max(1.0, max(abs(d) for d in diffs))
    if statistics.stdev(diffs) <= 1e-12 * scale:
        return None
    test = ttest_1samp(list(diffs), 0.0)
    return float(test.statistic), float(test.pvalue)


def head_to_head(results: Dict[str, Dict[int, dict]], method: str,
                 others: Sequence[str], key: str) -> List[dict]:
    """``method`` against each of ``others``, paired by seed.

    Args:
        results: ``{method: {seed: record}}``, records with ``test``.
        method: The method compared (e.g. ``'KDAS (tuned)'``).
        others: The methods it is compared with.
        key: A metric key, e.g. ``'CVC-ColonDB/mDice'``.

    Returns:
        list: Per other method (skipping ``method`` itself), ``other``,
        ``diffs`` (``{seed: method - other}`` over the seeds both have),
        ``mean`` (their mean, NaN when none), ``t`` and ``p``
        (:func:`paired_test`, None when it gives none).
    """
    rows = []
    for other in others:
        if other == method:
            continue
        a, b = results[method], results[other]
        diffs = {s: a[s]['test'][key] - b[s]['test'][key]
                 for s in sorted(a) if s in b}
        test = paired_test(list(diffs.values()))
        rows.append(dict(
            other=other, diffs=diffs,
            mean=statistics.mean(diffs.values()) if diffs else float('nan'),
            t=None if test is None else test[0],
            p=None if test is None else test[1]))
    return rows


def ranking(results: Dict[str, Dict[int, dict]], key: str) -> List[str]:
    """The methods by their mean of ``key`` over seeds, best first (mean
    Dice: higher is better)."""
    means = {m: statistics.mean(r['test'][key] for r in seeds.values())
             for m, seeds in results.items()}
    return sorted(means, key=lambda m: -means[m])

"""The two evaluation flavours: MATLAB toolbox and its Python port.

Each case is one where the flavours differ, with both values worked out by
hand (or by a plain re-statement of the conventions in this file).
"""
import numpy as np
import pytest
from scipy import ndimage

from mmseg_kdas.evaluation import (PROTOCOLS, TOOLBOX_THRESHOLDS,
                                   check_protocol, polyp_image_measures,
                                   structure_measure, weighted_fmeasure)

EPS = np.finfo(np.float64).eps


def object_score(values, ddof):
    mean, std = np.mean(values), np.std(values, ddof=ddof)
    return 2 * mean / (mean**2 + 1 + std)


def ssim(p, g):
    """Region similarity of one quadrant, from its definition."""
    n = p.size
    x, y = p.mean(), g.mean()
    sxy = ((p - x) * (g - y)).sum() / (n - 1 + EPS)
    sxx = ((p - x)**2).sum() / (n - 1 + EPS)
    syy = ((g - y)**2).sum() / (n - 1 + EPS)
    alpha = 4 * x * y * sxy
    beta = (x**2 + y**2) * (sxx + syy)
    if alpha != 0:
        return alpha / beta
    return 1.0 if beta == 0 else 0.0


def test_protocol_names():
    assert PROTOCOLS == ('matlab', 'python-port')
    assert check_protocol('python-port') == 'python-port'
    for call in (lambda: check_protocol('octave'),
                 lambda: structure_measure(np.zeros((2, 2)),
                                           np.eye(2, dtype=bool), 0.5,
                                           'uacanet'),
                 lambda: polyp_image_measures(
                     np.zeros((2, 2)), np.eye(2), protocol='MATLAB')):
        with pytest.raises(ValueError, match="'matlab', 'python-port'"):
            call()


def test_object_score_standard_deviation_by_hand():
    # 3x3, the object is the centre pixel (score 1 in both flavours); the
    # background holds seven 1s and one 1 - v of 1 - pred.
    v = 0.5
    gt = np.zeros((3, 3), bool)
    gt[1, 1] = True
    pred = np.zeros((3, 3))
    pred[1, 1], pred[2, 2] = 1.0, v
    m = 1 - v / 8
    sample_std = v / np.sqrt(8)  # sqrt(v^2 * 7/64 * 8/7)
    population_std = v * np.sqrt(7) / 8
    o_matlab = 1 / 9 + 8 / 9 * 2 * m / (m**2 + 1 + sample_std)
    o_port = 1 / 9 + 8 / 9 * 2 * m / (m**2 + 1 + population_std)
    # MATLAB splits after row / column 2 (1-based centroid 2, 2): the 2x2
    # top-left quadrant equals the ground truth, the others are constant
    # (the single pixel v included: no variance) -> region score 1.
    region_matlab = 1.0
    # The port splits after row / column 1 (0-based centroid 1, 1): three
    # all-zero quadrants (5 of 9 pixels) score 1; the bottom-right one holds
    # pred (1, 0, 0, v) against gt (1, 0, 0, 0).
    x, y = (1 + v) / 4, 1 / 4
    sxy = (3 / 4 - v / 4) / 3
    sxx = (1 + v**2 - 4 * x**2) / 3
    syy = (1 - 4 * y**2) / 3
    q4 = 4 * x * y * sxy / ((x**2 + y**2) * (sxx + syy))
    region_port = 5 / 9 + 4 / 9 * q4
    assert q4 == pytest.approx(0.802675, abs=1e-6)
    assert structure_measure(pred, gt) == pytest.approx(
        0.5 * o_matlab + 0.5 * region_matlab, rel=1e-12)
    assert structure_measure(pred, gt, protocol='python-port') == \
        pytest.approx(0.5 * o_port + 0.5 * region_port, rel=1e-12)


def test_centroid_split_by_hand():
    # The object is two pixels, row 1, columns 2 and 3 of a 3x7 image:
    # 0-based centroid (1, 2.5). MATLAB: 1-based (2, 3.5) rounded half up
    # -> split after row 2, column 4. The port: numpy rounds 2.5 to the even
    # 2 -> split after row 1, column 2.
    gt = np.zeros((3, 7), bool)
    gt[1, 2:4] = True
    # constant per class, so the object scores do not differ; binary
    # fractions, so that the constant quadrants have no rounding variance
    a, b = 0.75, 0.25
    pred = np.where(gt, a, b)
    o = 2 * a / (a**2 + 1)  # foreground a, background 1 - b = a

    def q(y):  # a mixed quadrant of pred = (a - b) * gt + b
        d, x = a - b, (a - b) * y + b
        return 4 * d * x * y / ((x**2 + y**2) * (1 + d**2))

    # MATLAB: rows 0-1 x cols 0-3 (8 pixels, 2 in the object); the other
    # quadrants (6, 4 and 3 pixels) are all background, constant -> 1
    region_matlab = 13 / 21 + 8 / 21 * q(2 / 8)
    # port: rows 1-2 x cols 2-6 (10 pixels, 2 in the object); 2 + 5 + 4
    # background pixels
    region_port = 11 / 21 + 10 / 21 * q(2 / 10)
    assert q(2 / 8) == pytest.approx(0.1875 / 0.25390625)
    assert q(2 / 10) == pytest.approx(0.14 / 0.203125)
    sm_matlab = structure_measure(pred, gt)
    sm_port = structure_measure(pred, gt, protocol='python-port')
    assert sm_matlab == pytest.approx(0.5 * o + 0.5 * region_matlab,
                                      rel=1e-12)
    assert sm_port == pytest.approx(0.5 * o + 0.5 * region_port, rel=1e-12)
    assert sm_port < sm_matlab


def test_emeasure_inclusive_threshold_by_hand():
    # pred values 1 and 0 lie on thresholds (t = 1, t = 0); 0.61 and 0.3 lie
    # between thresholds (k / 255 for no integer k), so only the first and
    # the last point of the curve differ.
    gt = np.array([[1, 0], [0, 0]], bool)
    pred = np.array([[1.0, 0.61], [0.3, 0.0]])
    matlab = polyp_image_measures(pred, gt)['Em_curve']
    port = polyp_image_measures(pred, gt, protocol='python-port')['Em_curve']
    # t = 1: the port binarises pred >= 1 -> the ground truth itself: every
    # pixel aligns to 1, 4 / (N - 1); MATLAB's pred > 1 is empty: every
    # pixel scores 1/4 -> 1 / 3
    assert port[0] == pytest.approx(4 / 3)
    assert matlab[0] == pytest.approx(1 / 3)
    # t = 0: the port takes every pixel (1/4 each -> 1/3); MATLAB three
    # pixels: the two correct ones align to 3/5 (16/25 each), the two wrong
    # ones to -1 (0) -> 32/25 / 3
    assert port[-1] == pytest.approx(1 / 3)
    assert matlab[-1] == pytest.approx(32 / 75)
    np.testing.assert_allclose(port[1:-1], matlab[1:-1], rtol=0, atol=1e-15)
    m_matlab = polyp_image_measures(pred, gt)['mEm']
    m_port = polyp_image_measures(pred, gt, protocol='python-port')['mEm']
    assert m_port - m_matlab == pytest.approx((4 / 3 - 32 / 75) / 256)


def _background_weights(gt):
    """Sum over the background of 2 - 0.5 ** (distance / 5), brute force."""
    ys, xs = np.nonzero(gt)
    total = 0.0
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            if not gt[y, x]:
                d = np.sqrt(((ys - y)**2 + (xs - x)**2).min())
                total += 2 - 0.5**(d / 5)
    return total


def test_weighted_fmeasure_border_padding_by_hand():
    # A constant prediction c and an object in the image corner. The error
    # map, once each background pixel takes the error of its nearest object
    # pixel, is 1 - c everywhere. The port's Gaussian pads by repeating the
    # border: it stays 1 - c, so recall = c and precision = G / (G + B).
    # MATLAB pads with zeros: near the border the filtered error is
    # (1 - c) * (the part of the kernel inside the image), which lowers the
    # error of the object pixels there.
    size, c = 12, 0.3
    gt = np.zeros((size, size), bool)
    gt[:4, :4] = True
    pred = np.full((size, size), c)
    g = gt.sum()
    fp = c * _background_weights(gt)

    recall = c
    precision = g * c / (g * c + fp)
    port = 2 * recall * precision / (recall + precision)

    offsets = np.arange(-3, 4)
    kernel = np.exp(-(offsets[:, None]**2 + offsets[None]**2) / 50)
    kernel /= kernel.sum()
    inside = np.zeros((size, size))
    for y in range(size):
        for x in range(size):
            for i, dy in enumerate(offsets):
                for j, dx in enumerate(offsets):
                    if 0 <= y + dy < size and 0 <= x + dx < size:
                        inside[y, x] += kernel[i, j]
    err = (1 - c) * inside[gt]
    tp = g - err.sum()
    recall = 1 - err.mean()
    precision = tp / (tp + fp)
    matlab = 2 * recall * precision / (recall + precision)

    assert weighted_fmeasure(pred, gt) == pytest.approx(matlab, rel=1e-9)
    assert weighted_fmeasure(pred, gt, protocol='python-port') == \
        pytest.approx(port, rel=1e-9)
    assert matlab > port
    # away from the border the two paddings agree
    centred = np.zeros((size, size), bool)
    centred[4:8, 4:8] = True
    assert weighted_fmeasure(pred, centred) == pytest.approx(
        weighted_fmeasure(pred, centred, protocol='python-port'), rel=1e-12)


def naive_port(pred, gt):
    """The port's conventions, written plainly (loops, scipy filters)."""
    g = gt.astype(float)
    # S-measure: population std; split at the 0-based centroid rounded to
    # the nearest integer, halves to even (Python's round does the same)
    u = g.mean()
    obj = u * object_score(pred[gt], 0) + \
        (1 - u) * object_score(1 - pred[~gt], 0)
    rows, cols = np.nonzero(gt)
    r, c = round(rows.mean()), round(cols.mean())
    region = 0.0
    for rs in (slice(0, r), slice(r, None)):
        for cs in (slice(0, c), slice(c, None)):
            p, q = pred[rs, cs], g[rs, cs]
            region += p.size / pred.size * ssim(p, q)
    sm = 0.5 * obj + 0.5 * region

    # weighted F-measure with the border repeated ('nearest')
    err = np.abs(pred - g)
    dist, (iy, ix) = ndimage.distance_transform_edt(~gt, return_indices=True)
    err_t = err[iy, ix]
    offsets = np.arange(-3, 4)
    kernel = np.exp(-(offsets[:, None]**2 + offsets[None]**2) / 50)
    err_a = ndimage.convolve(err_t, kernel / kernel.sum(), mode='nearest')
    min_err = np.where(gt, np.minimum(err, err_a), err)
    weight = np.where(gt, 1.0, 2 - 0.5**(dist / 5))
    ew = min_err * weight
    recall = 1 - ew[gt].mean()
    tp = g.sum() - ew[gt].sum()
    precision = tp / (tp + ew[~gt].sum())
    wfm = 2 * recall * precision / (recall + precision)

    # E-measure curve with pred >= t
    curve = []
    for t in TOOLBOX_THRESHOLDS:
        b = (pred >= t).astype(float)
        ab, ag = b - b.mean(), g - g.mean()
        align = 2 * ab * ag / (ab**2 + ag**2 + EPS)
        curve.append(((align + 1)**2 / 4).sum() / (g.size - 1))
    return dict(Sm=sm, wFm=wfm, Em_curve=np.array(curve))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_python_port_equals_its_conventions_written_plainly(seed):
    rng = np.random.default_rng(seed)
    gt = np.zeros((23, 31), bool)
    top, left = rng.integers(0, 8, 2)  # touching the border at times
    gt[top:top + 12, left:left + 15] = rng.random((12, 15)) < 0.9
    pred = np.clip(0.6 * gt + 0.5 * rng.random(gt.shape), 0, 1)
    pred = np.rint(pred * 255) / 255  # as the saved 8-bit maps
    expected = naive_port(pred, gt)
    port = polyp_image_measures(pred, gt, protocol='python-port')
    matlab = polyp_image_measures(pred, gt)
    assert port['Sm'] == pytest.approx(expected['Sm'], rel=1e-12)
    assert port['wFm'] == pytest.approx(expected['wFm'], rel=1e-12)
    np.testing.assert_allclose(
        port['Em_curve'], expected['Em_curve'], rtol=0, atol=1e-12)
    assert port['mEm'] == pytest.approx(expected['Em_curve'].mean())
    # the flavours agree on everything else
    for key in ('Dice', 'IoU', 'mDice', 'mIoU', 'MAE'):
        assert port[key] == matlab[key]
    assert port['Sm'] != matlab['Sm']

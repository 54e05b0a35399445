"""Values of the per-image polyp measures on hand-built masks."""
import numpy as np
import pytest

from mmseg_kdas.evaluation import (TOOLBOX_THRESHOLDS, check_pred_gt,
                                   dice_iou_from_counts, emeasure_from_counts,
                                   mean_absolute_error, polyp_image_measures,
                                   prepare_prediction, structure_measure,
                                   threshold_counts, weighted_fmeasure)


def square(size=8, lo=2, hi=6):
    gt = np.zeros((size, size), bool)
    gt[lo:hi, lo:hi] = True
    return gt


def naive_toolbox(pred, gt):
    """The toolbox's loop over the 256 thresholds, written plainly."""
    dice, iou, em = [], [], []
    eps = np.finfo(np.float64).eps
    g = gt.astype(float)
    for t in np.linspace(1, 0, 256):
        b = pred >= t
        tp = (b & gt).sum()
        dice.append(0 if tp == 0 else 2 * tp / (gt.sum() + b.sum()))
        iou.append(0 if tp == 0 else tp / (gt.sum() + b.sum() - tp))
        e = (pred > t).astype(float)  # strict, as MATLAB main.m
        if g.sum() == 0:
            enhanced = 1 - e
        elif g.sum() == g.size:
            enhanced = e
        else:
            ae, ag = e - e.mean(), g - g.mean()
            enhanced = (2 * ag * ae / (ag**2 + ae**2 + eps) + 1)**2 / 4
        em.append(enhanced.sum() / (g.size - 1 + eps))
    return np.array(dice), np.array(iou), np.array(em)


def test_perfect_prediction():
    gt = square()  # 16 of 64 pixels
    m = polyp_image_measures(gt.astype(float), gt)
    assert m['Dice'] == 1 and m['IoU'] == 1
    assert m['MAE'] == 0
    assert m['Sm'] == pytest.approx(1, abs=1e-12)
    assert m['wFm'] == pytest.approx(1, abs=1e-12)
    # every threshold but 0 (all pixels positive) scores 1
    assert m['mDice'] == pytest.approx((255 + 2 * 16 / (16 + 64)) / 256)
    assert m['mIoU'] == pytest.approx((255 + 16 / 64) / 256)
    # E-measure: the toolbox divides by H*W - 1; at threshold 1 nothing is
    # strictly above, an empty prediction scores 16 / 63
    assert m['Em_curve'][1:] == pytest.approx(np.full(255, 64 / 63))
    assert m['Em_curve'][0] == pytest.approx(16 / 63)
    assert m['mEm'] == pytest.approx((16 / 63 + 255 * 64 / 63) / 256)


def test_half_overlap_by_hand():
    gt = np.zeros((4, 4), bool)
    gt[:, :2] = True  # left half
    pred = np.zeros((4, 4))
    pred[:2, :] = 1  # top half: 4 true positives
    m = polyp_image_measures(pred, gt)
    assert m['Dice'] == pytest.approx(0.5)
    assert m['IoU'] == pytest.approx(1 / 3)
    assert m['MAE'] == pytest.approx(0.5)
    assert m['mDice'] == pytest.approx((255 * 0.5 + 2 / 3) / 256)
    assert m['mIoU'] == pytest.approx((255 / 3 + 0.5) / 256)
    # E: matching pixels align to 1, the others to -1 -> 8 / 15;
    # nothing above threshold 1 -> all pixels 1/4 -> 4 / 15
    assert m['mEm'] == pytest.approx((4 / 15 + 255 * 8 / 15) / 256)
    # S: object score of both halves (mean 0.5, sample std sqrt(2/7)),
    # region score with the MATLAB centroid (x=2, y=round(2.5)=3): only the
    # two bottom quadrants (constant and equal or all-zero) score 1
    obj = 2 * 0.5 / (0.25 + 1 + np.sqrt(2 / 7))
    assert m['Sm'] == pytest.approx(0.5 * obj + 0.5 * 4 / 16)


def test_structure_measure_constant_ground_truth():
    pred = np.full((5, 5), 0.2)
    assert structure_measure(pred, np.zeros((5, 5), bool)) == \
        pytest.approx(0.8)
    assert structure_measure(pred, np.ones((5, 5), bool)) == \
        pytest.approx(0.2)


def test_weighted_fmeasure_constant_prediction_by_hand():
    # gt far from the border: the Gaussian never sees the zero padding, so
    # for pred = c the weighted recall is c and the weighted precision
    # G / (G + sum of the background weights 2 - 0.5 ** (d / 5)).
    size, c = 20, 0.3
    gt = square(size, 8, 12)
    pred = np.full((size, size), c)
    ys, xs = np.nonzero(gt)
    weights = 0.0
    for y in range(size):
        for x in range(size):
            if not gt[y, x]:
                d = np.sqrt(((ys - y)**2 + (xs - x)**2).min())
                weights += 2 - 0.5**(d / 5)
    recall = c
    precision = gt.sum() / (gt.sum() + weights)
    expected = 2 * recall * precision / (recall + precision)
    assert weighted_fmeasure(pred, gt) == pytest.approx(expected, rel=1e-9)


def test_weighted_fmeasure_extremes():
    gt = square(20, 8, 12)
    assert weighted_fmeasure(1.0 - gt, gt) == pytest.approx(0, abs=1e-12)
    assert weighted_fmeasure(np.zeros((6, 6)), np.zeros((6, 6), bool)) == 0


def test_empty_ground_truth_as_the_toolbox():
    gt = np.zeros((4, 4), bool)
    m = polyp_image_measures(np.zeros((4, 4)), gt)
    # empty intersection -> Dice = IoU = 0 even for an empty prediction
    assert m['Dice'] == 0 and m['IoU'] == 0 and m['mDice'] == 0
    assert m['Sm'] == 1 and m['MAE'] == 0 and m['wFm'] == 0
    assert m['mEm'] == pytest.approx(16 / 15)  # sum(1 - pred) / (N - 1)
    m = polyp_image_measures(np.ones((4, 4)), gt)
    assert m['Sm'] == 0 and m['MAE'] == 1
    # only threshold 1 (nothing strictly above) rewards the background
    assert m['mEm'] == pytest.approx(16 / 15 / 256)


def test_full_ground_truth():
    gt = np.ones((4, 4), bool)
    m = polyp_image_measures(np.full((4, 4), 0.75), gt)
    assert m['Sm'] == pytest.approx(0.75)
    assert m['Dice'] == 1 and m['MAE'] == pytest.approx(0.25)
    # E = sum(pred) / (N - 1): pixels above t for t < 0.75 (191 thresholds
    # of k/255 <= 190/255 ... counted exactly)
    above = (0.75 > TOOLBOX_THRESHOLDS).sum()
    assert m['mEm'] == pytest.approx(above * 16 / 15 / 256)


def test_curves_match_the_toolbox_loop():
    rng = np.random.default_rng(0)
    for shape, quantised in (((17, 23), False), ((30, 12), True)):
        gt = rng.random(shape) < 0.3
        pred = np.clip(0.5 * gt + 0.6 * rng.random(shape), 0, 1)
        pred[0, 0], pred[0, 1] = 1.0, 0.0  # exact ends
        if quantised:
            pred = np.rint(pred * 255) / 255
        dice, iou, em = naive_toolbox(pred, gt)
        num_pred, num_tp = threshold_counts(pred, gt)
        d2, i2 = dice_iou_from_counts(num_pred, num_tp, int(gt.sum()))
        num_pred, num_tp = threshold_counts(pred, gt, strict=True)
        e2 = emeasure_from_counts(num_pred, num_tp, int(gt.sum()), gt.size)
        np.testing.assert_allclose(d2, dice, rtol=0, atol=1e-15)
        np.testing.assert_allclose(i2, iou, rtol=0, atol=1e-15)
        np.testing.assert_allclose(e2, em, rtol=0, atol=1e-12)
        m = polyp_image_measures(pred, gt)
        assert m['mDice'] == pytest.approx(dice.mean(), abs=1e-15)


def test_threshold_counts_any_order_and_ties():
    pred = np.array([[0.0, 0.5, 0.5, 1.0]])
    gt = np.array([[False, True, False, True]])
    thresholds = np.array([0.5, 1.0, 0.0])
    num_pred, num_tp = threshold_counts(pred, gt, thresholds)
    assert num_pred.tolist() == [3, 1, 4] and num_tp.tolist() == [2, 1, 2]
    num_pred, num_tp = threshold_counts(pred, gt, thresholds, strict=True)
    assert num_pred.tolist() == [1, 0, 3] and num_tp.tolist() == [1, 0, 2]


def test_dice_threshold_is_inclusive():
    gt = np.array([[True, False]])
    m = polyp_image_measures(np.array([[0.5, 0.49]]), gt)
    assert m['Dice'] == 1


def test_mae():
    gt = np.array([[True, False]])
    assert mean_absolute_error(np.array([[0.75, 0.5]]), gt) == 0.375


def test_prepare_prediction():
    # (p - min) / (max - min + 1e-8), then rounded to k / 255
    p = np.array([[0.1, 0.3, 0.9]])
    np.testing.assert_allclose(
        prepare_prediction(p), [[0, 64 / 255, 1]], atol=1e-12)
    np.testing.assert_allclose(
        prepare_prediction(p, quantize=False), [[0, 0.25, 1]], atol=1e-7)
    np.testing.assert_allclose(
        prepare_prediction(np.array([[0.2, 0.4, 0.6]]),
                           min_max_normalize=False),
        [[51 / 255, 102 / 255, 153 / 255]])
    assert (prepare_prediction(np.full((2, 2), 0.7)) == 0).all()


def test_bad_inputs_are_errors():
    gt = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match='same shape'):
        check_pred_gt(np.zeros((3, 4)), gt)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        check_pred_gt(np.full((3, 3), 1.5), gt)
    with pytest.raises(ValueError, match='NaN'):
        check_pred_gt(np.full((3, 3), np.nan), gt)
    gt[0, 0] = 255  # a 0 / 255 mask loaded as it is
    with pytest.raises(ValueError, match='binary'):
        polyp_image_measures(np.zeros((3, 3)), gt)


@pytest.mark.parametrize('thresholds', [
    TOOLBOX_THRESHOLDS,
    np.linspace(0.2, 0.9, 11),
    np.array([0.0, 0.1, 0.15, 0.7, 1.0]),  # uneven: binary search
])
def test_counts_equal_a_binary_search(thresholds):
    rng = np.random.default_rng(1)
    values = np.concatenate([
        rng.random(20000), thresholds, np.nextafter(thresholds, 2),
        np.nextafter(thresholds, -1),
        np.arange(256) / 255, [0.0, 1.0]
    ])
    values = np.clip(values, 0, 1)
    gt = rng.random(values.shape) < 0.5
    asc = np.sort(thresholds)
    for strict, side in ((False, 'right'), (True, 'left')):
        reached = np.searchsorted(asc, values, side=side)
        num_pred, num_tp = threshold_counts(values[None], gt[None],
                                            thresholds, strict)
        for t, n, tp in zip(thresholds, num_pred, num_tp):
            i = np.searchsorted(asc, t)
            assert n == (reached > i).sum()
            assert tp == (reached[gt] > i).sum()
            positive = values > t if strict else values >= t
            assert n == positive.sum() and tp == (positive & gt).sum()

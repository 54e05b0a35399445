"""PolypMetric: per-set averages of the per-image measures, keys, table."""
import logging
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from mmseg_kdas.evaluation import (PolypMetric, polyp_image_measures,
                                   prepare_prediction, weighted_fmeasure)


def sample(prob, gt, test_set='Kvasir', name='x.jpg'):
    prob = torch.as_tensor(prob, dtype=torch.float32)
    if prob.dim() == 2:
        prob = prob[None]
    data = SegDataSample(
        seg_logits=PixelData(data=prob),
        gt_sem_seg=PixelData(data=torch.as_tensor(gt)[None].long()),
        metainfo=dict(img_path=f'/data/{test_set}/images/{name}'))
    if test_set is not None:
        data.set_metainfo(dict(test_set=test_set))
    return data.to_dict()


def cases():
    square = np.zeros((8, 8), np.int64)
    square[2:6, 2:6] = 1
    half_gt = np.zeros((4, 4), np.int64)
    half_gt[:, :2] = 1
    half_pred = np.zeros((4, 4))
    half_pred[:2] = 1
    rng = np.random.default_rng(0)
    noisy_gt = (rng.random((6, 7)) < 0.4).astype(np.int64)
    noisy = np.clip(0.3 + 0.5 * noisy_gt + 0.3 * rng.random((6, 7)), 0, 1)
    return [
        ('A', square.astype(float), square, 'perfect.jpg'),
        ('A', half_pred, half_gt, 'half.jpg'),
        ('B', noisy.astype(np.float32), noisy_gt, 'noisy.jpg'),
    ]


class Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize('protocol', ['matlab', 'python-port'])
@pytest.mark.parametrize('raw', [True, False])
def test_per_set_means_equal_the_pure_functions(raw, protocol):
    metric = PolypMetric(
        min_max_normalize=not raw, quantize=not raw, protocol=protocol)
    metric.process({}, [sample(p, g, s, n) for s, p, g, n in cases()])
    assert len(metric.results) == 3
    records = Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        metrics = metric.compute_metrics(metric.results)
    finally:
        logger.removeHandler(records)

    per_image = {}
    for s, p, g, _ in cases():
        p = np.asarray(p, np.float32).astype(np.float64)
        if not raw:
            p = prepare_prediction(p)
        per_image.setdefault(s, []).append(
            polyp_image_measures(p, g, protocol=protocol))
    for s, items in per_image.items():
        for key in ('Dice', 'IoU', 'mDice', 'mIoU', 'Sm', 'wFm', 'mEm',
                    'MAE'):
            expected = np.mean([m[key] for m in items])
            assert metrics[f'{s}/{key}'] == pytest.approx(
                expected, abs=1e-12)
        curve = np.mean([m['Em_curve'] for m in items], axis=0)
        assert metrics[f'{s}/maxEm'] == pytest.approx(curve.max())
    for key in ('mDice', 'Dice', 'MAE', 'maxEm'):
        assert metrics[key] == pytest.approx(
            (metrics[f'A/{key}'] + metrics[f'B/{key}']) / 2)
    # hand values of set A: (1 + 0.5) / 2 at threshold 0.5
    assert metrics['A/Dice'] == pytest.approx(0.75)
    assert metrics['A/IoU'] == pytest.approx((1 + 1 / 3) / 2)
    assert metrics['A/MAE'] == pytest.approx(0.25)
    table = '\n'.join(records.messages)
    for text in ('Test set', 'mDice', 'maxEm', '| A ', '| B ',
                 'mean of sets', f'{protocol} protocol'):
        assert text in table


def test_perfect_prediction_through_the_metric():
    gt = np.zeros((16, 16), np.int64)
    gt[3:9, 5:12] = 1
    logits = torch.where(torch.as_tensor(gt) == 1, 20.0, -20.0)[None]
    metric = PolypMetric(activation='sigmoid')
    metric.process({}, [sample(logits, gt)])
    m = metric.compute_metrics(metric.results)
    assert m['Kvasir/Dice'] == 1 and m['Kvasir/IoU'] == 1
    assert m['Kvasir/MAE'] == 0
    assert m['Kvasir/Sm'] == pytest.approx(1)
    assert m['Kvasir/wFm'] == pytest.approx(1)
    assert m['Kvasir/maxEm'] == pytest.approx(256 / 255)  # N / (N - 1)
    assert set(m) == {f'Kvasir/{k}' for k in metric_keys()} | \
        set(metric_keys())


def metric_keys():
    return ('mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'maxEm', 'MAE', 'Dice',
            'IoU')


def test_activations():
    gt = np.array([[1, 0], [0, 0]])
    x = torch.tensor([[2.0, -1.0], [0.5, -3.0]])
    probs = x.sigmoid()
    reference = PolypMetric(quantize=False, min_max_normalize=False)
    reference.process({}, [sample(probs, gt)])
    for kwargs, logits in ((dict(activation='sigmoid'), x[None]),
                           (dict(activation='softmax'),
                            torch.stack([torch.zeros_like(x), x])),
                           (dict(), torch.stack([torch.zeros_like(x), x]))):
        metric = PolypMetric(quantize=False, min_max_normalize=False,
                             **kwargs)
        metric.process({}, [sample(logits, gt)])
        for key in ('mDice', 'Sm', 'MAE', 'wFm'):
            assert metric.results[0][key] == pytest.approx(
                reference.results[0][key], abs=1e-7)
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        PolypMetric().process({}, [sample(x, gt)])
    with pytest.raises(ValueError, match='1xHxW or 2xHxW'):
        PolypMetric().process({}, [sample(torch.zeros(3, 2, 2), gt)])
    with pytest.raises(ValueError, match='activation'):
        PolypMetric(activation='relu')


def test_protocols_differ_where_the_measures_do():
    # the object in the image corner, a constant map: only the padding of
    # the weighted F-measure's filter differs (see test_polyp_protocols)
    gt = np.zeros((12, 12), np.int64)
    gt[:4, :4] = 1
    prob = np.full((12, 12), 0.3)
    results = {}
    for protocol in ('matlab', 'python-port'):
        metric = PolypMetric(
            min_max_normalize=False, quantize=False, protocol=protocol)
        metric.process({}, [sample(prob, gt)])
        results[protocol] = metric.compute_metrics(metric.results)
        assert results[protocol]['Kvasir/wFm'] == pytest.approx(
            weighted_fmeasure(prob, gt.astype(bool), protocol=protocol),
            rel=1e-6)
    assert PolypMetric().protocol == 'matlab'
    assert results['matlab']['wFm'] > results['python-port']['wFm']
    for key in ('mDice', 'mIoU', 'Dice', 'IoU', 'MAE'):
        assert results['matlab'][key] == results['python-port'][key]
    with pytest.raises(ValueError, match='protocol'):
        PolypMetric(protocol='uacanet')


def test_test_set_is_required():
    gt = np.ones((2, 2), np.int64)
    with pytest.raises(KeyError, match='test_set'):
        PolypMetric().process({}, [sample(np.ones((2, 2)), gt, None)])
    metric = PolypMetric(default_test_set='all')
    metric.process({}, [sample(np.ones((2, 2)), gt, None)])
    assert 'all/mDice' in metric.compute_metrics(metric.results)


def test_unbinarised_ground_truth_is_an_error_naming_the_image():
    gt = np.array([[0, 255], [0, 0]])
    with pytest.raises(ValueError, match=r'img7\.jpg.*LoadPolypAnnotations'):
        PolypMetric().process({}, [sample(np.ones((2, 2)), gt,
                                          name='img7.jpg')])


def test_prediction_resized_to_the_ground_truth():
    gt = np.zeros((8, 8), np.int64)
    gt[:, 4:] = 1
    prob = torch.tensor([[0.1, 0.9], [0.1, 0.9]])
    metric = PolypMetric(min_max_normalize=False, quantize=False)
    metric.process({}, [sample(prob, gt)])
    assert metric.results[0]['Dice'] == 1


def test_output_dir_holds_the_evaluated_maps(tmp_path):
    metric = PolypMetric(output_dir=str(tmp_path))
    gt = np.array([[1, 0], [0, 0]])
    metric.process({}, [
        sample(np.array([[0.9, 0.5], [0.3, 0.1]]), gt, 'ETIS', 'a.png'),
        sample(np.array([[0.9, 0.5], [0.3, 0.1]]), gt, 'CVC-300', 'a.png')
    ])
    for test_set in ('ETIS', 'CVC-300'):
        saved = cv2.imread(osp.join(tmp_path, test_set, 'a.png'), 0)
        # min-max normalised, 8 bits: (p - 0.1) / 0.8 * 255
        assert saved.tolist() == [[255, 128], [64, 0]]


def test_registered_and_empty_results():
    metric = METRICS.build(dict(type='PolypMetric'))
    assert isinstance(metric, PolypMetric)
    # no dead options: mmseg's keep_results is not one of ours
    with pytest.raises(TypeError, match='keep_results'):
        METRICS.build(dict(type='PolypMetric', keep_results=True))
    with pytest.raises(ValueError, match='no result'):
        metric.compute_metrics([])

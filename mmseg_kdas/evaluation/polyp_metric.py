"""The polyp field's per-image, per-test-set evaluation as an MMSeg metric."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from .polyp_measures import (SCALAR_MEASURES, check_protocol,
                             polyp_image_measures, prepare_prediction)
from .threshold_measures import TOOLBOX_THRESHOLDS

__all__ = ['PolypMetric', 'TABLE_MEASURES']

#: Measures of a test set, in the order of the printed table.
TABLE_MEASURES = ('mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'maxEm', 'MAE', 'Dice',
                  'IoU')


@METRICS.register_module()
class PolypMetric(BaseMetric):
    """Per-image polyp measures, averaged per test set (PraNet protocol).

    For every image: the foreground probability map at the ground-truth
    size (min-max normalised and rounded to 8 bits as the reference test
    scripts save it, by default), then Dice and IoU at ``threshold``, mean
    Dice and mean IoU over the 256 thresholds of the PraNet toolbox,
    S-measure, weighted F-measure, mean E-measure and MAE (see
    :mod:`mmseg_kdas.evaluation.polyp_measures`), as the field's MATLAB
    toolbox computes them (PraNet, Polyp-PVT) or, with
    ``protocol='python-port'``, as its Python port does (UACANet, KDAS).
    Each measure is averaged
    over the images of a test set (the ``test_set`` meta key, which
    ``PolypDataset`` sets; pack it with ``PackSegInputs``), together with
    ``maxEm``, the maximum over thresholds of the set's mean E-measure curve.

    Returned keys: ``'<set>/<measure>'`` for every test set (e.g.
    ``'Kvasir/mDice'``, usable as ``save_best``) and ``'<measure>'``, the
    mean over test sets. A table with one row per test set is logged.

    The probability map comes from the data sample's ``seg_logits``: with
    ``out_channels=1``, mmseg 1.2.2's ``EncoderDecoder.postprocess_result``
    resizes the logit to the original image size and stores its *sigmoid*
    there (``activation='auto'`` takes it as is); two-channel models store
    logits (``'auto'`` applies a softmax and takes channel 1).

    Args:
        threshold: Threshold of ``Dice`` and ``IoU`` (``pred >= threshold``).
        protocol: ``'matlab'`` (the default) or ``'python-port'``: the
            flavour of the S-measure, weighted F-measure and E-measure (the
            port's population standard deviation and numpy-rounded
            centroid, border-repeating Gaussian and ``pred >= t``; see
            :mod:`~mmseg_kdas.evaluation.polyp_measures`). The other
            measures are the same in both.
        min_max_normalize: Stretch each map to [0, 1] first, as the reference
            test scripts and the MATLAB toolbox (``mapminmax``) do.
        quantize: Round each map to multiples of 1/255 first, as the 8-bit
            PNG maps of the reference are.
        activation: How ``seg_logits`` becomes a probability: ``'auto'``
            (see above), ``'none'`` (already probabilities), ``'sigmoid'``
            (1-channel raw logits) or ``'softmax'`` (2-channel logits).
        default_test_set: Test set of samples without a ``test_set`` meta
            key; by default such a sample is an error.
        output_dir: If given, the evaluated map of every image is saved as
            an 8-bit PNG, ``output_dir/<test set>/<image stem>.png``.
        collect_device: Device used to collect results across ranks.
        prefix: Prefix of the returned keys.
    """

    def __init__(self,
                 threshold: float = 0.5,
                 protocol: str = 'matlab',
                 min_max_normalize: bool = True,
                 quantize: bool = True,
                 activation: str = 'auto',
                 default_test_set: Optional[str] = None,
                 output_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if activation not in ('auto', 'none', 'sigmoid', 'softmax'):
            raise ValueError("activation must be 'auto', 'none', 'sigmoid' "
                             f"or 'softmax', got {activation!r}")
        if not 0 <= threshold <= 1:
            raise ValueError(f'threshold must be in [0, 1], got {threshold}')
        self.threshold = threshold
        self.protocol = check_protocol(protocol)
        self.min_max_normalize = min_max_normalize
        self.quantize = quantize
        self.activation = activation
        self.default_test_set = default_test_set
        self.output_dir = output_dir

    def _probability(self, seg_logits: torch.Tensor,
                     name: str) -> torch.Tensor:
        """Foreground probability ``(H, W)`` from ``seg_logits``."""
        logits = seg_logits.float()
        channels = logits.shape[0] if logits.dim() == 3 else 0
        if channels not in (1, 2):
            raise ValueError(f'{name}: seg_logits must be 1xHxW or 2xHxW, '
                             f'got {tuple(seg_logits.shape)}')
        activation = self.activation
        if activation == 'auto':
            activation = 'none' if channels == 1 else 'softmax'
            if channels == 1 and (logits.min() < 0 or logits.max() > 1):
                raise ValueError(
                    f'{name}: 1-channel seg_logits outside [0, 1]; mmseg '
                    'stores the sigmoid there, so these look like raw '
                    "logits: set PolypMetric(activation='sigmoid')")
        if activation == 'softmax':
            if channels != 2:
                raise ValueError(f'{name}: softmax needs 2-channel '
                                 f'seg_logits, got {channels}')
            return logits.softmax(dim=0)[1]
        if channels != 1:
            raise ValueError(f'{name}: activation {activation!r} needs '
                             f'1-channel seg_logits, got {channels}')
        return logits[0].sigmoid() if activation == 'sigmoid' else logits[0]

    def sample_probability(self, sample: dict, name: str = 'image'
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The foreground probability of one data sample at its ground
        truth's size, and that ground truth: what :meth:`process`
        measures (analyses below a set's mean call it to see the same map).

        Args:
            sample: A model output as a dict (``seg_logits`` and
                ``gt_sem_seg``), as mmengine's ``Evaluator`` passes it.
            name: The image, for errors.

        Returns:
            tuple: ``prob`` ``(H, W)`` (bilinear to the mask's size when
            the logits differ) and ``gt`` ``(H, W)``.
        """
        gt = sample['gt_sem_seg']['data'].squeeze(0)
        prob = self._probability(sample['seg_logits']['data'], name)
        if prob.shape != gt.shape:
            prob = F.interpolate(
                prob[None, None],
                size=tuple(gt.shape),
                mode='bilinear',
                align_corners=False)[0, 0]
        return prob, gt

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Measure each image of a batch.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples: The model's outputs, as dicts, with
                ``seg_logits``, ``gt_sem_seg`` and the meta keys
                ``test_set`` and ``img_path``.
        """
        for sample in data_samples:
            name = sample.get('img_path') or f'image {len(self.results)}'
            test_set = sample.get('test_set', self.default_test_set)
            if test_set is None:
                raise KeyError(
                    f'{name}: no test_set meta key; add it to the meta_keys '
                    "of PackSegInputs (PolypDataset sets it) or set "
                    'PolypMetric(default_test_set=...)')
            if 'seg_logits' not in sample or 'gt_sem_seg' not in sample:
                raise KeyError(f'{name}: PolypMetric needs seg_logits and '
                               'gt_sem_seg in the data sample')
            prob, gt = self.sample_probability(sample, name)
            pred = prepare_prediction(prob.cpu().numpy(),
                                      self.min_max_normalize, self.quantize)
            try:
                measures = polyp_image_measures(pred,
                                                gt.cpu().numpy(),
                                                self.threshold,
                                                TOOLBOX_THRESHOLDS,
                                                self.protocol)
            except ValueError as e:
                raise ValueError(
                    f'{name}: {e} (masks must be 0 / 1: load them with '
                    'LoadPolypAnnotations)') from e
            self.results.append(
                dict(test_set=str(test_set), img_path=name, **measures))
            if self.output_dir is not None:
                stem = osp.splitext(osp.basename(str(name)))[0]
                mmcv.imwrite(
                    np.rint(pred * 255).astype(np.uint8),
                    osp.join(self.output_dir, str(test_set), stem + '.png'))

    @staticmethod
    def summarize(results: List[dict]) -> 'OrderedDict[str, Dict]':
        """Average per-image measures per test set.

        Args:
            results: Per-image dicts with ``test_set``, the measures of
                :data:`SCALAR_MEASURES` and ``Em_curve``.

        Returns:
            ``{test set: {measure: value, 'images': count}}`` in the order
            the test sets first appear.
        """
        groups: 'OrderedDict[str, List[dict]]' = OrderedDict()
        for result in results:
            groups.setdefault(result['test_set'], []).append(result)
        summary: 'OrderedDict[str, Dict]' = OrderedDict()
        for test_set, group in groups.items():
            row = {
                key: float(np.mean([r[key] for r in group]))
                for key in SCALAR_MEASURES
            }
            curve = np.mean([r['Em_curve'] for r in group], axis=0)
            row['maxEm'] = float(curve.max())
            row['images'] = len(group)
            summary[test_set] = row
        return summary

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Per-set and overall means, logged as a table.

        Args:
            results: The per-image results of all ranks.

        Returns:
            ``{'<set>/<measure>': value}`` for every test set and measure,
            and ``{'<measure>': mean over test sets}``.
        """
        if not results:
            raise ValueError('PolypMetric got no result to evaluate')
        summary = self.summarize(results)
        metrics: Dict[str, float] = OrderedDict()
        for test_set, row in summary.items():
            for key in TABLE_MEASURES:
                metrics[f'{test_set}/{key}'] = row[key]
        for key in TABLE_MEASURES:
            metrics[key] = float(np.mean([row[key]
                                          for row in summary.values()]))

        table = PrettyTable()
        table.field_names = ['Test set', 'images', *TABLE_MEASURES]
        table.align['Test set'] = 'l'
        for test_set, row in summary.items():
            table.add_row([test_set, row['images']] +
                          [f'{row[k]:.4f}' for k in TABLE_MEASURES])
        if len(summary) > 1:
            table.add_row(['mean of sets', len(results)] +
                          [f'{metrics[k]:.4f}' for k in TABLE_MEASURES])
        logger: MMLogger = MMLogger.get_current_instance()
        print_log(
            f'polyp measures per test set ({self.protocol} protocol; '
            f'Dice/IoU at threshold {self.threshold}, m* = mean over 256 '
            'thresholds):\n' +
            table.get_string(),
            logger=logger)
        return metrics

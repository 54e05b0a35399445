"""The polyp field's evaluation protocol: per-image measures and metric."""
from .polyp_measures import (PROTOCOLS, SCALAR_MEASURES, check_pred_gt,
                             check_protocol, mean_absolute_error,
                             polyp_image_measures, prepare_prediction,
                             structure_measure, weighted_fmeasure)
from .polyp_metric import TABLE_MEASURES, PolypMetric
from .threshold_measures import (TOOLBOX_THRESHOLDS, dice_iou_from_counts,
                                 emeasure_from_counts, threshold_counts)

__all__ = [
    'PolypMetric', 'TABLE_MEASURES', 'SCALAR_MEASURES', 'TOOLBOX_THRESHOLDS',
    'PROTOCOLS', 'check_protocol', 'check_pred_gt', 'threshold_counts',
    'dice_iou_from_counts', 'emeasure_from_counts', 'structure_measure',
    'weighted_fmeasure', 'mean_absolute_error', 'prepare_prediction',
    'polyp_image_measures'
]

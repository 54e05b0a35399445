"""hooks of mmseg_kdas."""
from .distill_weight_warmup_hook import (DistillWeightWarmupHook,
                                         warmup_multiplier)
from .iteration_seed_hook import IterationSeedHook, iteration_seed
from .non_finite_loss_hook import NonFiniteLossHook, non_finite_terms
from .polyp_visualization_hook import PolypVisualizationHook
from .student_export_hook import StudentExportHook

__all__ = [
    'DistillWeightWarmupHook', 'StudentExportHook', 'warmup_multiplier',
    'PolypVisualizationHook', 'NonFiniteLossHook', 'non_finite_terms',
    'IterationSeedHook', 'iteration_seed'
]

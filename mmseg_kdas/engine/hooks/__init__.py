"""hooks of mmseg_kdas."""
from .distill_weight_warmup_hook import (DistillWeightWarmupHook,
                                         warmup_multiplier)
from .student_export_hook import StudentExportHook

__all__ = ['DistillWeightWarmupHook', 'StudentExportHook', 'warmup_multiplier']

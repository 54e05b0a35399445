"""Runtime pieces: hooks, weights-only checkpoints, CPU distributed runs."""
from ..utils.distributed import (CPUDistributedDataParallel,
                                 setup_cpu_distributed)
from . import hooks  # noqa: F401
from .checkpoint import (PlainCheckpointHook, from_plain,
                         load_from_local_weights_only, to_plain)
from .cpu_amp import CPUAmpOptimWrapper
from .loops import (MultiScaleEpochBasedTrainLoop,
                    MultiScaleIterBasedTrainLoop, find_multiscale_augment)

__all__ = [
    'PlainCheckpointHook', 'to_plain', 'from_plain',
    'load_from_local_weights_only', 'CPUDistributedDataParallel',
    'CPUAmpOptimWrapper',
    'setup_cpu_distributed', 'MultiScaleEpochBasedTrainLoop',
    'MultiScaleIterBasedTrainLoop', 'find_multiscale_augment'
]

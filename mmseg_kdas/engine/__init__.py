"""Runtime pieces: hooks, weights-only checkpoints, CPU distributed runs."""
from . import hooks  # noqa: F401
from .checkpoint import (PlainCheckpointHook, from_plain,
                         load_from_local_weights_only, to_plain)
from .distributed import CPUDistributedDataParallel, setup_cpu_distributed

__all__ = [
    'PlainCheckpointHook', 'to_plain', 'from_plain',
    'load_from_local_weights_only', 'CPUDistributedDataParallel',
    'setup_cpu_distributed'
]

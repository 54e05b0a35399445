"""Distributed training on CPU (gloo) through mmengine's launchers.

mmengine 0.10 assumes a CUDA device once a launcher is given: its
``init_dist`` pins ``torch.cuda.set_device(LOCAL_RANK)`` and its runner wraps
the model in DDP with ``device_ids=[LOCAL_RANK]``. Both fail on a machine
without a GPU. :func:`setup_cpu_distributed` starts the gloo process group
from the environment torchrun (``tools/dist_train.sh``) or slurm
(``tools/slurm_train.sh``) sets, and selects
:class:`CPUDistributedDataParallel` as the model wrapper, so the runner
sees an initialised group and skips its own CUDA-only setup. On GPU
machines nothing changes.
"""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


# In mmengine's root registry: the runner looks wrappers up there with
# ``MODEL_WRAPPERS.get``, which does not search mmseg's child registry.
@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` for modules that live on the CPU.

    The runner passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU
    modules; it is dropped here.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def _env(*names: str) -> str:
    for name in names:
        if name in os.environ:
            return os.environ[name]
    raise KeyError(f'none of the environment variables {names} is set; '
                   'start distributed runs with tools/dist_train.sh '
                   '(torchrun) or tools/slurm_train.sh (srun)')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Start gloo for ``launcher`` when no GPU is available.

    Args:
        cfg: The run's config; ``model_wrapper_cfg`` is set to
            :class:`CPUDistributedDataParallel` unless the config has one.
        launcher: ``'none'``, ``'pytorch'`` or ``'slurm'``.

    Returns:
        True if this function initialised the process group.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'--launcher {launcher} is not supported on CPU; '
                         "use 'pytorch' (torchrun) or 'slurm'")
    rank = int(_env('RANK', 'SLURM_PROCID'))
    world_size = int(_env('WORLD_SIZE', 'SLURM_NTASKS'))
    os.environ.setdefault('LOCAL_RANK', _env('LOCAL_RANK', 'SLURM_LOCALID'))
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('MASTER_PORT', '29500')
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kwargs = {}
        if timeout is not None:
            from datetime import timedelta
            kwargs['timeout'] = timedelta(seconds=timeout)
        dist.init_process_group(
            'gloo', rank=rank, world_size=world_size, **kwargs)
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True

"""KDAS knowledge distillation for polyp segmentation, as an MMSeg plugin.

Importing this package registers its components into mmseg's registries,
so configs can use them by ``type=`` after::

    custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)

Beyond adding names to mmseg's registries (names mmseg does not use), the
import changes three things of mmengine for the whole process:

- mmengine's loader of local checkpoint paths (``CheckpointLoader``, scheme
  ``''``) is replaced by
  :func:`~mmseg_kdas.engine.checkpoint.load_from_local_weights_only`: every
  later local load through mmengine (``load_from``, ``--resume``,
  ``init_cfg=dict(type='Pretrained')``, ``load_checkpoint``) runs
  ``torch.load(weights_only=True)``, also under torch < 2.6, and fails
  with the file name on anything but tensors and plain containers, and
  names a truncated or corrupt file as such;
- mmengine's file backend of local paths (``register_backend('local')``,
  prefix ``''``) becomes
  :class:`~mmseg_kdas.engine.checkpoint.AtomicLocalBackend`: every later
  ``put`` / ``put_text`` to a local path through mmengine (every
  checkpoint ``save_checkpoint`` writes, ``mmengine.dump`` to a path) is
  atomic (temporary file, fsync, rename);
- :class:`~mmseg_kdas.utils.distributed.CPUDistributedDataParallel` is
  registered in mmengine's root ``MODEL_WRAPPERS`` (the runner looks model
  wrappers up there); it is used only when a config or
  ``setup_cpu_distributed`` names it.
"""
from . import (datasets, engine, evaluation, models,  # noqa: F401
               teacher_cache, visualization)
from .version import __version__

__all__ = ['__version__']

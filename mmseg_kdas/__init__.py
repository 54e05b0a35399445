"""KDAS knowledge distillation for polyp segmentation, as an MMSeg plugin.

Importing this package registers its components into mmseg's registries,
so configs can use them by ``type=`` after::

    custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
"""
from . import datasets, engine, evaluation, models, visualization  # noqa: F401
from .version import __version__

__all__ = ['__version__']

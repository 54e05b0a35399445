"""Models: backbones, decode heads, necks, losses, distillers and the data
preprocessor with batch augmentations."""
from . import backbones, decode_heads, distillers, losses, necks  # noqa: F401
from .data_preprocessor import (BatchAugSegDataPreProcessor,
                                BatchMultiScaleResize, multiscale_size)

__all__ = [
    'BatchAugSegDataPreProcessor', 'BatchMultiScaleResize', 'multiscale_size'
]

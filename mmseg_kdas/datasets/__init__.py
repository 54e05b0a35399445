"""datasets of mmseg_kdas."""
from .batch_augments import (BatchAugSegDataPreProcessor,
                             BatchMultiScaleResize, multiscale_size)
from .polyp import POLYP_SUFFIXES, PolypDataset, list_polyp_pairs
from .synthetic import (make_synthetic_polyp_dataset,
                        make_synthetic_polyp_pair, write_polyp_pairs)
from .transforms import LoadPolypAnnotations, binarize_mask

__all__ = [
    'PolypDataset', 'POLYP_SUFFIXES', 'list_polyp_pairs',
    'LoadPolypAnnotations', 'binarize_mask', 'BatchMultiScaleResize',
    'BatchAugSegDataPreProcessor', 'multiscale_size',
    'make_synthetic_polyp_dataset', 'make_synthetic_polyp_pair',
    'write_polyp_pairs'
]

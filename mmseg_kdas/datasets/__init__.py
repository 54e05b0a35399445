"""Polyp data: the PraNet-layout dataset, mask loading, synthetic data.

Downloads are arranged into the PraNet layout, and data roots checked, by
:mod:`.layout`.
"""
from .layout import (check_data_root, convert_pranet, convert_raw,
                     find_pair_dirs)
from .polyp import POLYP_SUFFIXES, PolypDataset, list_polyp_pairs
from .pranet_split import (PRANET_VAL_FILE, make_val_split, read_split_file,
                           select_split)
from .soft_masks import PackPolypInputs, SoftMaskResize
from .synthetic import (make_synthetic_polyp_dataset,
                        make_synthetic_polyp_pair, write_polyp_pairs)
from .transforms import LoadPolypAnnotations, binarize_mask, check_binary_mask

__all__ = [
    'PolypDataset', 'POLYP_SUFFIXES', 'list_polyp_pairs',
    'LoadPolypAnnotations', 'binarize_mask', 'check_binary_mask',
    'make_synthetic_polyp_dataset', 'make_synthetic_polyp_pair',
    'write_polyp_pairs', 'SoftMaskResize', 'PackPolypInputs',
    'PRANET_VAL_FILE', 'make_val_split', 'read_split_file', 'select_split',
    'check_data_root', 'convert_pranet', 'convert_raw', 'find_pair_dirs'
]

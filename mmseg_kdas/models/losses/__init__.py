"""losses of mmseg_kdas."""
from .base import BaseKDLoss, WeightedLoss
from .kd_baselines import (AttentionTransferLoss, ChannelWiseDivergence,
                           PixelKDLoss)
from .kd_losses import AttentionSupervisionLoss, SymmetricKDLoss
from .structure_loss import StructureLoss, structure_loss

__all__ = [
    'WeightedLoss', 'BaseKDLoss', 'AttentionSupervisionLoss',
    'SymmetricKDLoss', 'StructureLoss', 'structure_loss', 'PixelKDLoss',
    'ChannelWiseDivergence', 'AttentionTransferLoss'
]

"""losses of mmseg_kdas."""
from .kd_losses import AttentionSupervisionLoss, SymmetricKDLoss  # noqa: F401
from .structure_loss import StructureLoss, structure_loss  # noqa: F401

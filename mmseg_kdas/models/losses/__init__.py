"""losses of mmseg_kdas."""
from .kd_losses import (AttentionSupervisionLoss,  # noqa: F401
                        SymmetricKDLoss, attention_supervision_loss,
                        kl_distillation_loss, self_attention_map,
                        symmetric_kd_loss)
from .structure_loss import StructureLoss, structure_loss  # noqa: F401

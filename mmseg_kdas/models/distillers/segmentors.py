"""The two segmentors of a distiller: configs, construction, teacher weights.

:class:`~mmseg_kdas.models.distillers.KDASDistiller` builds its teacher and
student from configs
(:func:`~mmseg_kdas.utils.model_config.load_model_config`,
:func:`build_segmentor`), requires one normalisation of the batch both see
(:func:`check_preprocessing`) and loads the teacher's checkpoint
(:func:`load_teacher_weights`). Every error names the key or file at fault
and what was expected.
"""
from typing import Any

import torch.nn as nn
from mmengine.config import ConfigDict
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType

from mmseg_kdas.utils.checkpoint_file import (StateDict, load_state_dict_file,
                                              load_state_dict_strict)
from ..utils import polyp_pvt_convert

# Preprocessing options that must agree between teacher and student, since
# both see the one batch the distiller's data preprocessor produces.
_SHARED_PREPROCESSING = ('mean', 'std', 'bgr_to_rgb', 'rgb_to_bgr')


def build_segmentor(cfg: ConfigDict, role: str) -> nn.Module:
    """Build an ``EncoderDecoder``-style segmentor, or say why not."""
    model = MODELS.build(cfg)
    head = getattr(model, 'decode_head', None)
    if not (hasattr(model, 'extract_feat') and hasattr(head, 'loss_by_feat')):
        raise TypeError(
            f'the {role} must be an EncoderDecoder-style segmentor '
            '(extract_feat and a single decode_head), got '
            f'{type(model).__name__}')
    return model


def check_preprocessing(data_preprocessor: OptConfigType,
                        teacher_cfg: ConfigDict) -> None:
    """Both models see one batch: their normalisation must agree.

    Args:
        data_preprocessor: The distiller's data preprocessor config.
        teacher_cfg: The teacher's model config.

    Raises:
        ValueError: Naming the first option of ``mean``, ``std``,
            ``bgr_to_rgb`` and ``rgb_to_bgr`` that both set differently.
    """
    teacher_pre = teacher_cfg.get('data_preprocessor')
    if data_preprocessor is None or teacher_pre is None:
        return

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, (list, tuple)) else value

    for key in _SHARED_PREPROCESSING:
        mine, theirs = data_preprocessor.get(key), teacher_pre.get(key)
        if (mine is not None and theirs is not None
                and plain(mine) != plain(theirs)):
            raise ValueError(
                f'data_preprocessor.{key} of the distiller ({mine}) and '
                f'of the teacher ({theirs}) differ; both models are fed '
                'the one batch the distiller preprocesses')


def _is_reference_polyp_pvt(state_dict: StateDict) -> bool:
    """Whether keys look like the authors' Polyp-PVT ``state_dict``."""
    return (not any(k.startswith('decode_head.') for k in state_dict)
            and any(k.startswith(('CFM.', 'SAM.', 'out_CFM.', 'out_SAM.'))
                    for k in state_dict))


def load_teacher_weights(teacher: nn.Module, path: str) -> None:
    """Load a teacher checkpoint strictly, weights-only, on the CPU.

    Args:
        teacher (nn.Module): The teacher segmentor.
        path (str): Local checkpoint, read by
            :func:`~mmseg_kdas.utils.checkpoint_file.load_state_dict_file`:
            an mmseg/mmengine checkpoint (``{'state_dict': ...}``), a bare
            state dict, or the authors' Polyp-PVT / KDAS state dict (keys
            renamed on the fly by
            :func:`mmseg_kdas.models.utils.polyp_pvt_convert`).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is truncated or corrupt, cannot be
            read weights-only or holds no state dict.
        StateDictMismatchError: A ``KeyError``, if the checkpoint does not
            fit the teacher: tensors of other shapes (e.g. a B0 file for a
            B2 teacher; the first keys are named with both shapes), missing
            keys or keys the teacher does not have. The message names
            ``path``
            (:func:`~mmseg_kdas.utils.checkpoint_file.state_dict_mismatch`).
    """
    state_dict = load_state_dict_file(path)
    if _is_reference_polyp_pvt(state_dict):
        state_dict = polyp_pvt_convert(state_dict)
    load_state_dict_strict(teacher, state_dict, f'teacher checkpoint {path}',
                           'teacher')

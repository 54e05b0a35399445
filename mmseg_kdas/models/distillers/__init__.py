"""distillers of mmseg_kdas."""
from .export import student_checkpoint, student_config, student_state_dict
from .kdas_distiller import (KDASDistiller, load_model_config,
                             load_teacher_weights)
from .optim_constructor import KDASOptimWrapperConstructor

__all__ = [
    'KDASDistiller', 'KDASOptimWrapperConstructor', 'load_model_config',
    'load_teacher_weights', 'student_checkpoint', 'student_config',
    'student_state_dict'
]

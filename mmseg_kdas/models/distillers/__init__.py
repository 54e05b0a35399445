"""distillers of mmseg_kdas."""
from mmseg_kdas.utils.model_config import load_model_config
from .export import student_checkpoint, student_config, student_state_dict
from .kdas_distiller import KDASDistiller
from .optim_constructor import KDASOptimWrapperConstructor
from .segmentors import load_teacher_weights

__all__ = [
    'KDASDistiller', 'KDASOptimWrapperConstructor', 'load_model_config',
    'load_teacher_weights', 'student_checkpoint', 'student_config',
    'student_state_dict'
]

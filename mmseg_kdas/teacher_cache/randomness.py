"""Which training runs a teacher cache can serve exactly.

A cache holds the teacher's maps of each image at a fixed set of sizes; it
is exact only when nothing random reaches the teacher. A training pipeline
is accepted when every step is one of :data:`DETERMINISTIC_TRANSFORMS` (or a
``RandomFlip`` that never flips), and the data preprocessor's batch
augmentations are ``BatchMultiScaleResize`` only (a fixed set of rates);
anything else is refused, naming the step and what it randomises.
"""
from typing import List, Optional, Sequence

from .identity import TeacherCacheError

__all__ = [
    'DETERMINISTIC_TRANSFORMS', 'randomness_problems', 'check_deterministic'
]

#: Pipeline transforms whose output is a function of the image alone.
DETERMINISTIC_TRANSFORMS = frozenset({
    'LoadImageFromFile', 'LoadImageFromNDArray', 'LoadAnnotations',
    'LoadPolypAnnotations', 'Resize', 'SoftMaskResize', 'ResizeToMultiple',
    'PackSegInputs', 'PackPolypInputs', 'RGB2Gray', 'AdjustGamma', 'CLAHE'
})
# Random transforms by what they change, for the refusal message.
_RANDOM_KINDS = (
    ('flips and rotations', ('Flip', 'Rotate', 'RotFlip')),
    ('continuous random scaling or cropping',
     ('Resize', 'Crop', 'Mosaic', 'Scale')),
    ('photometric augmentation',
     ('PhotoMetric', 'Gaussian', 'Gamma', 'CutOut', 'Albu', 'Noise', 'Blur',
      'Color', 'Brightness', 'Contrast')),
)


def _random_kind(name: str) -> Optional[str]:
    for kind, words in _RANDOM_KINDS:
        if any(word in name for word in words):
            return kind
    return None


def randomness_problems(pipeline: Sequence[dict],
                        preprocessor_cfg: Optional[dict]) -> List[str]:
    """Why the teacher's input would not be a fixed function of the image.

    Args:
        pipeline: The training pipeline (transform configs).
        preprocessor_cfg: The distiller's data preprocessor config.

    Returns:
        list[str]: One reason per refused transform or batch augmentation;
        empty when the teacher sees each image at a fixed set of sizes.
    """
    problems = []
    for i, step in enumerate(pipeline or []):
        name = step.get('type') if isinstance(step, dict) else None
        if not isinstance(name, str):
            name = getattr(name, '__name__', repr(name))
        if name in DETERMINISTIC_TRANSFORMS:
            continue
        if name == 'RandomFlip' and not step.get('prob'):
            continue  # prob 0 (or None): never flips
        kind = _random_kind(name)
        if 'Random' in name or kind is not None:
            problems.append(
                f'train pipeline step {i} ({name}) is random'
                f'{f" ({kind})" if kind else ""}: the teacher would see '
                'another input for the same image from one epoch to the '
                'next')
        else:
            problems.append(
                f'train pipeline step {i} ({name}) is not known to be '
                'deterministic (the cache accepts '
                f'{", ".join(sorted(DETERMINISTIC_TRANSFORMS))})')
    augments = (preprocessor_cfg or {}).get('batch_augments') or []
    for i, aug in enumerate(augments):
        name = aug.get('type') if isinstance(aug, dict) else type(aug).__name__
        if name != 'BatchMultiScaleResize':
            problems.append(
                f'data_preprocessor.batch_augments[{i}] ({name}) is not '
                'BatchMultiScaleResize, the one batch augmentation whose '
                'sizes the cache knows (a fixed set of rates)')
    return problems


def check_deterministic(pipeline: Sequence[dict],
                        preprocessor_cfg: Optional[dict]) -> None:
    """Raise :class:`TeacherCacheError` if the teacher's input is random."""
    problems = randomness_problems(pipeline, preprocessor_cfg)
    if problems:
        raise TeacherCacheError(
            'a teacher cache is exact only when nothing random reaches the '
            'teacher, and this run refuses it: ' + '; '.join(problems) +
            '. Train with the online teacher (no model.teacher_cache) or '
            'make the pipeline deterministic.')

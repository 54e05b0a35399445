"""Linear warm-up of the distillation terms of a KDAS distiller."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def warmup_multiplier(step: int, warmup_iters: int) -> float:
    """Linear ramp from 0 at ``step=0`` to 1 at ``step=warmup_iters``.

    Args:
        step (int): 0-based training iteration.
        warmup_iters (int): Length of the ramp (> 0).

    Returns:
        float: ``min(step / warmup_iters, 1)``.
    """
    if warmup_iters <= 0:
        raise ValueError(f'warmup_iters must be > 0, got {warmup_iters}')
    return min(max(step, 0) / warmup_iters, 1.0)


@HOOKS.register_module()
class DistillWeightWarmupHook(Hook):
    """Ramp ``model.kd_multiplier`` linearly from 0 to 1.

    Before training iteration ``i`` (0-based, counted over the whole run,
    so it survives resuming) the distiller's multiplier of its distillation
    terms is set to ``min(i / warmup_iters, 1)``: the student learns from
    the labels alone at first and the teacher's terms reach full weight
    after ``warmup_iters`` iterations.

    Args:
        warmup_iters (int): Length of the ramp in iterations (> 0).
    """

    priority = 'NORMAL'

    def __init__(self, warmup_iters: int) -> None:
        if not isinstance(warmup_iters, int) or warmup_iters <= 0:
            raise ValueError('warmup_iters must be a positive int, got '
                             f'{warmup_iters!r}')
        self.warmup_iters = warmup_iters

    @staticmethod
    def _distiller(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'kd_multiplier'):
            raise TypeError('DistillWeightWarmupHook needs a model with a '
                            '`kd_multiplier` attribute (a KDASDistiller), '
                            f'got {type(model).__name__}')
        return model

    def before_train(self, runner) -> None:
        """Check the model early, before the first iteration."""
        self._distiller(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Set the multiplier for the coming iteration."""
        self._distiller(runner).kd_multiplier = warmup_multiplier(
            runner.iter, self.warmup_iters)

    def after_train(self, runner) -> None:
        """Leave the model at full distillation weight."""
        self._distiller(runner).kd_multiplier = 1.0

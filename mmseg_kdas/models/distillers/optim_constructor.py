"""Optimizer constructor that leaves the frozen teacher out."""
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class KDASOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Build the optimizer of a distiller over everything but its teacher.

    mmengine's :class:`DefaultOptimWrapperConstructor` hands
    ``model.parameters()`` to the optimizer when no ``paramwise_cfg`` is
    set, frozen teacher included (and with a ``paramwise_cfg`` logs a
    warning for each frozen parameter it skips). This constructor runs the
    default one on a view of the distiller without its ``teacher`` child:
    the student, the SGM adapters and any other trainable part keep their
    names (``student.backbone...``), so ``paramwise_cfg.custom_keys`` match
    as usual, and no teacher parameter reaches the optimizer.

    Use it with ``optim_wrapper = dict(...,
    constructor='KDASOptimWrapperConstructor')``. A model without a
    ``teacher`` (e.g. the student alone) gets the default behaviour.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        distiller = model.module if hasattr(model, 'module') else model
        if not isinstance(getattr(distiller, 'teacher', None), nn.Module):
            # e.g. the student alone, trained with the distiller's settings
            return super().__call__(model)
        trainable = nn.Module()
        for name, param in distiller.named_parameters(recurse=False):
            trainable.register_parameter(name, param)
        for name, child in distiller.named_children():
            if name != 'teacher':
                trainable.add_module(name, child)
        return super().__call__(trainable)

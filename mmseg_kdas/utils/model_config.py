"""A segmentor's model config, from a dict or a config file."""
import copy
import os.path as osp
from typing import Union

from mmengine.config import Config, ConfigDict
from mmseg.utils import ConfigType

__all__ = ['ModelConfig', 'load_model_config']

ModelConfig = Union[str, ConfigType]


def load_model_config(model: ModelConfig, role: str = 'model') -> ConfigDict:
    """Return a segmentor's model config from a dict or a config file.

    Args:
        model (str | dict): A model config dict, or the path of a config file
            whose ``model`` variable is used. ``'package::path'`` paths (e.g.
            ``'mmseg::segformer/...py'``) are resolved by mmengine.
        role (str): Name used in error messages. Defaults to 'model'.

    Returns:
        ConfigDict: A copy of the model config.
    """
    if isinstance(model, str):
        if '::' in model:
            from mmengine.hub import get_config
            cfg = get_config(model)
        else:
            if not osp.isfile(model):
                raise FileNotFoundError(
                    f'{role} config file not found: {model}')
            cfg = Config.fromfile(model)
        if 'model' not in cfg:
            raise KeyError(f'{role} config {model} has no `model` variable')
        return ConfigDict(copy.deepcopy(cfg.model))
    if isinstance(model, dict):
        return ConfigDict(copy.deepcopy(model))
    raise TypeError(f'{role} must be a config dict or a config file path, '
                    f'got {type(model).__name__}')

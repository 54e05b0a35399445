"""Deployment of a segmentor: ONNX export and inference outside mmseg.

Not imported by ``mmseg_kdas`` itself (it needs ``onnx`` and
``onnxruntime``, and is only wanted by the deployment tools):

- :mod:`.spec`: :class:`DeploySpec`, the contract of an exported graph;
- :mod:`.model`: :class:`DeployModel`, RGB pixels to a probability map;
- :mod:`.export`: ONNX export and its check against PyTorch;
- :mod:`.pipeline`: pre- and post-processing shared by both backends;
- :mod:`.backends`: PyTorch and ONNX Runtime predictors;
- :mod:`.inference`: images, folders and videos (``tools/infer.py``).
"""
from .backends import BACKENDS, build_predictor
from .inference import InferenceReport, infer
from .spec import DeploySpec

__all__ = [
    'BACKENDS', 'build_predictor', 'InferenceReport', 'infer', 'DeploySpec'
]

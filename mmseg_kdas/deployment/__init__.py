"""Deployment of a segmentor: ONNX export and inference outside mmseg.

Not imported by ``mmseg_kdas`` itself (it needs ``onnx``,
``onnxruntime`` and ``openvino``, and is only wanted by the deployment
tools):

- :mod:`.spec`: :class:`DeploySpec`, the contract of an exported graph;
- :mod:`.rewrites`: deploy-only module swaps that keep the weights;
- :mod:`.model`: :class:`DeployModel`, RGB pixels to logits or
  probabilities;
- :mod:`.export`: ONNX export and its checks against PyTorch and mmseg;
- :mod:`.quantize`: the INT8 twin of an export (ONNX Runtime, static
  QDQ, calibrated on training images) and its agreement with the float
  model;
- :mod:`.pipeline`: pre- and post-processing shared by every backend;
- :mod:`.backends`: PyTorch, ONNX Runtime and OpenVINO predictors;
- :mod:`.inference`: images, folders and videos (``tools/infer.py``);
- :mod:`.stages`: the threads that inference runs its stages in, and
  :class:`InferenceReport`;
- :mod:`.profile`: ONNX Runtime's operator profile (and OpenVINO's);
- :mod:`.benchmark`: backends timed side by side, the test video, the
  targets (``tools/analysis_tools/benchmark_deploy.py``).
"""
from .backends import BACKENDS, build_predictor
from .inference import infer
from .spec import DeploySpec
from .stages import InferenceReport

__all__ = [
    'BACKENDS', 'build_predictor', 'InferenceReport', 'infer', 'DeploySpec'
]

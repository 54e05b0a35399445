"""The two inference backends behind one call: PyTorch and ONNX Runtime.

A predictor maps the graph input (``N x H x W x 3`` uint8 RGB at the
model size, see :func:`~mmseg_kdas.deployment.pipeline.preprocess`) to the
probability map (``N x K x H x W`` float32) and carries the model's
:class:`~mmseg_kdas.deployment.spec.DeploySpec`. :func:`build_predictor`
picks the backend from the model file.
"""
import json
import os.path as osp
from typing import Optional

import numpy as np

from .spec import METADATA_KEY, DeploySpec, sidecar_path

__all__ = [
    'Predictor', 'PyTorchPredictor', 'OnnxRuntimePredictor',
    'ort_session', 'read_onnx_spec', 'build_predictor', 'BACKENDS'
]

BACKENDS = ('pytorch', 'onnxruntime')


class Predictor:
    """Probability maps of a preprocessed batch; see the module docstring.

    Attributes:
        spec: The model's spec.
        backend: ``'pytorch'`` or ``'onnxruntime'``.
    """
    spec: DeploySpec
    backend: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PyTorchPredictor(Predictor):
    """A config and checkpoint run by PyTorch (:class:`DeployModel`).

    Args:
        config: Segmentor, exported student or KDAS config.
        checkpoint: Its weights (None: random, for benchmarks only).
        shape: ``(H, W)``; by default the test pipeline's size.
        threads: torch CPU threads (None: torch's default).
    """
    backend = 'pytorch'

    def __init__(self,
                 config: str,
                 checkpoint: Optional[str],
                 shape=None,
                 threads: Optional[int] = None) -> None:
        import torch

        from .model import build_deploy_model
        if threads:
            torch.set_num_threads(threads)
        self.model, self.spec = build_deploy_model(config, checkpoint, shape)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch
        with torch.inference_mode():
            return self.model(torch.from_numpy(batch)).numpy()


def ort_session(onnx_path: str,
                threads: Optional[int] = None,
                profile_prefix: Optional[str] = None,
                optimized_model_path: Optional[str] = None,
                level: str = 'all',
                spinning: bool = True):
    """An ONNX Runtime CPU session (every graph optimisation by default).

    Args:
        onnx_path: The model file.
        threads: Intra-op threads (None: ONNX Runtime's default, one per
            physical core); inter-op parallelism is off (sequential).
        profile_prefix: When given, ONNX Runtime writes a per-operator
            profile ``<prefix>_<date>.json`` (``session.end_profiling()``).
        optimized_model_path: When given, the graph as ONNX Runtime
            optimised it for this machine is saved there (for profiles).
        level: Graph optimisations: ``'all'`` (with the NCHWc layout of
            convolutions), ``'extended'`` (fusions, no layout change),
            ``'basic'`` or ``'none'``.
        spinning: Whether idle intra-op threads spin (ONNX Runtime's
            default: lowest latency of one call); off, they sleep and
            leave the cores to other threads (decoding, encoding).

    Returns:
        ``onnxruntime.InferenceSession``.
    """
    import onnxruntime as ort
    if not osp.isfile(onnx_path):
        raise FileNotFoundError(f'ONNX model not found: {onnx_path}')
    levels = dict(
        all=ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        extended=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        basic=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        none=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if level not in levels:
        raise ValueError(f'level must be one of {sorted(levels)}, got '
                         f'{level!r}')
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '0')
    if threads:
        options.intra_op_num_threads = threads
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_model_path:
        options.optimized_model_filepath = optimized_model_path
        options.log_severity_level = 3  # not the warning that it is local
    try:
        return ort.InferenceSession(
            onnx_path, options, providers=['CPUExecutionProvider'])
    except Exception as err:  # ORT raises several of its own types
        raise RuntimeError(
            f'{onnx_path}: ONNX Runtime cannot load it ({err})') from err


def read_onnx_spec(onnx_path: str, session=None) -> DeploySpec:
    """The spec embedded in an exported model, else its JSON sidecar.

    Args:
        onnx_path: The ``.onnx`` file.
        session: An ONNX Runtime session of it, to read the metadata from
            (else the file is read with ``onnx``).
    """
    if session is not None:
        metadata = session.get_modelmeta().custom_metadata_map
    else:
        import onnx
        model = onnx.load(onnx_path, load_external_data=False)
        metadata = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY in metadata:
        return DeploySpec.from_dict(
            json.loads(metadata[METADATA_KEY]), onnx_path)
    sidecar = sidecar_path(onnx_path)
    if not osp.isfile(sidecar):
        raise FileNotFoundError(
            f'{onnx_path} has no embedded deploy spec ({METADATA_KEY}) and '
            f'its sidecar {sidecar} does not exist; export the model with '
            'tools/deployment/pytorch2onnx.py')
    return DeploySpec.load(sidecar)


class OnnxRuntimePredictor(Predictor):
    """An exported ``.onnx`` file run by ONNX Runtime on the CPU.

    Args:
        onnx_path: Written by ``tools/deployment/pytorch2onnx.py``.
        threads: Intra-op threads (None: ONNX Runtime's default).
        spinning: See :func:`ort_session`.
    """
    backend = 'onnxruntime'

    def __init__(self,
                 onnx_path: str,
                 threads: Optional[int] = None,
                 spinning: bool = True) -> None:
        self.session = ort_session(onnx_path, threads, spinning=spinning)
        self.spec = read_onnx_spec(onnx_path, self.session)
        names = [i.name for i in self.session.get_inputs()]
        if names != [self.spec.input_name]:
            raise ValueError(f'{onnx_path}: inputs {names}, expected '
                             f'[{self.spec.input_name!r}]')

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.spec.output_name],
                                {self.spec.input_name: batch})[0]


def build_predictor(model: str,
                    checkpoint: Optional[str] = None,
                    backend: Optional[str] = None,
                    threads: Optional[int] = None,
                    shape=None,
                    spinning: bool = True) -> Predictor:
    """A predictor for a config (+ checkpoint) or an ``.onnx`` file.

    Args:
        model: ``.onnx`` file (ONNX Runtime) or config (PyTorch).
        checkpoint: The config's checkpoint; not used with ``.onnx``.
        backend: ``'pytorch'`` or ``'onnxruntime'``; by default the one the
            model file implies. ONNX Runtime needs an ``.onnx`` file and
            PyTorch a config.
        threads: CPU threads of the backend.
        shape: ``(H, W)`` of a PyTorch model (default: the config's); an
            ``.onnx`` file has its size fixed, which must then be this.
        spinning: Of ONNX Runtime's threads (see :func:`ort_session`).
    """
    is_onnx = model.endswith('.onnx')
    backend = backend or ('onnxruntime' if is_onnx else 'pytorch')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got '
                         f'{backend!r}')
    if backend == 'onnxruntime':
        if not is_onnx:
            raise ValueError(
                f'{model}: the onnxruntime backend runs an .onnx file; '
                'export the config first (tools/deployment/pytorch2onnx.py)')
        if checkpoint is not None:
            raise ValueError(f'{model}: an .onnx file holds its weights; '
                             f'drop the checkpoint {checkpoint}')
        predictor = OnnxRuntimePredictor(model, threads, spinning)
        if shape is not None and tuple(shape) != predictor.spec.input_size:
            raise ValueError(f'{model} was exported for '
                             f'{predictor.spec.input_size}, not {shape}; '
                             'export it again with --shape')
        return predictor
    if is_onnx:
        raise ValueError(f'{model}: the pytorch backend runs a config with '
                         'its checkpoint, not an .onnx file')
    if checkpoint is None:
        raise ValueError(f'{model}: the pytorch backend needs the '
                         "config's CHECKPOINT")
    return PyTorchPredictor(model, checkpoint, shape, threads)

"""Three inference backends behind one call: PyTorch, ONNX Runtime, OpenVINO.

A predictor maps the graph input (``N x H x W x 3`` uint8 RGB at the
model size, see :func:`~mmseg_kdas.deployment.pipeline.preprocess`) to the
graph output (the head's low-resolution logits or the probability map,
float32, after :attr:`~mmseg_kdas.deployment.spec.DeploySpec.output_kind`)
and carries the model's :class:`~mmseg_kdas.deployment.spec.DeploySpec`.
:func:`build_predictor` picks the backend from the model file: PyTorch for
a config, ONNX Runtime for an ``.onnx`` file unless ``openvino`` is asked
for (the same file, read by OpenVINO).

OpenVINO runs in float32 or bfloat16 (its ``INFERENCE_PRECISION_HINT``):
``precision='auto'`` takes bfloat16 where its CPU plugin reports native
support (``OPTIMIZATION_CAPABILITIES`` has ``BF16``: AVX512-BF16 or AMX),
float32 elsewhere; ``'f32'`` and ``'bf16'`` ask for one.
:data:`OPENVINO_DEFAULT_PRECISION` is what ``tools/infer.py`` and the
benchmark take without ``--precision``.

ONNX Runtime runs float32, or with ``precision='int8'`` the INT8 twin of
the model file (``student.int8.onnx`` next to ``student.onnx``, written by
:func:`~mmseg_kdas.deployment.quantize.quantize_onnx`); INT8 is never
taken by default (:data:`PRECISIONS`).
"""
import json
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np

from .spec import (INT8_SUFFIX, METADATA_KEY, DeploySpec, int8_path,
                   sidecar_path)

__all__ = [
    'Predictor', 'PyTorchPredictor', 'OnnxRuntimePredictor',
    'OpenVINOPredictor', 'ort_session', 'read_onnx_spec',
    'openvino_native_bf16', 'openvino_precision', 'build_predictor',
    'BACKENDS', 'OPENVINO_PRECISIONS', 'OPENVINO_DEFAULT_PRECISION',
    'PRECISIONS'
]

BACKENDS = ('pytorch', 'onnxruntime', 'openvino')
#: ``--precision`` choices of the OpenVINO backend.
OPENVINO_PRECISIONS = ('auto', 'f32', 'bf16')
#: OpenVINO's precision without ``--precision``: bfloat16 where the CPU
#: has it natively, float32 elsewhere. bfloat16 passed the bar for it on
#: two trained students of the KD experiment (``tools/analysis_tools/
#: compare_precision.py``: mean-Dice change at most 0.002 on the Kvasir
#: test images; measured -0.00002 and +0.00001, README "Backends and
#: precisions").
OPENVINO_DEFAULT_PRECISION = 'auto'
#: Every ``--precision`` of ``tools/infer.py``: OpenVINO's, and ``'int8'``
#: for ONNX Runtime and OpenVINO (the model's ``.int8.onnx`` twin, whose
#: QDQ pairs OpenVINO runs as integer kernels; never a default).
PRECISIONS = OPENVINO_PRECISIONS + ('int8', )


class Predictor:
    """Probability maps of a preprocessed batch; see the module docstring.

    Attributes:
        spec: The model's spec.
        backend: ``'pytorch'``, ``'onnxruntime'`` or ``'openvino'``.
        precision: Arithmetic of the network: ``'f32'``, ``'bf16'`` or
            ``'int8'``.
    """
    spec: DeploySpec
    backend: str
    precision: str = 'f32'

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PyTorchPredictor(Predictor):
    """A config and checkpoint run by PyTorch (:class:`DeployModel`).

    Args:
        config: Segmentor, exported student or KDAS config.
        checkpoint: Its weights (None: random, for benchmarks only).
        shape: ``(H, W)``; by default the test pipeline's size.
        threads: torch CPU threads (None: torch's default).
        output: ``'logits'`` or ``'prob'`` (see
            :func:`~mmseg_kdas.deployment.model.build_deploy_model`).
    """
    backend = 'pytorch'

    def __init__(self,
                 config: str,
                 checkpoint: Optional[str],
                 shape=None,
                 threads: Optional[int] = None,
                 output: str = 'logits') -> None:
        import torch

        from .model import build_deploy_model
        if threads:
            torch.set_num_threads(threads)
        self.model, self.spec = build_deploy_model(
            config, checkpoint, shape, output=output)

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

    Its precision is ``'int8'`` for a file that
    :func:`~mmseg_kdas.deployment.quantize.quantize_onnx` wrote (its spec
    says so), else ``'f32'``.

    Args:
        onnx_path: Written by ``tools/deployment/pytorch2onnx.py``.
        threads: Intra-op threads (None: ONNX Runtime's default).
        spinning: See :func:`ort_session`.
        level: Graph optimisations (see :func:`ort_session`).
    """
    backend = 'onnxruntime'

    def __init__(self,
                 onnx_path: str,
                 threads: Optional[int] = None,
                 spinning: bool = True,
                 level: str = 'all') -> None:
        self.session = ort_session(
            onnx_path, threads, level=level, spinning=spinning)
        self.spec = read_onnx_spec(onnx_path, self.session)
        self.precision = self.spec.source.get('precision', 'f32')
        names = [i.name for i in self.session.get_inputs()]
        if names != [self.spec.input_name]:
            raise ValueError(f'{onnx_path}: inputs {names}, expected '
                             f'[{self.spec.input_name!r}]')

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.spec.output_name],
                                {self.spec.input_name: batch})[0]


def openvino_native_bf16(core=None) -> bool:
    """Whether OpenVINO's CPU plugin computes bfloat16 natively here.

    Args:
        core: An ``openvino.Core`` (a new one by default).

    Returns:
        True when the plugin's ``OPTIMIZATION_CAPABILITIES`` has ``BF16``
        (CPUs with AVX512-BF16 or AMX).
    """
    import openvino as ov
    core = core or ov.Core()
    return 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


def openvino_precision(precision: str, core=None) -> str:
    """The precision ``'auto'``, ``'f32'`` or ``'bf16'`` means here.

    Args:
        precision: One of :data:`OPENVINO_PRECISIONS`.
        core: An ``openvino.Core``.

    Returns:
        ``'f32'`` or ``'bf16'`` (``'auto'``: bfloat16 where native).

    Raises:
        ValueError: For ``'bf16'`` on a CPU without native bfloat16 (its
            emulation would be slower and is not what was measured).
    """
    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(f'OpenVINO precision must be one of '
                         f'{OPENVINO_PRECISIONS}, got {precision!r}')
    if precision == 'f32':
        return 'f32'
    native = openvino_native_bf16(core)
    if precision == 'bf16' and not native:
        raise ValueError(
            "OpenVINO precision 'bf16': this CPU has no native bfloat16 "
            '(OpenVINO reports no BF16 capability); use --precision f32')
    return 'bf16' if native else 'f32'


class OpenVINOPredictor(Predictor):
    """An exported ``.onnx`` file compiled by OpenVINO for the CPU.

    The file's dynamic batch size is fixed per call: a model is compiled
    for each batch size met (static shapes let OpenVINO fuse more), once;
    batch 1 at construction. One stream, latency hint.

    Args:
        onnx_path: Written by ``tools/deployment/pytorch2onnx.py``.
        threads: Inference threads (None: OpenVINO's default, the
            physical cores).
        precision: ``'auto'``, ``'f32'`` or ``'bf16'`` (see
            :func:`openvino_precision`); None:
            :data:`OPENVINO_DEFAULT_PRECISION`; ``'int8'`` for an INT8
            file (``quantize_onnx``'s QDQ model: its quantised operators in
            8-bit integers, the others in float32).
        profile: Collect OpenVINO's per-layer counters
            (:meth:`layer_times`).
    """
    backend = 'openvino'

    def __init__(self,
                 onnx_path: str,
                 threads: Optional[int] = None,
                 precision: Optional[str] = None,
                 profile: bool = False) -> None:
        try:
            import openvino as ov
        except ImportError as err:
            raise ImportError(
                'the openvino backend needs the openvino package '
                '(bash tools/install.sh installs it)') from err
        if not osp.isfile(onnx_path):
            raise FileNotFoundError(f'ONNX model not found: {onnx_path}')
        self.core = ov.Core()
        self.spec = read_onnx_spec(onnx_path)
        quantized = self.spec.source.get('precision') == 'int8'
        if quantized and precision not in (None, 'int8'):
            raise ValueError(f'{onnx_path} is an INT8 model: precision '
                             f"'int8' (or none), not {precision!r}")
        if precision == 'int8' and not quantized:
            raise ValueError(f"precision 'int8': {onnx_path} is a float "
                             'model (its spec records no INT8 quantisation)')
        self.precision = 'int8' if quantized else openvino_precision(
            precision or OPENVINO_DEFAULT_PRECISION, self.core)
        self.onnx_path = onnx_path
        try:
            self.model = self.core.read_model(onnx_path)
        except Exception as err:  # OpenVINO raises its own RuntimeErrors
            raise RuntimeError(
                f'{onnx_path}: OpenVINO cannot read it ({err})') from err
        names = [p.get_any_name() for p in self.model.inputs]
        if names != [self.spec.input_name]:
            raise ValueError(f'{onnx_path}: inputs {names}, expected '
                             f'[{self.spec.input_name!r}]')
        self.config: Dict[str, object] = {
            # INT8: the operators left in float run in float32
            'INFERENCE_PRECISION_HINT': 'f32' if quantized else
            self.precision,
            'PERFORMANCE_HINT': 'LATENCY',
            'NUM_STREAMS': 1,
            'PERF_COUNT': bool(profile),
        }
        if threads:
            self.config['INFERENCE_NUM_THREADS'] = int(threads)
        self._requests: Dict[int, Tuple[object, object]] = {}
        self._request(1)  # compiled now, not in the first frame's time

    def _request(self, batch_size: int):
        """The infer request of a model compiled for ``batch_size``."""
        if batch_size not in self._requests:
            h, w = self.spec.input_size
            model = self.model.clone()
            model.reshape({self.spec.input_name: [batch_size, h, w, 3]})
            compiled = self.core.compile_model(model, 'CPU', self.config)
            self._requests[batch_size] = (compiled,
                                          compiled.create_infer_request())
        return self._requests[batch_size][1]

    def compiled_precision(self, batch_size: int = 1) -> str:
        """The inference precision OpenVINO reports for the compiled
        model (``'f32'`` / ``'bf16'``)."""
        self._request(batch_size)
        compiled = self._requests[batch_size][0]
        hint = compiled.get_property('INFERENCE_PRECISION_HINT')
        return hint.to_string() if hasattr(hint, 'to_string') else str(hint)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        request = self._request(batch.shape[0])
        request.infer({0: np.ascontiguousarray(batch)})
        return request.get_output_tensor(0).data.copy()

    def layer_times(self, batch_size: int = 1) -> Dict[str, float]:
        """Microseconds per executed layer type of the last inference.

        Needs ``profile=True``; keyed ``'<layer type> (<kernel>)'``.
        """
        totals: Dict[str, float] = {}
        for info in self._request(batch_size).profiling_info:
            if info.status.name != 'EXECUTED':
                continue
            key = f'{info.node_type} ({info.exec_type})'
            totals[key] = totals.get(key, 0.0) + \
                info.real_time.total_seconds() * 1e6
        return totals


def build_predictor(model: str,
                    checkpoint: Optional[str] = None,
                    backend: Optional[str] = None,
                    threads: Optional[int] = None,
                    shape=None,
                    spinning: bool = True,
                    precision: Optional[str] = None) -> Predictor:
    """A predictor for a config (+ checkpoint) or an ``.onnx`` file.

    Args:
        model: ``.onnx`` file (ONNX Runtime, OpenVINO) or config
            (PyTorch).
        checkpoint: The config's checkpoint; not used with ``.onnx``.
        backend: One of :data:`BACKENDS`; by default the one the model
            file implies (``onnxruntime`` for ``.onnx``). ONNX Runtime and
            OpenVINO need an ``.onnx`` file and PyTorch a config.
        threads: CPU threads of the backend.
        shape: ``(H, W)`` of a PyTorch model (default: the config's); an
            ``.onnx`` file has its size fixed, which must then be this.
        spinning: Of ONNX Runtime's threads (see :func:`ort_session`).
        precision: Of OpenVINO (:data:`OPENVINO_PRECISIONS`; None:
            :data:`OPENVINO_DEFAULT_PRECISION`), or ``'int8'`` for ONNX
            Runtime and OpenVINO, which then run the INT8 twin of ``model``
            (``model.int8.onnx``; ``model`` may name it, and an INT8 file
            runs as INT8 without it); PyTorch runs float32 only.
    """
    is_onnx = model.endswith('.onnx')
    backend = backend or ('onnxruntime' if is_onnx else 'pytorch')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got '
                         f'{backend!r}')
    if precision not in (None, ) + PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got '
                         f'{precision!r}')
    if precision == 'int8' and backend == 'pytorch':
        raise ValueError('--precision int8: the onnxruntime and openvino '
                         'backends run the INT8 model; pytorch runs f32')
    if precision not in (None, 'f32', 'int8') and backend != 'openvino':
        raise ValueError(f'--precision {precision}: only the openvino '
                         f'backend has it; {backend} runs f32' +
                         (' or int8' if backend == 'onnxruntime' else ''))
    if precision == 'int8' and is_onnx and not model.endswith(INT8_SUFFIX):
        quantized = int8_path(model)
        if not osp.isfile(quantized):
            raise FileNotFoundError(
                f'--precision int8: {quantized} not found; make it with '
                'tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out '
                f'{model} --precision int8')
        model = quantized
    if backend in ('onnxruntime', 'openvino'):
        if not is_onnx:
            raise ValueError(
                f'{model}: the {backend} backend runs an .onnx file; '
                'export the config first (tools/deployment/pytorch2onnx.py)')
        if checkpoint is not None:
            raise ValueError(f'{model}: an .onnx file holds its weights; '
                             f'drop the checkpoint {checkpoint}')
        predictor = OpenVINOPredictor(model, threads, precision) \
            if backend == 'openvino' else OnnxRuntimePredictor(
                model, threads, spinning)
        if precision == 'int8' and predictor.precision != 'int8':
            raise ValueError(f'--precision int8: {model} is a float model '
                             '(its spec records no INT8 quantisation)')
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

"""Where ONNX Runtime spends its time in a model: shares per operator.

ONNX Runtime's profiler records every kernel run; :func:`operator_shares`
sums their durations per operator type and per part of the network. The
part is the PyTorch module path the dynamo exporter stores on each node
(``pkg.torch.onnx.name_scopes``), cut at ``depth`` levels below the
segmentor, e.g. ``backbone.block1`` or ``decode_head.cfm``. ONNX Runtime
rewrites the graph before it runs it (layout conversion to NCHWc, fused
MatMul / LayerNorm nodes) and renames what it rewrites; a rewritten node
takes the part of the node it came from when its name tells (``conv2d_nchwc``
from ``node_conv2d``, ``node_matmul/MatMulScaleFusion/``), else the part of
the node that feeds it in the optimised graph (``ReorderInput``) or, for the
first nodes, of the node it feeds. Operations that no submodule call holds
count as :data:`WRAPPER`: the normalisation of
:class:`~mmseg_kdas.deployment.DeployModel`, the addition of P1 and P2 of
Polyp-PVT and, in a ``'prob'`` graph, the final upsampling and the
activation. :func:`openvino_profile` gives OpenVINO's counterpart, the
share of the layer time per layer type.
"""
import ast
import glob
import json
import os.path as osp
import tempfile
from collections import defaultdict
from typing import Dict, Optional

import numpy as np

from .backends import OpenVINOPredictor, ort_session

__all__ = [
    'node_scopes', 'optimized_node_scopes', 'operator_shares',
    'openvino_profile'
]

_SCOPE_KEY = 'pkg.torch.onnx.name_scopes'
#: Part of the operations outside submodule calls (normalisation, the
#: head's own upsampling, activation).
WRAPPER = '(no submodule)'
#: Part of the nodes whose origin cannot be told.
UNKNOWN = '(unknown)'


def node_scopes(onnx_path: str, depth: int = 2) -> Dict[str, str]:
    """Map node names of an exported model to their module path.

    Args:
        onnx_path: Exported by :func:`~mmseg_kdas.deployment.export_onnx`.
        depth: Levels of the path kept below the wrapped segmentor.
    """
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    scopes = {}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        try:  # a Python list literal: '', the module paths, the op
            paths = ast.literal_eval(meta.get(_SCOPE_KEY, '[]'))
        except (ValueError, SyntaxError):
            continue
        module = paths[-2] if len(paths) >= 2 else ''
        parts = module.split('.')[1 if module.startswith('segmentor') else 0:]
        scopes[node.name] = '.'.join(parts[:depth]) if module and parts \
            else WRAPPER
    return scopes


def _renamed_origin(name: str, scopes: Dict[str, str]) -> Optional[str]:
    """The exported node a node ONNX Runtime renamed comes from."""
    candidates = [name.split('/')[0]]
    if name.endswith('_nchwc'):
        candidates += [f'node_{name[:-6]}', name[:-6]]
    for candidate in candidates:
        if candidate in scopes:
            return scopes[candidate]
    return None


def optimized_node_scopes(optimized_path: str,
                          scopes: Dict[str, str]) -> Dict[str, str]:
    """Parts of the nodes of ONNX Runtime's optimised graph.

    Args:
        optimized_path: The graph ONNX Runtime saved (topologically
            sorted).
        scopes: :func:`node_scopes` of the exported model.
    """
    import onnx
    graph = onnx.load(optimized_path, load_external_data=False).graph
    parts: Dict[str, str] = {}
    producer: Dict[str, str] = {}
    for node in graph.node:
        part = scopes.get(node.name) or _renamed_origin(node.name, scopes)
        if part is None:  # inserted: the part of what feeds it
            part = next((parts[producer[i]] for i in node.input
                         if i in producer and parts[producer[i]] != UNKNOWN),
                        UNKNOWN)
        parts[node.name] = part
        for output in node.output:
            producer[output] = node.name
    consumers = defaultdict(list)
    for node in graph.node:
        for i in node.input:
            consumers[i].append(node.name)
    for node in reversed(graph.node):  # unknown first nodes: what they feed
        if parts[node.name] == UNKNOWN:
            parts[node.name] = next(
                (parts[c] for o in node.output for c in consumers[o]
                 if parts[c] != UNKNOWN), UNKNOWN)
    return parts


def operator_shares(onnx_path: str,
                    batch: np.ndarray,
                    threads: Optional[int] = None,
                    runs: int = 10,
                    depth: int = 2,
                    level: str = 'all') -> Dict[str, Dict[str, float]]:
    """Share of the kernel time per operator type and per network part.

    Args:
        onnx_path: The model.
        batch: One graph input (e.g. one image).
        threads: ONNX Runtime intra-op threads.
        runs: Profiled runs, after one warm-up run (which the profile also
            records and which is dropped).
        depth: Module path depth of the parts (see :func:`node_scopes`).
        level: ONNX Runtime's graph optimisations (see
            :func:`~mmseg_kdas.deployment.backends.ort_session`).

    Returns:
        ``dict(op_type={name: share}, part={name: share})``, shares summing
        to 1, largest first.
    """
    with tempfile.TemporaryDirectory() as tmp:
        optimized = osp.join(tmp, 'optimized.onnx')
        session = ort_session(onnx_path, threads, osp.join(tmp, 'profile'),
                              optimized, level)
        name = session.get_inputs()[0].name
        for _ in range(runs + 1):
            session.run(None, {name: batch})
        session.end_profiling()
        (path, ) = glob.glob(osp.join(tmp, 'profile*.json'))
        with open(path) as f:
            events = json.load(f)
        parts = optimized_node_scopes(optimized,
                                      node_scopes(onnx_path, depth))
    # a run's kernels come before its 'model_run' event
    runs_done, by_op, by_part = 0, defaultdict(float), defaultdict(float)
    for event in events:
        if event.get('cat') == 'Session' and event['name'] == 'model_run':
            runs_done += 1
        elif (runs_done >= 1 and event.get('cat') == 'Node'
              and event['name'].endswith('_kernel_time')):
            node = event['name'][:-len('_kernel_time')]
            by_op[event['args'].get('op_name', '?')] += event['dur']
            by_part[parts.get(node, UNKNOWN)] += event['dur']
    return dict(op_type=_shares(by_op), part=_shares(by_part))


def openvino_profile(onnx_path: str, precision: str, size: int, threads: int,
                     runs: int = 10) -> Dict[str, float]:
    """Share of OpenVINO's layer time per layer type (batch 1).

    Args:
        onnx_path: The model.
        precision: OpenVINO's (``'f32'`` or ``'bf16'``).
        size: Side of the random square image.
        threads: OpenVINO's inference threads.
        runs: Profiled runs, after one warm-up run.

    Returns:
        ``{'<layer type> (<kernel>)': share}``, shares summing to 1,
        largest first.
    """
    predictor = OpenVINOPredictor(onnx_path, threads, precision, profile=True)
    batch = np.random.default_rng(0).integers(
        0, 256, (1, size, size, 3), dtype=np.uint8)
    predictor(batch)
    totals: Dict[str, float] = {}
    for _ in range(runs):
        predictor(batch)
        for key, us in predictor.layer_times().items():
            totals[key] = totals.get(key, 0.0) + us
    return _shares(totals)


def _shares(totals: Dict[str, float]) -> Dict[str, float]:
    total = sum(totals.values()) or 1.0
    return dict(
        sorted(((k, v / total) for k, v in totals.items()),
               key=lambda kv: -kv[1]))

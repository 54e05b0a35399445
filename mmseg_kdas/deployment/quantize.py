"""Post-training INT8 quantisation of an exported model (ONNX Runtime).

:func:`quantize_onnx` turns the float32 ``.onnx`` file of
:func:`~mmseg_kdas.deployment.export.export_onnx` into
``<name>.int8.onnx``: ONNX Runtime's static quantisation in the QDQ format
(``QuantizeLinear`` / ``DequantizeLinear`` pairs around the quantised
operators, :data:`QUANTIZED_OPS`, which ONNX Runtime fuses into integer
kernels), weights int8 per output channel, activations int8 per tensor
with ranges measured (min-max) on calibration images. The images go
through the pipeline of inference (:func:`~mmseg_kdas.deployment.
pipeline.read_image` and :func:`~mmseg_kdas.deployment.pipeline.
preprocess`, after the model's spec: size, resize backend, BGR to RGB);
mean / std are in the graph.

Calibration images are training images only: :func:`training_images`
lists the config's ``train_dataloader`` data set as training lists it
(``PolypDataset(split='train-minus-val')`` leaves the validation images
out) and refuses images that its validation or test sets also hold;
:func:`calibration_images` draws a seeded subset. The file's spec (and its
sidecar ``<name>.int8.json``) records ``precision='int8'`` and the
calibration under ``source``. :func:`probability_agreement` compares two
predictors' probability maps and masks at the images' own sizes.
"""
import copy
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config
from onnxruntime.quantization import CalibrationDataReader

from mmseg_kdas.utils.atomic import atomic_write
from .backends import read_onnx_spec
from .pipeline import postprocess, preprocess, read_image
from .spec import (INT8_SUFFIX, METADATA_KEY, DeploySpec, int8_path,
                   sidecar_path)

__all__ = [
    'DEFAULT_CALIBRATION_IMAGES', 'QUANTIZED_OPS', 'training_images',
    'calibration_images', 'ImageCalibrationReader', 'quantize_onnx',
    'probability_agreement'
]

#: Calibration images drawn by default.
DEFAULT_CALIBRATION_IMAGES = 64
#: Operators quantised by default: those with weights, which ONNX Runtime
#: runs as integer kernels; the others (LayerNorm, Softmax, GELU, the
#: element-wise ops) stay float32 between them.
QUANTIZED_OPS = ('Conv', 'MatMul', 'Gemm')


def _describe(dataset: dict) -> str:
    """``data_root/img_path (split ...)`` of a data set (and wrapped)."""
    inner = dataset.get('datasets') or [dataset.get('dataset')]
    if 'data_prefix' not in dataset and any(inner):
        return ', '.join(_describe(d) for d in inner if d)
    prefix = (dataset.get('data_prefix') or {}).get('img_path', '')
    where = osp.join(dataset.get('data_root') or '', prefix)
    split = dataset.get('split')
    return f'{where} (split {split!r})' if split else where


def _unserialized(dataset: dict) -> dict:
    """A data set config whose data sets keep their lists unserialised (an
    empty list then builds, and is reported as such)."""
    dataset = copy.deepcopy(dataset)
    inner = dataset.get('datasets') or [dataset.get('dataset')]
    if 'data_prefix' not in dataset and any(inner):
        if 'datasets' in dataset:
            dataset['datasets'] = [_unserialized(d) for d in inner]
        else:
            dataset['dataset'] = _unserialized(inner[0])
        return dataset
    dataset['serialize_data'] = False
    return dataset


def _image_paths(dataset_cfg: dict) -> List[str]:
    """The image files of a data set config, each once, absolute."""
    from mmseg.registry import DATASETS

    from mmseg_kdas.teacher_cache.hook import dataset_image_paths
    dataset = DATASETS.build(_unserialized(dataset_cfg))
    return [osp.abspath(p) for p in dataset_image_paths(dataset)]


def training_images(cfg: Config, name: str = 'config') -> List[str]:
    """The images of a config's training set, each once.

    Args:
        cfg: A model config with ``train_dataloader`` (e.g. from
            :func:`~mmseg_kdas.deployment.model.load_segmentor_config`).
        name: The config's file, for messages.

    Returns:
        Absolute image paths, in the data set's order.

    Raises:
        ValueError: If the config has no training set, the set has no
            image, or one of them is also in its validation or test sets
            (those that are here).
        FileNotFoundError: If the training folders are not here.
    """
    from mmengine.registry import init_default_scope

    import mmseg_kdas.datasets  # noqa: F401 (registers PolypDataset)
    dataset_cfg = (cfg.get('train_dataloader') or {}).get('dataset')
    if not dataset_cfg:
        raise ValueError(f'{name}: no train_dataloader.dataset; INT8 '
                         'calibration takes the training images')
    where = _describe(dataset_cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    try:
        paths = _image_paths(dataset_cfg)
    except (FileNotFoundError, ValueError) as err:
        kind = FileNotFoundError if isinstance(
            err, FileNotFoundError) else ValueError
        raise kind(f'{name}: the training images ({where}) cannot be '
                   f'listed: {err}') from err
    if not paths:
        raise ValueError(f'{name}: no training images in {where} to '
                         'calibrate INT8 on')
    for key in ('val_dataloader', 'test_dataloader'):
        held_cfg = (cfg.get(key) or {}).get('dataset')
        try:
            held = set(_image_paths(held_cfg)) if held_cfg else set()
        except (FileNotFoundError, ValueError):  # not here, or empty
            continue
        shared = [p for p in paths if p in held]
        if shared:
            raise ValueError(
                f'{name}: {len(shared)} training image(s) of {where} are '
                f'also in {key} ({_describe(held_cfg)}), e.g. {shared[0]}; '
                'calibration must not see held-out images')
    return paths


def calibration_images(paths: Sequence[str],
                       num: int = DEFAULT_CALIBRATION_IMAGES,
                       seed: int = 0) -> List[str]:
    """A seeded choice of ``num`` of ``paths`` (all when fewer).

    Args:
        paths: Training images (:func:`training_images`).
        num: How many to draw.
        seed: Of the draw (NumPy's ``default_rng``).

    Returns:
        The chosen paths in the order of ``paths``.
    """
    if num < 1:
        raise ValueError(f'calibration needs at least 1 image, got {num}')
    if not paths:
        raise ValueError('no calibration images given')
    if num >= len(paths):
        return list(paths)
    chosen = np.random.default_rng(seed).choice(len(paths), num,
                                                replace=False)
    return [paths[i] for i in sorted(chosen)]


class ImageCalibrationReader(CalibrationDataReader):
    """Image files as graph inputs, one image per batch, read lazily.

    Args:
        paths: Image files.
        spec: The model's spec (input name, size, resize backend).
    """

    def __init__(self, paths: Sequence[str], spec: DeploySpec) -> None:
        self.paths, self.spec = list(paths), spec
        self.position = 0

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self.position >= len(self.paths):
            return None
        image = read_image(self.paths[self.position])
        self.position += 1
        return {self.spec.input_name: preprocess([image], self.spec)}

    def rewind(self) -> None:
        self.position = 0


def quantize_onnx(onnx_path: str,
                  images: Sequence[str],
                  out: Optional[str] = None,
                  per_channel: bool = True,
                  reduce_range: bool = False,
                  op_types: Optional[Sequence[str]] = QUANTIZED_OPS) -> str:
    """Write the static QDQ INT8 version of an exported float model.

    Args:
        onnx_path: The float32 ``.onnx`` file (with its spec).
        images: Calibration image files: training images only
            (:func:`training_images`, :func:`calibration_images`).
        out: The INT8 file; by default ``<name>.int8.onnx`` next to
            ``onnx_path`` (its sidecar ``<name>.int8.json`` too).
        per_channel: Weights quantised per output channel.
        reduce_range: 7-bit weights, for CPUs without VNNI whose 8-bit
            products can saturate (ONNX Runtime's advice).
        op_types: Operator types to quantise (None: all that ONNX
            Runtime can).

    Returns:
        The INT8 file's path.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quant_pre_process,
                                          quantize_static)
    out = out or int8_path(onnx_path)
    if onnx_path.endswith(INT8_SUFFIX):
        raise ValueError(f'{onnx_path} is quantised already')
    if not out.endswith('.onnx') or osp.abspath(out) == osp.abspath(
            onnx_path):
        raise ValueError(f'the INT8 file must be another .onnx file: {out}')
    if not images:
        raise ValueError(f'{onnx_path}: no calibration images given')
    spec = read_onnx_spec(onnx_path)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # shape inference and constant folding, as ONNX Runtime advises
        prepared = osp.join(tmp, 'prepared.onnx')
        quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
        quantized = osp.join(tmp, 'int8.onnx')
        quantize_static(
            prepared,
            quantized,
            ImageCalibrationReader(images, spec),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax)
        model = onnx.load(quantized)
    spec.source = dict(
        spec.source,
        precision='int8',
        float_model=osp.abspath(onnx_path),
        quantization=dict(
            tool=f'onnxruntime {onnxruntime.__version__} quantize_static',
            format='QDQ',
            weights='int8 per channel' if per_channel else 'int8',
            activations='int8 per tensor, min-max',
            reduce_range=reduce_range,
            operators=sorted(op_types) if op_types else 'all',
            calibration_images=len(images),
            seconds=round(time.perf_counter() - start, 1)))
    del model.metadata_props[:]  # the float model's spec, if kept
    meta = model.metadata_props.add()
    meta.key, meta.value = METADATA_KEY, spec.to_json()
    with atomic_write(out) as f:
        f.write(model.SerializeToString())
    onnx.checker.check_model(out)
    spec.save(sidecar_path(out))
    return out


def probability_agreement(reference: Callable[[np.ndarray], np.ndarray],
                          other: Callable[[np.ndarray], np.ndarray],
                          spec: DeploySpec,
                          images_bgr: Sequence[np.ndarray]
                          ) -> Dict[str, float]:
    """How far two predictors' probability maps and masks are apart.

    Each image runs alone through both (graph, then
    :func:`~mmseg_kdas.deployment.pipeline.postprocess` at its own size).

    Args:
        reference: Graph input -> graph output, e.g. the float model.
        other: The same for the model compared, e.g. the INT8 one.
        spec: Their (common) spec.
        images_bgr: ``H x W x 3`` uint8 images of any sizes.

    Returns:
        dict with ``max_abs_prob_diff`` (largest probability change),
        ``mask_pixels_differ``, ``pixels`` and ``mask_share_differ``
        (their ratio).
    """
    diff, differ, pixels = 0.0, 0, 0
    for image in images_bgr:
        batch = preprocess([image], spec)
        size = image.shape[:2]
        prob_a, mask_a = postprocess(reference(batch)[0], size, spec)
        prob_b, mask_b = postprocess(other(batch)[0], size, spec)
        diff = max(diff, float(np.abs(prob_a - prob_b).max()))
        differ += int((mask_a != mask_b).sum())
        pixels += int(mask_a.size)
    return dict(
        max_abs_prob_diff=diff,
        mask_pixels_differ=differ,
        pixels=pixels,
        mask_share_differ=differ / max(pixels, 1))

"""ONNX export of a :class:`DeployModel`, and its checks against PyTorch.

The export uses ``torch.onnx.export(..., dynamo=True)`` (``torch.export``
plus onnxscript): the legacy TorchScript exporter fails on the Polyp-PVT
decoder (``AdaptiveAvgPool2d(6)`` of a 44 x 44 map). The batch size stays
free; the spatial size is fixed by the export, as PVTv2's reshapes take it
as a constant. Weights are embedded (one file), with the spec in the
file's metadata and as a JSON sidecar next to it.

Two checks: :func:`max_abs_difference` compares the graph's output under
ONNX Runtime with the PyTorch module that was exported (the rewritten
one); :func:`reference_difference` compares what a caller ends with, the
probability map and mask at each image's own size (graph, then
:func:`~mmseg_kdas.deployment.pipeline.postprocess`), with mmseg's own
``predict`` of the segmentor as trained (no rewrite).
"""
import os
import os.path as osp
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from mmseg_kdas.utils.atomic import atomic_write
from .model import DeployModel
from .spec import METADATA_KEY, sidecar_path

__all__ = ['export_onnx', 'max_abs_difference', 'reference_difference']


def export_onnx(model: DeployModel,
                out: str,
                opset: Optional[int] = None,
                example_batch: int = 2) -> str:
    """Export a deployed model to one self-contained ``.onnx`` file.

    Args:
        model: The model, in eval mode.
        out: Path of the ``.onnx`` file; the JSON sidecar is written next
            to it (``model.onnx`` -> ``model.json``).
        opset: ONNX opset (None: the exporter's default).
        example_batch: Batch size of the example input (not 1, which
            ``torch.export`` would specialise on).

    Returns:
        The sidecar's path.
    """
    import onnx
    if not out.endswith('.onnx'):
        raise ValueError(f'the output file must end with .onnx, got {out}')
    spec = model.spec
    h, w = spec.input_size
    example = torch.randint(
        0, 256, (example_batch, h, w, 3),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim('batch', min=1, max=4096)
    model.eval()
    with torch.no_grad():
        program = torch.onnx.export(
            model, (example, ),
            dynamo=True,
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_shapes=({0: batch}, ),
            opset_version=opset,
            external_data=False)
    proto = program.model_proto
    opsets = [
        o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')
    ]
    spec.source = dict(
        spec.source,
        torch=torch.__version__,
        onnx=onnx.__version__,
        opset=max(opsets, default=None))
    meta = proto.metadata_props.add()
    meta.key, meta.value = METADATA_KEY, spec.to_json()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with atomic_write(out) as f:  # a killed export leaves no short file
        # the bytes, not onnx.save(proto, f): onnx takes the name of a file
        # object for its path, and that of an fdopen'ed one is its number
        f.write(proto.SerializeToString())
    onnx.checker.check_model(out)
    sidecar = sidecar_path(out)
    spec.save(sidecar)
    return sidecar


def max_abs_difference(model: DeployModel, onnx_path: str,
                       batches: Sequence[np.ndarray],
                       threads: Optional[int] = None) -> Dict[str, float]:
    """Largest difference of the graph outputs of PyTorch and ORT.

    Args:
        model: The PyTorch model that was exported (its output kind:
            low-resolution logits or probabilities).
        onnx_path: Its export.
        batches: Graph inputs (``N x H x W x 3`` uint8 RGB), e.g. from
            :func:`~mmseg_kdas.deployment.pipeline.preprocess`.
        threads: ONNX Runtime intra-op threads.

    Returns:
        dict with ``max_abs_diff`` (over every batch and pixel, in the
        output's unit) and ``max_abs_logit`` (largest logit magnitude of
        the reference model at the model size: float32
        rounding grows with it, and the sigmoid turns a logit difference
        into up to a quarter of it in probability where the logit is near
        0; trained models stay below ~100, random ones reach thousands).
    """
    from .backends import OnnxRuntimePredictor
    predictor = OnnxRuntimePredictor(onnx_path, threads)
    diff, peak = 0.0, 0.0
    for batch in batches:
        with torch.inference_mode():
            logits = model.logits(torch.from_numpy(batch))
            expected = model(torch.from_numpy(batch)).numpy()
        actual = predictor(batch)
        if actual.shape != expected.shape:
            raise ValueError(f'{onnx_path}: output shape {actual.shape}, '
                             f'PyTorch gives {expected.shape}')
        diff = max(diff, float(np.abs(actual - expected).max()))
        peak = max(peak, float(logits.abs().max()))
    return dict(max_abs_diff=diff, max_abs_logit=peak)


def reference_difference(predict: Callable[[np.ndarray], np.ndarray],
                         model: DeployModel,
                         images_bgr: Sequence[np.ndarray],
                         batch_size: int = 1) -> Dict[str, float]:
    """A deployed predictor against mmseg's ``predict``, at image sizes.

    Args:
        predict: Graph input -> graph output (a predictor, or the
            rewritten :class:`DeployModel` wrapped for NumPy).
        model: The deployed model; its :attr:`DeployModel.reference`
            (the segmentor as trained) runs mmseg's ``predict``.
        images_bgr: ``H x W x 3`` uint8 images of any sizes.
        batch_size: Images per call of ``predict``.

    Returns:
        dict with ``max_abs_diff`` (largest difference of the probability
        maps at the images' own sizes), ``mask_pixels_differ`` (pixels
        whose mask differs) and ``pixels`` (pixels compared).
    """
    from .pipeline import postprocess, preprocess
    spec = model.spec
    diff, differ, pixels = 0.0, 0, 0
    for start in range(0, len(images_bgr), batch_size):
        images = images_bgr[start:start + batch_size]
        batch = preprocess(images, spec)
        sizes = [img.shape[:2] for img in images]
        outputs = predict(batch)
        with torch.inference_mode():
            expected = model.reference_probabilities(
                torch.from_numpy(batch), sizes)
        for output, size, ref in zip(outputs, sizes, expected):
            prob, mask = postprocess(output, size, spec)
            ref = ref.numpy()
            if spec.binary:
                ref = ref[0]
                ref_mask = ref > spec.threshold
                got_mask = mask > 0
            else:
                ref = ref.transpose(1, 2, 0)
                ref_mask, got_mask = ref.argmax(axis=2), mask
            diff = max(diff, float(np.abs(prob - ref).max()))
            differ += int((ref_mask != got_mask).sum())
            pixels += int(ref_mask.size)
    return dict(
        max_abs_diff=diff, mask_pixels_differ=differ, pixels=pixels)

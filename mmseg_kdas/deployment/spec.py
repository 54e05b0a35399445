"""What a caller of an exported model needs to know, in one record.

:class:`DeploySpec` is written next to every exported ``.onnx`` file as a
JSON sidecar (``student.onnx`` -> ``student.json``) and embedded in the
ONNX file's metadata (key :data:`METADATA_KEY`), so the file alone is
enough. The same record drives the preprocessing of both backends of
``tools/infer.py``, which is why they agree.

The contract of an exported graph:

- input ``image``: ``uint8``, ``N x H x W x 3``, RGB, at the model size
  ``H x W`` (batch size free); mean / std are applied inside the graph;
- output, one of two kinds (:attr:`DeploySpec.output_kind`):

  - ``'logits'`` (what ``tools/deployment/pytorch2onnx.py`` exports by
    default), output ``logits``: ``float32``, ``N x K x h x w``, the decode
    head's logits *before* its final upsampling (``h x w`` =
    :attr:`DeploySpec.output_size`, e.g. stride 8 for Polyp-PVT, whose
    ``P1 + P2`` is added there); for a binary model ``K = 1`` (the sigmoid
    logit, or for two softmax classes the difference of the two logits),
    for more classes ``K = C``. The caller resizes them to the image size
    as mmseg does (bilinear to ``H x W``, then to the image size, with
    :attr:`DeploySpec.align_corners`; one separable linear map does both,
    :func:`~mmseg_kdas.deployment.pipeline.postprocess`), then applies the
    sigmoid / softmax: mmseg's own ``predict``;
  - ``'prob'`` (``--output prob``; the only kind of format version 1),
    output ``prob``: ``float32``, ``N x K x H x W``: for a binary model
    ``K = 1``, the probability of the foreground class; for more classes
    ``K = C``, the softmax; the caller resizes it to the image size
    (bilinear);
- a caller resizes each image to ``H x W`` as the config's test pipeline
  does (:attr:`DeploySpec.resize_backend`, bilinear), runs the graph,
  and takes ``prob > threshold`` (binary) or the argmax (more classes).
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

from mmseg_kdas.utils.atomic import atomic_write_text

__all__ = [
    'DeploySpec', 'METADATA_KEY', 'INT8_SUFFIX', 'sidecar_path', 'int8_path'
]

#: Key of the JSON spec in the ``metadata_props`` of an exported model.
METADATA_KEY = 'mmseg_kdas.deploy_spec'
#: Ending of the INT8 version of an exported model (``student.onnx`` ->
#: ``student.int8.onnx``, :mod:`~mmseg_kdas.deployment.quantize`).
INT8_SUFFIX = '.int8.onnx'

_FORMAT = 'mmseg-kdas-deploy'
_FORMAT_VERSION = 2
#: Kinds of graph output (see the module docstring).
OUTPUT_KINDS = ('logits', 'prob')


@dataclass
class DeploySpec:
    """Input, output and post-processing of an exported segmentor.

    Args:
        input_size: ``(H, W)`` the graph takes (fixed by the export).
        mean: Per-channel mean subtracted inside the graph, in the order of
            the model's channels (:attr:`model_channels`).
        std: Per-channel std divided by inside the graph.
        model_channels: ``'RGB'`` or ``'BGR'``: the order the network was
            trained on; the graph takes RGB and flips when this is BGR.
        activation: ``'sigmoid'`` (one output channel) or ``'softmax'``.
        num_classes: Classes of the segmentor (2 for a binary model).
        out_channels: Channels of the ``prob`` output (1 for a binary
            model, else ``num_classes``).
        threshold: Foreground threshold of a binary model's ``prob``.
        classes: Class names, background first.
        resize_backend: ``'cv2'`` or ``'pillow'``, as the test pipeline's
            ``Resize`` (bilinear, aspect ratio not kept).
        align_corners: Of the model's own logit resizing, which a caller
            of a ``'logits'`` graph reproduces.
        input_name: Name of the graph input.
        output_name: Name of the graph output (``'prob'`` or
            ``'logits'``, after :attr:`output_kind`).
        output_kind: ``'prob'`` (probabilities at ``input_size``) or
            ``'logits'`` (the head's logits before its final resize).
        output_size: ``(h, w)`` of the graph output (``input_size`` for
            ``'prob'``).
        source: Where the model came from (config, checkpoint, versions).
    """
    input_size: Tuple[int, int]
    mean: List[float]
    std: List[float]
    model_channels: str = 'RGB'
    activation: str = 'sigmoid'
    num_classes: int = 2
    out_channels: int = 1
    threshold: float = 0.5
    classes: List[str] = field(
        default_factory=lambda: ['background', 'foreground'])
    resize_backend: str = 'cv2'
    align_corners: bool = False
    input_name: str = 'image'
    output_name: str = 'prob'
    source: dict = field(default_factory=dict)
    output_kind: str = 'prob'
    output_size: Optional[Tuple[int, int]] = None

    def __post_init__(self) -> None:
        self.input_size = tuple(int(s) for s in self.input_size)
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(
                f'input_size must be (H, W), got {self.input_size}')
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f'output_kind must be one of {OUTPUT_KINDS}, '
                             f'got {self.output_kind!r}')
        if self.output_size is None:
            self.output_size = self.input_size
        self.output_size = tuple(int(s) for s in self.output_size)
        if len(self.output_size) != 2 or min(self.output_size) < 1:
            raise ValueError(
                f'output_size must be (h, w), got {self.output_size}')
        if self.output_kind == 'prob' and \
                self.output_size != self.input_size:
            raise ValueError(
                f"a 'prob' output has the input size {self.input_size}, "
                f'got output_size {self.output_size}')
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError('mean and std need 3 values (one per channel), '
                             f'got {self.mean} and {self.std}')
        if self.model_channels not in ('RGB', 'BGR'):
            raise ValueError("model_channels must be 'RGB' or 'BGR', got "
                             f'{self.model_channels!r}')
        if self.activation not in ('sigmoid', 'softmax'):
            raise ValueError("activation must be 'sigmoid' or 'softmax', "
                             f'got {self.activation!r}')
        if self.resize_backend not in ('cv2', 'pillow'):
            raise ValueError("resize_backend must be 'cv2' or 'pillow', got "
                             f'{self.resize_backend!r}')
        expected = 1 if self.binary else self.num_classes
        if self.out_channels != expected:
            raise ValueError(
                f'a model with {self.num_classes} classes and activation '
                f'{self.activation} has {expected} output channels, got '
                f'{self.out_channels}')

    @property
    def binary(self) -> bool:
        """Whether ``prob`` is one foreground probability map."""
        return self.activation == 'sigmoid' or self.num_classes == 2

    def to_dict(self) -> dict:
        """The spec as the JSON sidecar holds it (with a readable layout)."""
        h, w = self.input_size
        oh, ow = self.output_size
        record = dict(format=_FORMAT, format_version=_FORMAT_VERSION)
        record.update(asdict(self))
        record['input_size'] = [h, w]
        record['output_size'] = [oh, ow]
        record['mean_std_in_graph'] = True
        mask = (f'mask = prob > {self.threshold}'
                if self.binary else 'label = argmax over channels')
        if self.output_kind == 'prob':
            output = ('probability of the foreground class'
                      if self.binary else 'softmax over the classes')
            postprocess = f'resize prob to the image size (bilinear), {mask}'
        else:
            output = 'logits before the final resize: ' + (
                'the foreground logit (sigmoid)' if self.binary else
                'one per class (softmax)')
            postprocess = (
                f'resize the logits bilinearly (align_corners='
                f'{self.align_corners}) to [{h}, {w}], then to the image '
                'size (one separable linear map does both), then ' +
                ('prob = sigmoid' if self.binary else 'prob = softmax') +
                f', {mask}')
        record['layout'] = dict(
            input=f'{self.input_name}: uint8 [N, {h}, {w}, 3] RGB 0-255 '
            '(NHWC); mean/std are applied inside the graph',
            output=f'{self.output_name}: float32 [N, {self.out_channels}, '
            f'{oh}, {ow}] (NCHW), {output}',
            postprocess=postprocess)
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, record: dict, name: str = 'spec') -> 'DeploySpec':
        """Read a spec written by :meth:`to_dict`.

        Args:
            record: The parsed JSON.
            name: Where it came from, for error messages.
        """
        if record.get('format') != _FORMAT:
            raise ValueError(f'{name}: not a mmseg-kdas deploy spec (format '
                             f'{record.get("format")!r})')
        if record.get('format_version', 0) > _FORMAT_VERSION:
            raise ValueError(
                f'{name}: spec format version {record["format_version"]} is '
                f'newer than this mmseg-kdas reads ({_FORMAT_VERSION})')
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in record.items() if k in names})

    def save(self, path: str) -> None:
        """Write the JSON sidecar (atomically)."""
        atomic_write_text(path, self.to_json() + '\n')

    @classmethod
    def load(cls, path: str) -> 'DeploySpec':
        """Read a JSON sidecar."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'deploy spec not found: {path}')
        with open(path) as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}: not valid JSON ({err})') from err
        return cls.from_dict(record, path)


def sidecar_path(onnx_path: str, suffix: str = '.json') -> str:
    """``model.onnx`` -> ``model.json``."""
    return osp.splitext(onnx_path)[0] + suffix


def int8_path(onnx_path: str) -> str:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return osp.splitext(onnx_path)[0] + INT8_SUFFIX

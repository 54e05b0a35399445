"""A segmentor as one module from RGB pixels to logits or probabilities.

:class:`DeployModel` wraps an mmseg segmentor with everything its test-time
inference does around the network: the data preprocessor's channel order,
float conversion and normalisation; the network (backbone, neck, decode
head, the deploy-only rewrites of :mod:`.rewrites`); then either the
head's logits before its final resize (``'logits'``, which the caller
resizes to the image size and passes through the sigmoid, as mmseg's
``predict`` does) or the probability map at the model size (``'prob'``).
It is what ``tools/deployment/pytorch2onnx.py`` exports and what the
PyTorch backend of ``tools/infer.py`` runs.
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from torch import Tensor

from mmseg_kdas.utils.checkpoint_file import (load_state_dict_file,
                                              load_state_dict_strict)
from .rewrites import (binary_logit, lowres_logits, output_size,
                       rewrite_for_deploy, supports_lowres, upsample_logits)
from .spec import OUTPUT_KINDS, DeploySpec

__all__ = [
    'DeployModel', 'load_segmentor_config', 'build_segmentor',
    'load_segmentor_weights', 'deploy_spec', 'build_deploy_model',
    'config_test_images'
]

_RESIZE_TYPES = ('Resize', 'mmcv.Resize', 'mmseg.Resize')
_WRAPPER_DATASETS = ('ConcatDataset', 'RepeatDataset', 'ClassBalancedDataset',
                     'MultiImageMixDataset')


def load_segmentor_config(config: str) -> Config:
    """Read a model config; a KDAS distiller config becomes its student's.

    Args:
        config: Path of a segmentor, exported student or KDAS config.

    Returns:
        A config whose ``model`` is the segmentor that ships (for a
        distiller, :func:`~mmseg_kdas.models.distillers.student_config`).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    if cfg.get('model') is None:
        raise ValueError(f'{config}: the config has no model')
    if cfg.model.get('type') == 'KDASDistiller':
        from mmseg_kdas.models.distillers.export import student_config
        cfg = student_config(cfg)
    return cfg


def build_segmentor(cfg: Config, name: str = 'config') -> nn.Module:
    """Build ``cfg.model`` in eval mode, without initialising weights.

    Args:
        cfg: From :func:`load_segmentor_config`.
        name: The config's file, for error messages.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    if not hasattr(model, 'encode_decode'):
        raise TypeError(
            f'{name}: {type(model).__name__} has no encode_decode; only '
            'encoder-decoder segmentors can be deployed')
    return model.eval()


def load_segmentor_weights(model: nn.Module, checkpoint: str) -> None:
    """Load a checkpoint into a segmentor, weights-only and strictly.

    A KDAS distiller checkpoint is accepted too: its student's weights are
    loaded.

    Args:
        model: The segmentor.
        checkpoint: An mmseg checkpoint (``state_dict`` inside) or a bare
            state dict.

    Raises:
        CheckpointError: If the file is truncated or corrupt, cannot be
            read weights-only or holds no state dict.
        StateDictMismatchError: A ``KeyError``, if the checkpoint's keys or
            shapes do not fit the model; the message names the file and
            the first keys at fault
            (:func:`~mmseg_kdas.utils.checkpoint_file.state_dict_mismatch`).
    """
    from mmseg_kdas.models.distillers.export import student_state_dict
    state = load_state_dict_file(checkpoint)
    own = model.state_dict()
    if not any(k in own for k in state) and any(
            k.startswith('student.') for k in state):
        state = student_state_dict(state)
    load_state_dict_strict(model, state, checkpoint)


def _test_datasets(cfg: Config) -> List[dict]:
    """The test set, then what it wraps, down to its (first) data set."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = loader.get('dataset') if loader else None
    chain = []
    while dataset is not None:
        chain.append(dataset)
        if str(dataset.get('type')).split('.')[-1] not in _WRAPPER_DATASETS:
            break
        dataset = (dataset.get('datasets') or [None])[0] \
            if 'datasets' in dataset else dataset.get('dataset')
    return chain


def _test_dataset(cfg: Config) -> Optional[dict]:
    chain = _test_datasets(cfg)
    return chain[-1] if chain else None


def config_test_images(cfg: Config) -> Optional[str]:
    """The image folder of the config's (first) test set, if it names one.

    Args:
        cfg: From :func:`load_segmentor_config`.

    Returns:
        ``data_root / data_prefix.img_path`` (relative paths as the config
        has them), or None.
    """
    dataset = _test_dataset(cfg) or {}
    prefix = (dataset.get('data_prefix') or {}).get('img_path')
    if prefix is None:
        return None
    return osp.join(dataset.get('data_root') or '', prefix)


def _test_resize(cfg: Config) -> Optional[dict]:
    # the pipeline may sit on a wrapper (with_one_test_pipeline) or inside
    pipelines = [d.get('pipeline') for d in _test_datasets(cfg)]
    pipeline = next((p for p in pipelines if p), None) or cfg.get(
        'test_pipeline')
    for step in pipeline or []:
        if step.get('type') in _RESIZE_TYPES:
            return step
    return None


def _class_names(cfg: Config, num_classes: int) -> list:
    dataset = _test_dataset(cfg) or {}
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and dataset.get('type'):
        from mmseg.registry import DATASETS
        dataset_cls = DATASETS.get(dataset['type'])
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    if classes is None or len(classes) != num_classes:
        classes = ['background', 'foreground'] if num_classes == 2 else [
            f'class{i}' for i in range(num_classes)
        ]
    return list(classes)


def deploy_spec(cfg: Config,
                model: nn.Module,
                shape: Optional[Sequence[int]] = None,
                name: str = 'config') -> DeploySpec:
    """What the deployed model takes and gives, from its config.

    Args:
        cfg: From :func:`load_segmentor_config`.
        model: The segmentor built from it.
        shape: ``(H, W)`` of the graph input; by default the size of the
            test pipeline's ``Resize`` (which must not keep the ratio).
        name: The config's file, for error messages.

    Returns:
        The spec (normalisation and channel order from the model's data
        preprocessor, threshold and classes from its head and dataset).
    """
    resize = _test_resize(cfg) or {}
    if shape is None:
        scale = resize.get('scale')
        if not resize or resize.get('keep_ratio', False) or scale is None:
            raise ValueError(
                f'{name}: the test pipeline has no fixed-size Resize '
                '(scale=..., keep_ratio=False) to take the model size from; '
                'give the size (--shape H W)')
        w, h = (scale, scale) if isinstance(scale, int) else scale
        shape = (h, w)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f'shape must be (H, W), got {shape}')
    interpolation = resize.get('interpolation', 'bilinear')
    if interpolation != 'bilinear':
        raise ValueError(f'{name}: the test pipeline resizes with '
                         f'{interpolation!r}; deployment supports bilinear')
    preprocessor = model.data_preprocessor
    divisor = (getattr(preprocessor, 'test_cfg', None)
               or {}).get('size_divisor')
    if divisor and (shape[0] % divisor or shape[1] % divisor):
        raise ValueError(f'{name}: the data preprocessor pads test images to '
                         f'multiples of {divisor}; choose such a shape, got '
                         f'{shape}')
    if getattr(preprocessor, '_enable_normalize', False):
        mean = preprocessor.mean.flatten().tolist()
        std = preprocessor.std.flatten().tolist()
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    head = model.decode_head
    num_classes = int(head.num_classes)
    sigmoid = int(head.out_channels) == 1
    binary = sigmoid or num_classes == 2
    threshold = float(head.threshold) if sigmoid and getattr(
        head, 'threshold', None) is not None else 0.5
    return DeploySpec(
        input_size=shape,
        mean=[round(float(m), 6) for m in mean],
        std=[round(float(s), 6) for s in std],
        model_channels='RGB'
        if getattr(preprocessor, 'channel_conversion', False) else 'BGR',
        activation='sigmoid' if sigmoid else 'softmax',
        num_classes=num_classes,
        out_channels=1 if binary else num_classes,
        threshold=threshold,
        classes=_class_names(cfg, num_classes),
        resize_backend=resize.get('backend', 'cv2'),
        align_corners=bool(getattr(head, 'align_corners', False)))


class DeployModel(nn.Module):
    """RGB pixels in, logits or probabilities out: a segmentor's inference.

    ``forward`` runs, for an ``N x H x W x 3`` uint8 RGB batch at the spec's
    input size: NHWC -> NCHW, float, the channel flip when the network was
    trained on BGR, ``(x - mean) / std``, then the network. What it gives
    follows :attr:`DeploySpec.output_kind`:

    - ``'logits'``: the head's logits before its final resize
      (:func:`~mmseg_kdas.deployment.rewrites.lowres_logits`; one channel
      for a binary model), which the caller resizes straight to the image
      size and passes through the sigmoid
      (:func:`~mmseg_kdas.deployment.pipeline.postprocess`);
    - ``'prob'``: those logits resized to ``H x W`` as the head does, then
      the sigmoid or the softmax (for two classes, the foreground's
      channel); for segmentors that :func:`~mmseg_kdas.deployment.
      rewrites.supports_lowres` does not know, ``segmentor.encode_decode``
      (mmseg's test-time path) and the activation.

    Args:
        segmentor: An mmseg encoder-decoder segmentor in eval mode, as
            deployed (:func:`~mmseg_kdas.deployment.rewrites.
            rewrite_for_deploy` may have rewritten it).
        spec: Its :class:`DeploySpec` (see :func:`deploy_spec`).
        reference: The segmentor as trained, which the rewritten one must
            equal (:meth:`reference_probabilities`); by default
            ``segmentor``. Not a submodule: it is not exported.

    Example:
        >>> model, spec = build_deploy_model('student_config.py',
        ...                                  'iter_1500_student.pth',
        ...                                  output='prob')
        >>> image = torch.zeros(1, 352, 352, 3, dtype=torch.uint8)
        >>> model(image).shape
        torch.Size([1, 1, 352, 352])
    """

    def __init__(self,
                 segmentor: nn.Module,
                 spec: DeploySpec,
                 reference: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.spec = spec
        # a plain attribute (a tuple), so that it is no submodule
        self._reference = (segmentor if reference is None else reference, )
        self.register_buffer(
            'mean', torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            'std', torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def reference(self) -> nn.Module:
        """The segmentor as trained (not rewritten)."""
        return self._reference[0]

    def normalize(self, image: Tensor) -> Tensor:
        """An RGB uint8 batch as the network takes it (``N x 3 x H x W``,
        the data preprocessor's channel order, mean and std)."""
        h, w = self.spec.input_size
        if image.dim() != 4 or tuple(image.shape[1:]) != (h, w, 3):
            raise ValueError(f'expected an N x {h} x {w} x 3 RGB batch, got '
                             f'shape {tuple(image.shape)}')
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        if self.spec.model_channels == 'BGR':
            x = x.flip(1)
        return (x - self.mean) / self.std

    def logits(self, image: Tensor) -> Tensor:
        """Logits (``N x C x H x W``) of an RGB uint8 batch by the reference
        segmentor's ``encode_decode``, before the activation (for a
        Polyp-PVT head, ``P1 + P2``)."""
        h, w = self.spec.input_size
        x = self.normalize(image)
        metas = [dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w))]
        return self.reference.encode_decode(x, metas)

    def lowres(self, image: Tensor) -> Tensor:
        """The graph's ``'logits'`` output: ``N x K x h x w`` head logits
        before the final resize, one channel for a binary model."""
        logits = lowres_logits(self.segmentor, self.normalize(image))
        return binary_logit(logits, self.spec.num_classes)

    def _activate(self, logits: Tensor) -> Tensor:
        if self.spec.activation == 'sigmoid' or logits.shape[1] == 1:
            return logits.sigmoid()
        prob = logits.softmax(dim=1)
        return prob[:, 1:2] if self.spec.binary else prob

    def forward(self, image: Tensor) -> Tensor:
        """The graph: low-resolution logits or the probability map."""
        if self.spec.output_kind == 'logits':
            return self.lowres(image)
        if not supports_lowres(self.segmentor):
            h, w = self.spec.input_size
            metas = [
                dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w))
            ]
            return self._activate(
                self.segmentor.encode_decode(self.normalize(image), metas))
        return self._activate(
            upsample_logits(
                self.lowres(image), self.spec.input_size,
                self.spec.align_corners))

    @torch.no_grad()
    def reference_probabilities(
            self, image: Tensor,
            image_sizes: Sequence[Tuple[int, int]]) -> List[Tensor]:
        """mmseg's own ``predict`` of the reference segmentor: the
        probability maps at the images' own sizes.

        ``encode_decode`` at the model size, the logits resized bilinearly
        to each image's size (``postprocess_result``), then the sigmoid
        (one channel) or the softmax (for two classes, the foreground's
        channel).

        Args:
            image: ``N x H x W x 3`` uint8 RGB graph input.
            image_sizes: ``(H_i, W_i)`` of the ``N`` original images.

        Returns:
            ``K x H_i x W_i`` float32 maps.
        """
        from mmseg.structures import SegDataSample
        h, w = self.spec.input_size
        samples = [
            SegDataSample(
                metainfo=dict(
                    img_shape=(h, w),
                    pad_shape=(h, w),
                    ori_shape=tuple(size))) for size in image_sizes
        ]
        results = self.reference.predict(self.normalize(image), samples)
        maps = []
        for result in results:
            data = result.seg_logits.data
            if data.shape[0] > 1:  # mmseg keeps raw logits for softmax
                data = data.softmax(dim=0)
                data = data[1:2] if self.spec.binary else data
            maps.append(data)
        return maps


def build_deploy_model(
        config: str,
        checkpoint: Optional[str] = None,
        shape: Optional[Sequence[int]] = None,
        output: str = 'logits',
        rewrite: bool = True) -> Tuple[DeployModel, DeploySpec]:
    """Build the deployed model of a config, with its weights.

    Args:
        config: A segmentor, exported student or KDAS distiller config.
        checkpoint: Its checkpoint; None keeps random weights (benchmarks).
        shape: ``(H, W)`` input size; by default the test pipeline's.
        output: ``'logits'`` (the head's logits before its final resize;
            segmentors whose head :func:`~mmseg_kdas.deployment.rewrites.
            supports_lowres` does not know fall back to ``'prob'``) or
            ``'prob'`` (:class:`DeployModel`).
        rewrite: Apply :func:`~mmseg_kdas.deployment.rewrites.
            rewrite_for_deploy` (the reference is kept as
            :attr:`DeployModel.reference`).

    Returns:
        ``(model, spec)``, the model in eval mode on the CPU.
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f'output must be one of {OUTPUT_KINDS}, got '
                         f'{output!r}')
    cfg = load_segmentor_config(config)
    segmentor = build_segmentor(cfg, config)
    if checkpoint is not None:
        load_segmentor_weights(segmentor, checkpoint)
    spec = deploy_spec(cfg, segmentor, shape, config)
    spec.source = dict(
        config=osp.abspath(config),
        checkpoint=osp.abspath(checkpoint) if checkpoint else None,
        rewrites=bool(rewrite))
    deployed = rewrite_for_deploy(segmentor) if rewrite else segmentor
    if output == 'logits' and supports_lowres(segmentor):
        spec.output_kind, spec.output_name = 'logits', 'logits'
        spec.output_size = output_size(deployed, spec.input_size)
    return DeployModel(deployed, spec, reference=segmentor).eval(), spec

"""Helpers to exercise a segmentor config on CPU in seconds.

In the spirit of mmseg's ``tests/test_models/test_segmentors/utils.py``:
:func:`check_segmentor` builds a model from its config and runs loss mode,
``train_step``, ``val_step`` and tensor mode on a tiny random batch, checking
what each mode must return. Tests of new models and distillers reuse it.
"""
import copy
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from .engine.loops import find_multiscale_augment


def make_batch(batch_size: int = 2,
               img_size: Tuple[int, int] = (64, 64),
               num_classes: int = 2,
               seed: int = 0) -> Dict[str, list]:
    """A batch as a dataloader gives it: uint8 images and data samples.

    Args:
        batch_size: Number of images.
        img_size: (H, W) of every image.
        num_classes: Labels are drawn from ``range(num_classes)``.
        seed: Seed of the generator.

    Returns:
        ``dict(inputs=[3xHxW uint8 tensors], data_samples=[SegDataSample])``
        for ``train_step`` / ``val_step`` or a data preprocessor.
    """
    gen = torch.Generator().manual_seed(seed)
    h, w = img_size
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(
            torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
        gt = torch.randint(0, num_classes, (1, h, w), generator=gen)
        sample = SegDataSample(
            gt_sem_seg=PixelData(data=gt),
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                padding_size=[0, 0, 0, 0],
                scale_factor=(1.0, 1.0),
                flip=False,
                flip_direction=None))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


#: mmseg's ``SegDataPreProcessor`` with ImageNet mean/std, padding training
#: batches to multiples of 32: the default of the tiny test models.
TEST_PREPROCESSOR = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32)
#: :data:`TEST_PREPROCESSOR` as the polyp models have it: batch
#: augmentations (multi-scale) allowed, test images padded too.
TEST_AUG_PREPROCESSOR = dict(
    TEST_PREPROCESSOR,
    type='BatchAugSegDataPreProcessor',
    test_cfg=dict(size_divisor=32))


def tiny_segformer(embed_dims: int = 8,
                   binary: bool = False,
                   dropout_ratio: float = 0.0,
                   drop_path_rate: float = 0.0,
                   data_preprocessor: Optional[dict] = None) -> dict:
    """The tiny SegFormer of the tests: mmseg's MiT and ``SegformerHead``.

    Four stages of one block each, of ``embed_dims * (1, 2, 4, 8)``
    channels; a head of 16 channels with BatchNorm.

    Args:
        embed_dims: Channels of the first stage.
        binary: One output channel (sigmoid, threshold 0.5), as the polyp
            heads; otherwise two-class softmax logits.
        dropout_ratio: Dropout before the head's classifier.
        drop_path_rate: Stochastic depth of the backbone.
        data_preprocessor: Its ``data_preprocessor``; by default mmseg's
            ``SegDataPreProcessor`` with ImageNet mean/std, padding
            training batches to multiples of 32.

    Returns:
        The model config, ready for ``MODELS.build`` or
        :func:`check_segmentor`.
    """
    if data_preprocessor is None:
        data_preprocessor = copy.deepcopy(TEST_PREPROCESSOR)
    if binary:
        classes = dict(
            out_channels=1,
            threshold=0.5,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    else:
        classes = dict(loss_decode=dict(type='CrossEntropyLoss'))
    return dict(
        type='EncoderDecoder',
        data_preprocessor=data_preprocessor,
        backbone=dict(
            type='MixVisionTransformer',
            in_channels=3,
            embed_dims=embed_dims,
            num_stages=4,
            num_layers=[1, 1, 1, 1],
            num_heads=[1, 2, 4, 8],
            patch_sizes=[7, 3, 3, 3],
            sr_ratios=[8, 4, 2, 1],
            out_indices=(0, 1, 2, 3),
            mlp_ratio=2,
            drop_path_rate=drop_path_rate),
        decode_head=dict(
            type='SegformerHead',
            in_channels=[embed_dims * 2**i for i in range(4)],
            in_index=[0, 1, 2, 3],
            channels=16,
            dropout_ratio=dropout_ratio,
            num_classes=2,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            **classes),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def tiny_binary_segformer(data_preprocessor: Optional[dict] = None) -> dict:
    """:func:`tiny_segformer` with one output channel, as the polyp heads."""
    return tiny_segformer(binary=True, data_preprocessor=data_preprocessor)


def tiny_polyp_pvt(dims: Sequence[int] = (16, 32, 64, 128),
                   channels: int = 8,
                   mlp_ratio: int = 2,
                   data_preprocessor: Optional[dict] = None) -> dict:
    """A tiny Polyp-PVT: ``PVTv2`` of one block per stage + ``PolypPVTHead``.

    Args:
        dims: Channels of the four stages.
        channels: Width of the decoder.
        mlp_ratio: MLP ratio of every stage.
        data_preprocessor: Its ``data_preprocessor``; by default
            :data:`TEST_PREPROCESSOR`.

    Returns:
        The model config (outputs ``[P1, P2]``, structure loss).
    """
    if data_preprocessor is None:
        data_preprocessor = copy.deepcopy(TEST_PREPROCESSOR)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=data_preprocessor,
        backbone=dict(
            type='PVTv2',
            arch=dict(
                embed_dims=list(dims),
                depths=[1, 1, 1, 1],
                num_heads=[1, 2, 4, 8],
                sr_ratios=[8, 4, 2, 1],
                mlp_ratios=[mlp_ratio] * 4),
            drop_path_rate=0.0),
        decode_head=dict(
            type='PolypPVTHead',
            in_channels=list(dims),
            channels=channels,
            num_classes=2,
            out_channels=1,
            threshold=0.5,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='StructureLoss')),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def _finite_losses(losses: dict) -> None:
    assert losses, 'loss mode returned no losses'
    assert any('loss' in k for k in losses), (
        f'no key contains "loss", nothing would be optimised: {list(losses)}')
    for key, value in losses.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            assert torch.isfinite(torch.as_tensor(v)).all(), (
                f'{key} is not finite: {v}')


def check_segmentor(model_cfg: Union[dict, Config, ConfigDict],
                    img_size: Tuple[int, int] = (64, 64),
                    batch_size: int = 2,
                    num_classes: int = 2,
                    lr: float = 0.01) -> Dict[str, object]:
    """Run every mode of a segmentor on CPU and check what each returns.

    Args:
        model_cfg: The ``model`` part of a config (or a whole config, whose
            ``model`` is used).
        img_size: (H, W) of the random images.
        batch_size: Images per batch.
        num_classes: Range of the random labels.
        lr: Learning rate of the SGD step of ``train_step``.

    Returns:
        dict with ``model``, ``losses`` (loss mode), ``log_vars``
        (train_step), ``predictions`` (val_step) and ``tensor`` (tensor mode)
        for further checks by the caller.
    """
    init_default_scope('mmseg')
    if isinstance(model_cfg, Config) or 'model' in model_cfg:
        model_cfg = model_cfg['model']
    model = MODELS.build(model_cfg)
    model.init_weights()
    data = make_batch(batch_size, img_size, num_classes)
    # mode='all' multi-scale takes its rates from the train loop: the first
    augment = find_multiscale_augment(model)
    multiscale_all = augment is not None and augment.mode == 'all'

    model.train()
    if multiscale_all:
        augment.set_rate_index(0)
    processed = model.data_preprocessor(data, True)
    losses = model(**processed, mode='loss')
    _finite_losses(losses)

    params = [p for p in model.parameters() if p.requires_grad]
    assert params, 'the model has no trainable parameters'
    before = [p.detach().clone() for p in params]
    optim_wrapper = OptimWrapper(torch.optim.SGD(params, lr=lr))
    if multiscale_all:
        augment.set_rate_index(0)
    log_vars = model.train_step(data, optim_wrapper)
    assert math.isfinite(float(log_vars['loss'])), log_vars
    assert any(not torch.equal(b, p) for b, p in zip(before, params)), (
        'train_step changed no parameter')

    model.eval()
    with torch.no_grad():
        predictions = model.val_step(data)
    assert len(predictions) == batch_size
    for pred in predictions:
        seg = pred.pred_sem_seg.data
        assert tuple(seg.shape[-2:]) == tuple(img_size), seg.shape
        assert int(seg.min()) >= 0 and int(seg.max()) < num_classes
        assert torch.isfinite(pred.seg_logits.data).all()

    with torch.no_grad():
        tensor = model(**model.data_preprocessor(data, False), mode='tensor')
    outs: Sequence = tensor if isinstance(tensor, (list, tuple)) else [tensor]
    for out in outs:
        assert torch.isfinite(out).all()
    return dict(
        model=model,
        losses=losses,
        log_vars=log_vars,
        predictions=predictions,
        tensor=tensor)

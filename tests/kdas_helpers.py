"""Tiny teacher / student segmentors and batches for the KDAS tests.

Two kinds of heads are used, so that the distiller is tested with both
shapes of decode-head output: mmseg's ``SegformerHead`` (one tensor of
multi-class logits at 1/4 of the input size) and :class:`KDASToyListHead`
(a list of two 1-channel logit maps at the input size, like Polyp-PVT's
``[P1, P2]``).
"""
import copy
from typing import List, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmseg_kdas  # noqa: F401  (registers KDASDistiller & co.)

init_default_scope('mmseg')

DATA_PREPROCESSOR = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32)


@MODELS.register_module()
class KDASToyListHead(BaseDecodeHead):
    """Two 1-channel logit maps at 4x the first feature's size.

    ``loss_by_feat`` sums the losses of both maps and ``predict_by_feat``
    uses their sum, as Polyp-PVT's head does.
    """

    def __init__(self, **kwargs):
        super().__init__(input_transform='multiple_select', **kwargs)
        self.fuse = ConvModule(
            sum(self.in_channels),
            self.channels,
            1,
            norm_cfg=self.norm_cfg)
        self.conv_second = nn.Conv2d(self.channels, self.out_channels, 1)

    def forward(self, inputs):
        feats = self._transform_inputs(inputs)
        size = feats[0].shape[2:]
        feat = self.fuse(
            torch.cat([resize(f, size, mode='bilinear') for f in feats], 1))
        return [
            resize(self.cls_seg(feat), scale_factor=4, mode='bilinear'),
            resize(self.conv_second(feat), scale_factor=4, mode='bilinear')
        ]

    def loss_by_feat(self, seg_logits, batch_data_samples):
        losses = dict()
        for logits in seg_logits:
            for name, value in super().loss_by_feat(
                    logits, batch_data_samples).items():
                if 'loss' in name:
                    losses[name] = losses.get(name, 0) + value
                else:
                    losses[name] = value
        return losses

    def predict_by_feat(self, seg_logits, batch_img_metas):
        return super().predict_by_feat(seg_logits[0] + seg_logits[1],
                                       batch_img_metas)


def _mit(embed_dims: int, drop_path_rate: float = 0.0) -> dict:
    return dict(
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
        drop_path_rate=drop_path_rate)


def tiny_segformer(embed_dims: int = 8,
                   dropout_ratio: float = 0.0,
                   drop_path_rate: float = 0.0) -> dict:
    """EncoderDecoder(MiT, SegformerHead), 2-class softmax logits."""
    return dict(
        type='EncoderDecoder',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=_mit(embed_dims, drop_path_rate),
        decode_head=dict(
            type='SegformerHead',
            in_channels=[embed_dims * 2**i for i in range(4)],
            in_index=[0, 1, 2, 3],
            channels=16,
            dropout_ratio=dropout_ratio,
            num_classes=2,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def tiny_list_model(embed_dims: int = 8,
                    dropout_ratio: float = 0.0,
                    drop_path_rate: float = 0.0) -> dict:
    """EncoderDecoder(MiT, KDASToyListHead): outputs [P1, P2], Bx1xHxW."""
    return dict(
        type='EncoderDecoder',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=_mit(embed_dims, drop_path_rate),
        decode_head=dict(
            type='KDASToyListHead',
            in_channels=[embed_dims * 2**i for i in range(4)],
            in_index=[0, 1, 2, 3],
            channels=8,
            dropout_ratio=dropout_ratio,
            num_classes=2,
            out_channels=1,
            threshold=0.5,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def make_batch(num: int = 2,
               size: Sequence[int] = (32, 32),
               seed: int = 0) -> dict:
    """A ``train_step`` / ``val_step`` batch: uint8 images, {0, 1} masks."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    inputs: List[torch.Tensor] = []
    samples: List[SegDataSample] = []
    for _ in range(num):
        inputs.append(
            torch.randint(0, 256, (3, h, w), generator=gen,
                          dtype=torch.uint8))
        mask = torch.zeros(1, h, w, dtype=torch.long)
        y0, x0 = torch.randint(0, h // 2, (2, ), generator=gen).tolist()
        mask[:, y0:y0 + h // 2, x0:x0 + w // 2] = 1
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                padding_size=[0, 0, 0, 0]))
        sample.gt_sem_seg = PixelData(data=mask)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_distiller(teacher: dict = None, student: dict = None, **kwargs):
    """A ``KDASDistiller`` of two tiny list-head models by default."""
    cfg = dict(
        type='KDASDistiller',
        teacher=teacher if teacher is not None else tiny_list_model(16),
        student=student if student is not None else tiny_list_model(8),
        **kwargs)
    return MODELS.build(cfg)

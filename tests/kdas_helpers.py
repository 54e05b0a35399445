"""Tiny teacher / student segmentors and batches for the KDAS tests.

Two kinds of heads are used, so that the distiller is tested with both
shapes of decode-head output: mmseg's ``SegformerHead`` (one tensor of
multi-class logits at 1/4 of the input size; the tiny SegFormer of
:func:`mmseg_kdas.testing.tiny_segformer`) and :class:`KDASToyListHead`
(a list of two 1-channel logit maps at the input size, like Polyp-PVT's
``[P1, P2]``). Batches come from :func:`mmseg_kdas.testing.make_batch`.
"""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.registry import init_default_scope
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS

import mmseg_kdas  # noqa: F401  (registers KDASDistiller & co.)
from mmseg_kdas.testing import make_batch, tiny_segformer  # noqa: F401

init_default_scope('mmseg')


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


def tiny_list_model(embed_dims: int = 8,
                    dropout_ratio: float = 0.0,
                    drop_path_rate: float = 0.0) -> dict:
    """The tiny SegFormer with :class:`KDASToyListHead`: [P1, P2], Bx1xHxW.
    """
    model = tiny_segformer(
        embed_dims,
        binary=True,
        dropout_ratio=dropout_ratio,
        drop_path_rate=drop_path_rate)
    model['decode_head'].update(type='KDASToyListHead', channels=8)
    return model


def build_distiller(teacher: dict = None, student: dict = None, **kwargs):
    """A ``KDASDistiller`` of two tiny list-head models by default."""
    cfg = dict(
        type='KDASDistiller',
        teacher=teacher if teacher is not None else tiny_list_model(16),
        student=student if student is not None else tiny_list_model(8),
        **kwargs)
    return MODELS.build(cfg)

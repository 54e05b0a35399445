"""The Polyp-PVT decoder (CIM, CFM, SAM) as an mmseg decode head."""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from ..losses.structure_loss import StructureLoss  # noqa: F401 (registers)


def _up2(x: Tensor) -> Tensor:
    """2x bilinear upsampling with ``align_corners=True``."""
    return F.interpolate(
        x, scale_factor=2, mode='bilinear', align_corners=True)


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int,
             norm_cfg: ConfigType) -> ConvModule:
    """The reference ``BasicConv2d``: conv without bias + norm, no act."""
    return ConvModule(
        in_channels,
        out_channels,
        kernel_size,
        padding=kernel_size // 2,
        bias=False,
        norm_cfg=norm_cfg,
        act_cfg=None)


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``sigmoid(mlp(avg(x)) + mlp(max(x)))``.

    Args:
        channels (int): Input channels.
        ratio (int): Reduction of the shared 1x1 MLP. Default: 16.
    """

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        if channels // ratio < 1:
            raise ValueError(f'ChannelAttention: {channels} channels cannot '
                             f'be reduced by ratio {ratio}')
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Return the B x C x 1 x 1 attention of ``x`` (B x C x H x W)."""
        avg = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        peak = self.fc2(F.relu(self.fc1(F.adaptive_max_pool2d(x, 1))))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: a 7x7 conv over channel mean and max.

    Args:
        kernel_size (int): Side of the conv. Default: 7.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Return the B x 1 x H x W attention of ``x`` (B x C x H x W)."""
        pooled = torch.cat(
            [x.mean(dim=1, keepdim=True),
             x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CIM(nn.Module):
    """Camouflage identification module: channel then spatial attention.

    Args:
        channels (int): Channels of the stage-1 map.
        ratio (int): Reduction of the channel attention. Default: 16.
    """

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        self.channel_attn = ChannelAttention(channels, ratio)
        self.spatial_attn = SpatialAttention()

    def forward(self, x: Tensor) -> Tensor:
        """Re-weight ``x`` (B x C x H x W); same shape out."""
        x = self.channel_attn(x) * x
        return self.spatial_attn(x) * x


class CFM(nn.Module):
    """Cascaded fusion module over the three deepest stages.

    Submodule names follow the reference (``conv_upsample1`` ... ``5``,
    ``conv_concat2``, ``conv_concat3``, ``conv4``).

    Args:
        channels (int): Channels of every input and of the output.
        norm_cfg (dict): Norm layer of the convs.
    """

    def __init__(self, channels: int, norm_cfg: ConfigType) -> None:
        super().__init__()
        c = channels
        self.conv_upsample1 = _conv_bn(c, c, 3, norm_cfg)
        self.conv_upsample2 = _conv_bn(c, c, 3, norm_cfg)
        self.conv_upsample3 = _conv_bn(c, c, 3, norm_cfg)
        self.conv_upsample4 = _conv_bn(c, c, 3, norm_cfg)
        self.conv_upsample5 = _conv_bn(2 * c, 2 * c, 3, norm_cfg)
        self.conv_concat2 = _conv_bn(2 * c, 2 * c, 3, norm_cfg)
        self.conv_concat3 = _conv_bn(3 * c, 3 * c, 3, norm_cfg)
        self.conv4 = _conv_bn(3 * c, c, 3, norm_cfg)

    def forward(self, f4: Tensor, f3: Tensor, f2: Tensor) -> Tensor:
        """Fuse stride-32, -16 and -8 maps into one stride-8 map.

        Args:
            f4 (Tensor): Stage-4 map, B x c x h x w.
            f3 (Tensor): Stage-3 map, B x c x 2h x 2w.
            f2 (Tensor): Stage-2 map, B x c x 4h x 4w.

        Returns:
            Tensor: B x c x 4h x 4w.
        """
        f3_gated = self.conv_upsample1(_up2(f4)) * f3
        f2_gated = self.conv_upsample2(_up2(_up2(f4))) * \
            self.conv_upsample3(_up2(f3)) * f2
        f3_fused = self.conv_concat2(
            torch.cat([f3_gated, self.conv_upsample4(_up2(f4))], dim=1))
        f2_fused = self.conv_concat3(
            torch.cat([f2_gated,
                       self.conv_upsample5(_up2(f3_fused))], dim=1))
        return self.conv4(f2_fused)


class GCN(nn.Module):
    """Two-layer graph convolution on node features (GloRe style).

    ``h = relu(conv2(conv1_over_nodes(x) - x))``; the names ``conv1``
    (node mixing, with bias) and ``conv2`` (state mixing, no bias) are
    the reference's.

    Args:
        num_state (int): Feature channels of each node.
        num_node (int): Number of nodes.
    """

    def __init__(self, num_state: int, num_node: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)
        self.conv2 = nn.Conv1d(num_state, num_state, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Map node features B x S x N to B x S x N."""
        h = self.conv1(x.transpose(1, 2)).transpose(1, 2) - x
        return F.relu(self.conv2(h))


class SAM(nn.Module):
    """Similarity aggregation module: graph reasoning guided by a mask.

    The guide is reduced to one map by a softmax over its channels keeping
    channel 1 (a quirk of the reference, kept for weight compatibility).
    It masks a projection of ``x``; the masked map is average-pooled to a
    ``(grid + 2)``-square grid whose inner ``grid x grid`` cells are the
    graph's anchors. Pixels are softly assigned to anchors (softmax over
    anchors), node states are gathered, passed through a :class:`GCN`,
    scattered back and added to ``x`` by a 1x1 conv.

    Args:
        channels (int): Channels of ``x``. Default: 32.
        state_channels (int): Channels of the node states. Default: 16.
        grid (int): Side of the anchor grid (grid**2 nodes). Default: 4.
    """

    def __init__(self,
                 channels: int = 32,
                 state_channels: int = 16,
                 grid: int = 4) -> None:
        super().__init__()
        self.state_channels = state_channels
        self.grid = grid
        self.conv_state = nn.Conv2d(channels, state_channels, 1)
        self.conv_proj = nn.Conv2d(channels, state_channels, 1)
        self.gcn = GCN(state_channels, grid * grid)
        self.conv_extend = nn.Conv2d(state_channels, channels, 1, bias=False)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Refine ``x`` with graph reasoning guided by ``guide``.

        Args:
            x (Tensor): Features, B x C x H x W.
            guide (Tensor): Guide features, B x G x H' x W' with G >= 2
                (resized to H x W by nearest neighbour if needed).

        Returns:
            Tensor: B x C x H x W.
        """
        batch, _, height, width = x.shape
        if guide.shape[-2:] != x.shape[-2:]:
            guide = F.interpolate(guide, size=(height, width), mode='nearest')
        guide = torch.softmax(guide, dim=1)[:, 1:2]

        state = self.conv_state(x).flatten(2)
        proj = self.conv_proj(x)
        anchors = F.adaptive_avg_pool2d(proj * guide, self.grid + 2)
        anchors = anchors[:, :, 1:-1, 1:-1].flatten(2)
        assign = torch.softmax(
            anchors.transpose(1, 2) @ proj.flatten(2), dim=1)
        nodes = self.gcn(state @ assign.transpose(1, 2))
        out = (nodes @ assign).view(batch, self.state_channels, height,
                                    width)
        return x + self.conv_extend(out)


@MODELS.register_module()
class PolypPVTHead(BaseDecodeHead):
    """Decoder of Polyp-PVT, with two 1-channel predictions.

    Paper: `Polyp-PVT: Polyp Segmentation with Pyramid Vision Transformers
    <https://arxiv.org/abs/2108.06932>`_; the same decoder on PVTv2-B0 is
    the KDAS student (`arXiv 2312.08555
    <https://arxiv.org/abs/2312.08555>`_).

    From the four backbone maps x1..x4 (strides 4-32):

    * CIM (channel + spatial attention) on x1, then a 1x1 conv-BN to
      ``channels`` (``cim_conv``) and 0.5x bilinear downsampling (T2);
    * 1x1 conv-BN of x2, x3, x4 to ``channels`` (``lateral_convs``), fused
      by the CFM into a stride-8 map;
    * SAM: graph reasoning on the CFM map guided by T2;
    * P1 = ``cls_cfm``(CFM map), P2 = ``cls_sam``(SAM map), each a 1x1
      conv to one channel, upsampled x8 (bilinear) to the input size.

    The prediction is ``sigmoid(P1 + P2)``; ``threshold`` binarises it.
    The head has no ``conv_seg`` of :class:`BaseDecodeHead`.

    Args:
        in_channels (Sequence[int]): Channels of the 4 backbone maps.
            Default: (64, 128, 320, 512) (PVTv2-B1..B5).
        channels (int): Decoder width. Default: 32.
        num_classes (int): Must be 2 (background, polyp). Default: 2.
        out_channels (int): Must be 1 (one logit per map). Default: 1.
        threshold (float): Probability threshold of the mask. Default: 0.5.
        ca_ratio (int): Reduction of the CIM channel attention.
            Default: 16.
        sam_state_channels (int): Node channels of the SAM. Default: 16.
        sam_grid (int): Side of the SAM anchor grid. Default: 4.
        norm_cfg (dict): Norm of the conv-BN blocks.
            Default: ``dict(type='BN')``.
        loss_decode (dict | list[dict]): Loss(es) applied to P1 and to P2;
            logged as ``<loss_name>_p1`` and ``<loss_name>_p2``.
            Default: ``dict(type='StructureLoss')``.
        init_cfg (dict, optional): Initialisation. Default: None (PyTorch
            defaults, as the reference).
        **kwargs: Other :class:`BaseDecodeHead` arguments
            (``ignore_index``, ``align_corners``).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (64, 128, 320, 512),
                 channels: int = 32,
                 num_classes: int = 2,
                 out_channels: int = 1,
                 threshold: float = 0.5,
                 ca_ratio: int = 16,
                 sam_state_channels: int = 16,
                 sam_grid: int = 4,
                 norm_cfg: ConfigType = dict(type='BN'),
                 loss_decode: ConfigType = dict(type='StructureLoss'),
                 init_cfg: OptConfigType = None,
                 **kwargs) -> None:
        if num_classes != 2 or out_channels != 1:
            raise ValueError(
                f'PolypPVTHead predicts one polyp logit: it needs '
                f'num_classes=2 and out_channels=1, got {num_classes} and '
                f'{out_channels}')
        if len(in_channels) != 4:
            raise ValueError(f'PolypPVTHead: in_channels needs the widths of '
                             f'4 stages, got {in_channels}')
        super().__init__(
            list(in_channels),
            channels,
            num_classes=num_classes,
            out_channels=out_channels,
            threshold=threshold,
            dropout_ratio=0.,
            norm_cfg=norm_cfg,
            in_index=[0, 1, 2, 3],
            input_transform='multiple_select',
            loss_decode=loss_decode,
            init_cfg=init_cfg,
            **kwargs)
        del self.conv_seg

        self.cim = CIM(in_channels[0], ca_ratio)
        self.cim_conv = _conv_bn(in_channels[0], channels, 1, norm_cfg)
        self.lateral_convs = nn.ModuleList(
            _conv_bn(c, channels, 1, norm_cfg) for c in in_channels[1:])
        self.cfm = CFM(channels, norm_cfg)
        self.sam = SAM(channels, sam_state_channels, sam_grid)
        self.cls_cfm = nn.Conv2d(channels, 1, 1)
        self.cls_sam = nn.Conv2d(channels, 1, 1)

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Not used: the head has two classifiers (see ``forward``)."""
        raise NotImplementedError('PolypPVTHead has cls_cfm and cls_sam')

    @staticmethod
    def _check_shapes(inputs: Sequence[Tensor]) -> None:
        h, w = inputs[0].shape[-2:]
        expected = [(h // 2**i, w // 2**i) for i in range(4)]
        actual = [tuple(x.shape[-2:]) for x in inputs]
        if h % 8 or w % 8 or actual != expected:
            raise ValueError(
                f'PolypPVTHead: stage maps must halve exactly at each stage '
                f'(image sides a multiple of 32); got sizes {actual}')

    @property
    def output_upsample(self) -> dict:
        """``F.interpolate`` arguments taking :meth:`forward_lowres` to
        :meth:`forward`: the fixed x8 bilinear upsampling of P1 and P2.

        A teacher cache (:mod:`mmseg_kdas.teacher_cache`)
        stores the stride-8 maps, 64x smaller, and applies these arguments
        on load: the same call on the same values, so the same result.
        """
        return dict(
            scale_factor=8, mode='bilinear', align_corners=self.align_corners)

    def forward_lowres(self, inputs: Tuple[Tensor, ...]) -> List[Tensor]:
        """P1 and P2 at stride 8, before the final x8 upsampling.

        Args:
            inputs (tuple[Tensor]): Backbone maps at strides 4, 8, 16, 32.

        Returns:
            list[Tensor]: [P1, P2], each B x 1 x H/8 x W/8.
        """
        x1, x2, x3, x4 = self._transform_inputs(inputs)
        self._check_shapes((x1, x2, x3, x4))
        f2, f3, f4 = (
            conv(x) for conv, x in zip(self.lateral_convs, (x2, x3, x4)))
        cfm = self.cfm(f4, f3, f2)
        guide = F.interpolate(
            self.cim_conv(self.cim(x1)),
            scale_factor=0.5,
            mode='bilinear',
            align_corners=True)
        sam = self.sam(cfm, guide)
        return [self.cls_cfm(cfm), self.cls_sam(sam)]

    def forward(self, inputs: Tuple[Tensor, ...]) -> List[Tensor]:
        """Compute the two logit maps.

        Args:
            inputs (tuple[Tensor]): Backbone maps at strides 4, 8, 16, 32.

        Returns:
            list[Tensor]: [P1, P2] (CFM and SAM logits), each B x 1 x H x W
            at 8x the stride-8 size, i.e. the input image size.
        """
        upsample = self.output_upsample
        return [
            F.interpolate(p, **upsample) for p in self.forward_lowres(inputs)
        ]

    def loss_by_feat(self, seg_logits: List[Tensor],
                     batch_data_samples: SampleList) -> dict:
        """Apply every ``loss_decode`` to P1 and to P2 (deep supervision).

        Args:
            seg_logits (list[Tensor]): [P1, P2] from :meth:`forward`.
            batch_data_samples (list[:obj:`SegDataSample`]): Samples with
                ``gt_sem_seg``: labels (0 background, 1 polyp, 255 ignore)
                or a float soft mask in [0, 1].

        Returns:
            dict[str, Tensor]: ``<loss_name>_p1``, ``<loss_name>_p2`` for
            each loss, and ``acc_seg`` (pixel accuracy of the thresholded
            ``sigmoid(P1 + P2)`` over non-ignored pixels, in percent).
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        size = seg_label.shape[2:]
        logits = [
            resize(p, size=size, mode='bilinear',
                   align_corners=self.align_corners)
            if p.shape[2:] != size else p for p in seg_logits
        ]
        seg_label = seg_label.squeeze(1)
        losses = dict()
        for index, pred in enumerate(logits, start=1):
            for loss_decode in losses_decode:
                name = f'{loss_decode.loss_name}_p{index}'
                loss = loss_decode(
                    pred, seg_label, ignore_index=self.ignore_index)
                losses[name] = losses[name] + loss if name in losses \
                    else loss
        with torch.no_grad():
            pred_mask = torch.sigmoid(sum(logits)).squeeze(1) > \
                self.threshold
            valid = seg_label != self.ignore_index
            if seg_label.is_floating_point():  # soft mask: no ignore
                valid = torch.ones_like(pred_mask)
                seg_label = seg_label > 0.5
            correct = (pred_mask.long() == seg_label.long()) & valid
            losses['acc_seg'] = correct.sum().float() * 100 / \
                valid.sum().clamp(min=1)
        return losses

    def predict_by_feat(self, seg_logits: List[Tensor],
                        batch_img_metas: List[dict]) -> Tensor:
        """Fuse P1 + P2 and resize to the batch input shape.

        Args:
            seg_logits (list[Tensor]): [P1, P2] from :meth:`forward`.
            batch_img_metas (list[dict]): Image meta information.

        Returns:
            Tensor: Fused logits, B x 1 x H x W (the segmentor then crops
            padding, resizes to the original size and applies the sigmoid).
        """
        return super().predict_by_feat(seg_logits[0] + seg_logits[1],
                                       batch_img_metas)

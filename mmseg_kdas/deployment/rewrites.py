"""Rewrites of a segmentor's inference graph for deployment, same weights.

The training modules stay as they are (bit-exact with the reference code);
:func:`rewrite_for_deploy` returns a copy of a segmentor, sharing its
parameters, in which modules are swapped for equivalents that cost less on
a CPU runtime, and :func:`lowres_logits` is the head's output before its
final upsampling. Each equals the module it replaces up to float32
rounding (``tests/test_tools/test_deploy_rewrites.py`` states the bounds):

- :class:`GridConvMlp` for PVTv2's :class:`~mmseg_kdas.models.backbones.
  pvtv2.ConvMlp` (``fc1``, 3x3 depth-wise conv, GELU, ``fc2`` on tokens):
  the same layers on the token grid, ``fc1`` and ``fc2`` as 1x1
  convolutions of their own weights. The tokens are laid on the grid once
  before ``fc1`` and back once after ``fc2``, at the block's width, instead
  of before and after the depth-wise conv at the hidden width (4 or 8
  times wider): a quarter or an eighth of the layout changes, and the
  depth-wise conv, GELU and the two 1x1 convs run in one layout that the
  runtime keeps (ONNX Runtime's NCHWc, OpenVINO's blocked layouts, which
  fuse the GELU into the conv);
- :func:`lowres_logits`: the decode head's logits before its final
  bilinear resize. For :class:`~mmseg_kdas.models.PolypPVTHead`, ``P1 + P2``
  at stride 8 (:meth:`~mmseg_kdas.models.PolypPVTHead.forward_lowres`),
  which equals the reference's sum of the two x8-upsampled maps because
  bilinear resizing is linear: one resize instead of two, and the addition
  on 64 times fewer pixels. For a binary two-class softmax head, the
  difference of the two logits (``softmax(l)[1] = sigmoid(l1 - l0)``): one
  channel to resize instead of two. The caller resizes this once, straight
  to the size it needs (:func:`~mmseg_kdas.deployment.pipeline.
  postprocess`), and applies the sigmoid there.

LayerNorm stays on tokens (the last axis), where ONNX Runtime fuses it into
one ``LayerNormalization`` kernel (with the residual ``Add`` into
``SkipLayerNormalization``) and OpenVINO into its MVN.
"""
import copy
import itertools
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'GridConvMlp', 'rewrite_for_deploy', 'supports_lowres', 'lowres_logits',
    'binary_logit', 'upsample_logits', 'output_size'
]


class GridConvMlp(nn.Module):
    """PVTv2's ``ConvMlp`` computed on the token grid; the same weights.

    ``fc2(gelu(dwconv(fc1(x))))`` with ``fc1`` / ``fc2`` as 1x1
    convolutions (their weights viewed as ``out x in x 1 x 1``): one
    layout change at the block width on the way in and one on the way out,
    none at the hidden width. Dropout is left out (eval only).

    Args:
        mlp: The :class:`~mmseg_kdas.models.backbones.pvtv2.ConvMlp` to
            replace; its ``fc1``, ``dwconv.dwconv``, ``act`` and ``fc2`` are
            reused (shared parameters).
    """

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.fc1 = mlp.fc1
        self.dwconv = mlp.dwconv.dwconv
        self.act = mlp.act
        self.fc2 = mlp.fc2

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """Apply the MLP to tokens.

        Args:
            x: Tokens, B x N x C with N = H * W.
            hw_shape: The grid (H, W) of the tokens.

        Returns:
            B x N x C.
        """
        batch, _, dim = x.shape
        grid = x.transpose(1, 2).reshape(batch, dim, *hw_shape)
        hidden = F.conv2d(grid, self.fc1.weight[:, :, None, None],
                          self.fc1.bias)
        hidden = self.act(self.dwconv(hidden))
        out = F.conv2d(hidden, self.fc2.weight[:, :, None, None],
                       self.fc2.bias)
        return out.flatten(2).transpose(1, 2)


def _share_copy(module: nn.Module) -> nn.Module:
    """A copy of the module tree that shares every parameter and buffer."""
    memo = {
        id(t): t
        for t in itertools.chain(module.parameters(), module.buffers())
    }
    return copy.deepcopy(module, memo)


def rewrite_for_deploy(segmentor: nn.Module) -> nn.Module:
    """The segmentor with the deploy-only module swaps; same parameters.

    Args:
        segmentor: An mmseg segmentor in eval mode (not modified).

    Returns:
        A copy of it, in eval mode, sharing its parameters and buffers, with
        every PVTv2 ``ConvMlp`` replaced by :class:`GridConvMlp`.
    """
    from mmseg_kdas.models.backbones.pvtv2_layers import ConvMlp
    rewritten = _share_copy(segmentor).eval()
    for module in list(rewritten.modules()):
        for name, child in module.named_children():
            if type(child) is ConvMlp:
                setattr(module, name, GridConvMlp(child))
    return rewritten


def supports_lowres(segmentor: nn.Module) -> bool:
    """Whether :func:`lowres_logits` knows the segmentor's head.

    True for mmseg's ``EncoderDecoder`` (its own ``encode_decode``) with a
    :class:`~mmseg_kdas.models.PolypPVTHead` or a head whose
    ``predict_by_feat`` is ``BaseDecodeHead``'s (resize to the input size,
    e.g. ``SegformerHead``).
    """
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.models.segmentors import EncoderDecoder

    from mmseg_kdas.models.decode_heads.polyp_pvt_head import PolypPVTHead
    if type(segmentor).encode_decode is not EncoderDecoder.encode_decode:
        return False
    head = getattr(segmentor, 'decode_head', None)
    return isinstance(head, PolypPVTHead) or (
        isinstance(head, BaseDecodeHead) and type(head).predict_by_feat is
        BaseDecodeHead.predict_by_feat)


def binary_logit(logits: Tensor, num_classes: int) -> Tensor:
    """One foreground logit for a two-class softmax, else the logits.

    ``softmax(l)[:, 1] = sigmoid(l[:, 1] - l[:, 0])``, and resizing is
    linear, so the difference carries all a binary caller needs.

    Args:
        logits: B x C x h x w.
        num_classes: The segmentor's classes.
    """
    if logits.shape[1] == 2 and num_classes == 2:
        return logits[:, 1:2] - logits[:, 0:1]
    return logits


def lowres_logits(segmentor: nn.Module, inputs: Tensor) -> Tensor:
    """The decode head's logits before its final resize to the input size.

    Args:
        segmentor: Accepted by :func:`supports_lowres`.
        inputs: Normalised images, B x 3 x H x W.

    Returns:
        B x K x h x w: for Polyp-PVT ``P1 + P2`` at stride 8; for a
        ``BaseDecodeHead`` its ``forward`` (e.g. stride 4 for SegFormer).
        Resized bilinearly to ``H x W`` (``align_corners`` of the head),
        they are ``encode_decode``'s logits.
    """
    from mmseg_kdas.models.decode_heads.polyp_pvt_head import PolypPVTHead
    if not supports_lowres(segmentor):
        raise TypeError(
            f'{type(segmentor).__name__} with '
            f'{type(getattr(segmentor, "decode_head", None)).__name__}: no '
            'low-resolution logits; export with --output prob')
    head = segmentor.decode_head
    feats = segmentor.extract_feat(inputs)
    if isinstance(head, PolypPVTHead):
        p1, p2 = head.forward_lowres(feats)
        return p1 + p2
    return head.forward(feats)


def upsample_logits(logits: Tensor, size: Tuple[int, int],
                    align_corners: bool) -> Tensor:
    """The heads' own final resize: bilinear to ``size``."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(
        logits, size=size, mode='bilinear', align_corners=align_corners)


@torch.no_grad()
def output_size(segmentor: nn.Module,
                input_size: Tuple[int, int]) -> Tuple[int, int]:
    """``(h, w)`` of :func:`lowres_logits` for images of ``input_size``."""
    probe = torch.zeros(1, 3, *input_size)
    return tuple(int(s) for s in lowres_logits(segmentor, probe).shape[-2:])

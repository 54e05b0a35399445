"""PVTv2, the Pyramid Vision Transformer v2 backbone of Polyp-PVT."""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import (constant_init, normal_init,
                                        trunc_normal_init)
from mmseg.registry import MODELS
from torch import Tensor

from mmseg_kdas.utils.checkpoint_file import (StateDict, load_state_dict_file,
                                              load_state_dict_strict)
from .pvtv2_layers import OverlapPatchEmbed, PVTv2Block

__all__ = ['PVTv2', 'load_pvtv2_pretrained']


def load_pvtv2_pretrained(path: str,
                          prefix: Optional[str] = None) -> StateDict:
    """Read PVTv2 backbone weights from an official ImageNet file.

    Args:
        path (str): ``pvt_v2_b*.pth`` (or any checkpoint holding a PVTv2).
        prefix (str, optional): Keep only keys starting with ``prefix`` and
            strip it, e.g. ``'backbone.'`` for a whole Polyp-PVT or mmseg
            checkpoint. None keeps all keys.

    Returns:
        dict[str, Tensor]: Backbone weights, classification head dropped.

    Raises:
        CorruptCheckpointError: If the file is truncated or corrupt.
        StateDictMismatchError: A ``KeyError``, if ``prefix`` matches no
            key.
    """
    state_dict = load_state_dict_file(path, prefix)
    return OrderedDict(
        (k, v) for k, v in state_dict.items() if not k.startswith('head.'))


@MODELS.register_module()
class PVTv2(BaseModule):
    """Pyramid Vision Transformer v2 (the improved PVT of Polyp-PVT).

    Paper: `PVT v2: Improved Baselines with Pyramid Vision Transformer
    <https://arxiv.org/abs/2106.13797>`_.

    Four stages; stage ``i`` is an overlapping patch embedding
    (``patch_embed{i}``: 7x7 stride-4 conv for stage 1, 3x3 stride-2 conv
    after), ``depths[i]`` transformer blocks (``block{i}``) with
    spatial-reduction attention and a depth-wise-conv MLP, and a final
    LayerNorm (``norm{i}``). The parameter names are those of the official
    implementation, so its ImageNet files (``pvt_v2_b0.pth`` ...
    ``pvt_v2_b5.pth``) load as they are (their classification ``head`` is
    dropped) through ``init_cfg=dict(type='Pretrained', checkpoint=...)``;
    an optional ``prefix`` (e.g. ``'backbone.'``) selects the backbone out
    of a full segmentor checkpoint. Loading is strict: missing, unexpected
    or mis-shaped keys are an error that names them.

    Args:
        arch (str | dict): ``'b0'`` ... ``'b5'``, or a dict with keys
            ``embed_dims``, ``depths``, ``num_heads``, ``sr_ratios`` and
            ``mlp_ratios`` (each a sequence of 4). Default: ``'b2'``.
        in_channels (int): Input image channels. Default: 3.
        out_indices (Sequence[int]): Stages (0-3) whose maps are returned.
            Default: (0, 1, 2, 3).
        qkv_bias (bool): Bias in the q/kv projections. Default: True.
        drop_rate (float): Dropout rate. Default: 0.
        attn_drop_rate (float): Attention dropout rate. Default: 0.
        drop_path_rate (float): Stochastic-depth rate of the last block,
            linearly increasing from 0 over all blocks. Default: 0.1.
        norm_eps (float): Epsilon of the LayerNorms of the blocks and at
            the end of each stage. Default: 1e-6. As in the official code,
            the LayerNorms of the patch embeddings and of the key/value
            reduction use PyTorch's default 1e-5.
        frozen_stages (int): Stages ``1 .. frozen_stages`` (patch embedding,
            blocks and norm of each) get no gradient and stay in eval mode.
            -1 or 0 freezes nothing, 4 the whole backbone. Default: -1.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH[, prefix=PREFIX])`` to load weights; None
            for the reference random initialisation (truncated normal
            std 0.02 for linear layers, fan-out normal for convs).

    Example:
        >>> import torch
        >>> from mmseg_kdas.models.backbones import PVTv2
        >>> model = PVTv2(arch='b0').eval()
        >>> for out in model(torch.rand(1, 3, 64, 64)):
        ...     print(tuple(out.shape))
        (1, 32, 16, 16)
        (1, 64, 8, 8)
        (1, 160, 4, 4)
        (1, 256, 2, 2)
    """

    # name: (embed_dims, depths, mlp_ratios); every variant has the
    # heads [1, 2, 5, 8] and spatial-reduction ratios [8, 4, 2, 1]
    _variants = {
        'b0': ([32, 64, 160, 256], [2, 2, 2, 2], [8, 8, 4, 4]),
        'b1': ([64, 128, 320, 512], [2, 2, 2, 2], [8, 8, 4, 4]),
        'b2': ([64, 128, 320, 512], [3, 4, 6, 3], [8, 8, 4, 4]),
        'b3': ([64, 128, 320, 512], [3, 4, 18, 3], [8, 8, 4, 4]),
        'b4': ([64, 128, 320, 512], [3, 8, 27, 3], [8, 8, 4, 4]),
        'b5': ([64, 128, 320, 512], [3, 6, 40, 3], [4, 4, 4, 4]),
    }
    arch_settings: Dict[str, Dict[str, List]] = {
        name: dict(
            embed_dims=dims,
            depths=depths,
            num_heads=[1, 2, 5, 8],
            sr_ratios=[8, 4, 2, 1],
            mlp_ratios=mlp)
        for name, (dims, depths, mlp) in _variants.items()
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'b2',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        settings = self._parse_arch(arch)
        self.embed_dims = settings['embed_dims']
        self.depths = settings['depths']
        self.out_indices = tuple(out_indices)
        if not self.out_indices or any(
                i not in range(self.num_stages) for i in self.out_indices):
            raise ValueError(f'PVTv2: out_indices must be a non-empty subset '
                             f'of 0..3, got {out_indices}')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'PVTv2: frozen_stages must be in -1..4, got '
                             f'{frozen_stages}')
        self.frozen_stages = frozen_stages

        total = sum(self.depths)
        rates = [
            drop_path_rate * i / (total - 1) if total > 1 else 0.
            for i in range(total)
        ]
        cur = 0
        channels = in_channels
        for i in range(self.num_stages):
            dim = self.embed_dims[i]
            self.add_module(
                f'patch_embed{i + 1}',
                OverlapPatchEmbed(
                    channels,
                    dim,
                    patch_size=7 if i == 0 else 3,
                    stride=4 if i == 0 else 2))
            self.add_module(
                f'block{i + 1}',
                nn.ModuleList([
                    PVTv2Block(
                        dim,
                        settings['num_heads'][i],
                        settings['mlp_ratios'][i],
                        settings['sr_ratios'][i],
                        qkv_bias=qkv_bias,
                        drop=drop_rate,
                        attn_drop=attn_drop_rate,
                        drop_path=rates[cur + j],
                        norm_eps=norm_eps) for j in range(self.depths[i])
                ]))
            self.add_module(f'norm{i + 1}', nn.LayerNorm(dim, eps=norm_eps))
            cur += self.depths[i]
            channels = dim
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Dict[str, List]:
        keys = ('embed_dims', 'depths', 'num_heads', 'sr_ratios',
                'mlp_ratios')
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_settings:
                raise ValueError(f'PVTv2: unknown arch {arch!r}; choose one '
                                 f'of {sorted(cls.arch_settings)} or pass a '
                                 f'dict with keys {keys}')
            return cls.arch_settings[arch.lower()]
        if not isinstance(arch, dict) or set(arch) != set(keys):
            raise ValueError(f'PVTv2: a custom arch must be a dict with '
                             f'exactly the keys {keys}, got {arch!r}')
        settings = {k: list(arch[k]) for k in keys}
        for key, value in settings.items():
            if len(value) != cls.num_stages:
                raise ValueError(f'PVTv2: arch[{key!r}] needs '
                                 f'{cls.num_stages} values, got {value}')
        return settings

    def _stage_modules(self, index: int) -> List[nn.Module]:
        return [
            getattr(self, f'{name}{index + 1}')
            for name in ('patch_embed', 'block', 'norm')
        ]

    def _freeze_stages(self) -> None:
        for i in range(max(self.frozen_stages, 0)):
            for module in self._stage_modules(i):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'PVTv2':
        """Set train mode, keeping the frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        """Load the ``Pretrained`` checkpoint, or initialise randomly."""
        if self.init_cfg is None:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    trunc_normal_init(module, std=.02, bias=0.)
                elif isinstance(module, nn.LayerNorm):
                    constant_init(module, val=1.0, bias=0.)
                elif isinstance(module, nn.Conv2d):
                    fan_out = module.kernel_size[0] * module.kernel_size[
                        1] * module.out_channels // module.groups
                    normal_init(
                        module, mean=0, std=math.sqrt(2.0 / fan_out), bias=0)
        elif self.init_cfg.get('type') == 'Pretrained':
            unknown = set(self.init_cfg) - {'type', 'checkpoint', 'prefix'}
            if unknown or 'checkpoint' not in self.init_cfg:
                raise ValueError(
                    f'PVTv2: init_cfg Pretrained takes checkpoint (and '
                    f'optionally prefix), got {self.init_cfg}')
            checkpoint = self.init_cfg['checkpoint']
            state_dict = load_pvtv2_pretrained(
                checkpoint, prefix=self.init_cfg.get('prefix'))
            self.load_pretrained_state_dict(state_dict, source=checkpoint)
            print_log(
                f'PVTv2: loaded {len(state_dict)} tensors from {checkpoint}',
                logger='current')
        else:
            super().init_weights()
        self._is_init = True

    def load_pretrained_state_dict(self,
                                   state_dict: Dict[str, Tensor],
                                   source: str = 'state dict') -> None:
        """Load ``state_dict`` strictly, naming every key at fault.

        Args:
            state_dict (dict[str, Tensor]): Backbone weights in the
                official key layout (no classification head).
            source (str): Where the weights come from, for the error.

        Raises:
            StateDictMismatchError: A ``KeyError``, on missing, unexpected
                or mis-shaped keys.
        """
        load_state_dict_strict(self, state_dict, source, 'PVTv2 backbone')

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Compute the stage maps.

        Args:
            x (Tensor): Images, B x C x H x W.

        Returns:
            tuple[Tensor]: The maps of ``out_indices``, B x D_i x H/s x W/s
            with strides s = 4, 8, 16, 32.
        """
        outs = []
        for i in range(max(self.out_indices) + 1):
            patch_embed, blocks, norm = self._stage_modules(i)
            x, hw_shape = patch_embed(x)
            for block in blocks:
                x = block(x, hw_shape)
            x = norm(x)
            x = x.transpose(1, 2).reshape(x.shape[0], -1, *hw_shape)
            x = x.contiguous()
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

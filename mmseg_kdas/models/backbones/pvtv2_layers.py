"""The layers of PVTv2 (:class:`~mmseg_kdas.models.backbones.PVTv2`): patch
embedding, spatial-reduction attention, the depth-wise-conv MLP and the
transformer block, named as in the official implementation."""
from typing import Tuple

import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch import Tensor

HWShape = Tuple[int, int]


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch embedding: a strided conv followed by LayerNorm.

    Args:
        in_channels (int): Channels of the input map.
        embed_dim (int): Channels of the output tokens.
        patch_size (int): Kernel size of the conv (padding is half of it).
        stride (int): Stride of the conv.
        norm_eps (float): Epsilon of the LayerNorm. Default: 1e-5 (the
            official code uses PyTorch's default here, not 1e-6).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dim: int,
                 patch_size: int,
                 stride: int,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels,
            embed_dim,
            kernel_size=patch_size,
            stride=stride,
            padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

    def forward(self, x: Tensor) -> Tuple[Tensor, HWShape]:
        """Embed a B x C x H x W map into B x (H'W') x D tokens.

        Args:
            x (Tensor): Input map, B x C x H x W.

        Returns:
            tuple[Tensor, tuple[int, int]]: The normalised tokens and the
            (H', W') grid they come from.
        """
        x = self.proj(x)
        hw_shape = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw_shape


class SpatialReductionAttention(nn.Module):
    """Multi-head attention whose keys/values come from a reduced grid.

    With ``sr_ratio > 1`` the tokens are reshaped to their grid, reduced by
    a ``sr_ratio`` x ``sr_ratio`` conv of the same stride and normalised by
    LayerNorm before the key/value projection.

    Args:
        dim (int): Token channels.
        num_heads (int): Number of attention heads.
        sr_ratio (int): Spatial-reduction ratio of keys and values.
        qkv_bias (bool): Whether the q and kv projections have a bias.
        attn_drop (float): Dropout rate on the attention weights.
        proj_drop (float): Dropout rate after the output projection.
        norm_eps (float): Epsilon of the LayerNorm after the reduction.
            Default: 1e-5 (PyTorch's default, as in the official code).
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 sr_ratio: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(
                f'PVTv2: embedding dim {dim} is not divisible by '
                f'num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.attn_drop = nn.Dropout(attn_drop)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(
                dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: Tensor, hw_shape: HWShape) -> Tensor:
        """Attend from every token to the (reduced) token grid.

        Args:
            x (Tensor): Tokens, B x N x C with N = H * W.
            hw_shape (tuple[int, int]): The grid (H, W) of the tokens.

        Returns:
            Tensor: B x N x C.
        """
        batch, num_tokens, dim = x.shape
        head_dim = dim // self.num_heads
        q = self.q(x).reshape(batch, num_tokens, self.num_heads, head_dim)
        q = q.transpose(1, 2)
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(batch, dim, *hw_shape)
            x = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        kv = self.kv(x).reshape(batch, -1, 2, self.num_heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        # explicit softmax(q k^T / sqrt(d)) v rather than the fused SDPA
        # kernel: same operation order as the official code, so converted
        # weights reproduce its outputs bit for bit on CPU
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(batch, num_tokens, dim)
        return self.proj_drop(self.proj(out))


class TokenDWConv(nn.Module):
    """3x3 depth-wise conv applied to tokens laid back on their grid.

    Args:
        dim (int): Token channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: Tensor, hw_shape: HWShape) -> Tensor:
        """B x N x C tokens on their (H, W) grid -> B x N x C."""
        batch, _, dim = x.shape
        grid = x.transpose(1, 2).reshape(batch, dim, *hw_shape)
        return self.dwconv(grid).flatten(2).transpose(1, 2)


class ConvMlp(nn.Module):
    """PVTv2 feed-forward: fc1, 3x3 depth-wise conv, GELU, fc2.

    Args:
        dim (int): Token channels.
        hidden_dim (int): Hidden channels.
        drop (float): Dropout rate after GELU and after fc2.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = TokenDWConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, hw_shape: HWShape) -> Tensor:
        """B x N x C tokens on their (H, W) grid -> B x N x C."""
        x = self.drop(self.act(self.dwconv(self.fc1(x), hw_shape)))
        return self.drop(self.fc2(x))


class PVTv2Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), x + mlp(norm2(x)).

    Args:
        dim (int): Token channels.
        num_heads (int): Number of attention heads.
        mlp_ratio (float): Hidden/input channel ratio of the MLP.
        sr_ratio (int): Spatial-reduction ratio of the attention.
        qkv_bias (bool): Whether q and kv projections have a bias.
        drop (float): Dropout rate of projections and MLP.
        attn_drop (float): Dropout rate of the attention weights.
        drop_path (float): Stochastic-depth rate of both residual branches.
        norm_eps (float): Epsilon of norm1 and norm2 (the attention's
            own reduction norm keeps 1e-5).
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 sr_ratio: int,
                 qkv_bias: bool = True,
                 drop: float = 0.,
                 attn_drop: float = 0.,
                 drop_path: float = 0.,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SpatialReductionAttention(
            dim,
            num_heads,
            sr_ratio,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor, hw_shape: HWShape) -> Tensor:
        """B x N x C tokens on their (H, W) grid -> B x N x C."""
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.mlp(self.norm2(x), hw_shape))

"""TinyViT-5M image encoder as used by MobileSAM (``vit_t``).

Module and parameter names follow MobileSAM's ``tiny_vit_sam.py`` so that ``mobile_sam.pt``
loads strictly. Two deliberate differences from the official code:
- the attention-bias table is gathered from ``attention_biases`` on every forward instead of
  being cached on ``eval()`` (a cache taken before ``load_state_dict`` goes stale);
- no timm dependency; stochastic depth is implemented here.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

from .common import LayerNorm2d


class Conv2dBN(nn.Sequential):
    """Bias-free Conv2d followed by BatchNorm2d, stored as submodules ``c`` and ``bn``."""

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module(
            "c", nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=False)
        )
        bn = nn.BatchNorm2d(out_chans)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0.0)
        self.add_module("bn", bn)


class DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability ``drop_prob`` in training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def _drop_path_or_identity(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0.0 else nn.Identity()


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 Conv2dBN layers: (B, 3, H, W) -> (B, embed_dim, H/4, W/4)."""

    def __init__(self, in_chans: int, embed_dim: int, resolution: int, activation: type[nn.Module]) -> None:
        super().__init__()
        self.patches_resolution = (resolution // 4, resolution // 4)
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.seq = nn.Sequential(
            Conv2dBN(in_chans, embed_dim // 2, 3, 2, 1),
            activation(),
            Conv2dBN(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted-residual block (1x1 expand, 3x3 depthwise, 1x1 project) on (B, C, H, W)."""

    def __init__(
        self, in_chans: int, out_chans: int, expand_ratio: float, activation: type[nn.Module], drop_path: float
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.hidden_chans = int(in_chans * expand_ratio)
        self.out_chans = out_chans
        self.conv1 = Conv2dBN(in_chans, self.hidden_chans, kernel_size=1)
        self.act1 = activation()
        self.conv2 = Conv2dBN(
            self.hidden_chans, self.hidden_chans, kernel_size=3, stride=1, padding=1, groups=self.hidden_chans
        )
        self.act2 = activation()
        self.conv3 = Conv2dBN(self.hidden_chans, out_chans, kernel_size=1, bn_weight_init=0.0)
        self.act3 = activation()
        self.drop_path = _drop_path_or_identity(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.drop_path(self.conv3(x))
        return self.act3(x + shortcut)


class PatchMerging(nn.Module):
    """Downsampling between stages: (B, L, C) or (B, C, H, W) -> (B, L', out_dim).

    MobileSAM keeps the last stage at 1/16 resolution: the depthwise conv has stride 1 when
    ``out_dim`` is 320, 448 or 576 (the last-stage widths of the TinyViT-5M/11M/21M variants).
    """

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int, activation: type[nn.Module]) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.dim = dim
        self.out_dim = out_dim
        self.act = activation()
        self.conv1 = Conv2dBN(dim, out_dim, 1, 1, 0)
        stride = 1 if out_dim in (320, 448, 576) else 2
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            height, width = self.input_resolution
            x = x.view(x.shape[0], height, width, -1).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


def _make_downsample(
    downsample: type[PatchMerging] | None,
    input_resolution: tuple[int, int],
    dim: int,
    out_dim: int | None,
    activation: type[nn.Module],
) -> PatchMerging | None:
    if downsample is None:
        return None
    return downsample(input_resolution, dim=dim, out_dim=out_dim, activation=activation)


class _Stage(nn.Module):
    """A stage: ``blocks`` run in order, then the optional ``downsample``."""

    blocks: nn.ModuleList
    downsample: PatchMerging | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class ConvLayer(_Stage):
    """First TinyViT stage: MBConv blocks, then an optional PatchMerging."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        activation: type[nn.Module],
        drop_path: list[float],
        downsample: type[PatchMerging] | None = None,
        out_dim: int | None = None,
        conv_expand_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.blocks = nn.ModuleList(
            [MBConv(dim, dim, conv_expand_ratio, activation, drop_path[i]) for i in range(depth)]
        )
        self.downsample = _make_downsample(downsample, input_resolution, dim, out_dim, activation)


class Mlp(nn.Module):
    """Pre-norm MLP of a TinyViT block (``norm``, ``fc1``, ``fc2``)."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.act = act_layer()
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(self.norm(x))))
        return self.drop(self.fc2(x))


def _attention_bias_indices(resolution: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Index of the |dy|,|dx| offset of every (query, key) pair in a window, in LeViT's order."""
    points = list(itertools.product(range(resolution[0]), range(resolution[1])))
    offsets: dict[tuple[int, int], int] = {}
    indices = []
    for p1 in points:
        for p2 in points:
            offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            if offset not in offsets:
                offsets[offset] = len(offsets)
            indices.append(offsets[offset])
    n = len(points)
    return torch.tensor(indices, dtype=torch.long).view(n, n), len(offsets)


class Attention(nn.Module):
    """Windowed multi-head self-attention with learned per-offset biases (LeViT style)."""

    def __init__(
        self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4, resolution: tuple[int, int] = (14, 14)
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim**-0.5
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.attn_ratio = attn_ratio
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, self.dh + 2 * self.nh_kd)
        self.proj = nn.Linear(self.dh, dim)
        indices, num_offsets = _attention_bias_indices(resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer("attention_bias_idxs", indices, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Arguments: x (B, N, C) tokens of B windows. Returns: (B, N, C)."""
        batch, tokens, _ = x.shape
        x = self.norm(x)
        # Per head the qkv features are laid out [q | k | v] (not all q, then all k, ...).
        q, k, v = (
            self.qkv(x).view(batch, tokens, self.num_heads, -1).split([self.key_dim, self.key_dim, self.d], dim=3)
        )
        q = q.permute(0, 2, 1, 3)
        k = k.permute(0, 2, 1, 3)
        v = v.permute(0, 2, 1, 3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = (q @ k.transpose(-2, -1)) * self.scale + bias
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, self.dh)
        return self.proj(x)


class TinyViTBlock(nn.Module):
    """Window attention, 3x3 depthwise Conv2dBN ("local_conv"), then MLP, on (B, H*W, C) tokens."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        local_conv_size: int = 3,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        if window_size <= 0:
            raise ValueError(f"window_size must be positive, got {window_size}")
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.drop_path = _drop_path_or_identity(drop_path)
        self.attn = Attention(dim, dim // num_heads, num_heads, attn_ratio=1, resolution=(window_size, window_size))
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=activation, drop=drop)
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.input_resolution
        batch, length, chans = x.shape
        ws = self.window_size
        if height == ws and width == ws:
            return self.attn(x)
        x = x.view(batch, height, width, chans)
        pad_b = (ws - height % ws) % ws
        pad_r = (ws - width % ws) % ws
        if pad_b > 0 or pad_r > 0:
            # Zero tokens are padded before the attention's own LayerNorm and are not masked,
            # exactly as in the official code. Concatenating zeros instead of F.pad keeps the
            # legacy ONNX exporter from warning about its padding-flip Slice.
            x = torch.cat([x, x.new_zeros(batch, height, pad_r, chans)], dim=2)
            x = torch.cat([x, x.new_zeros(batch, pad_b, width + pad_r, chans)], dim=1)
        padded_h, padded_w = height + pad_b, width + pad_r
        n_h, n_w = padded_h // ws, padded_w // ws
        x = x.view(batch, n_h, ws, n_w, ws, chans).transpose(2, 3).reshape(batch * n_h * n_w, ws * ws, chans)
        x = self.attn(x)
        x = x.view(batch, n_h, n_w, ws, ws, chans).transpose(2, 3).reshape(batch, padded_h, padded_w, chans)
        if pad_b > 0 or pad_r > 0:
            x = x[:, :height, :width].contiguous()
        return x.view(batch, length, chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Arguments: x (B, H*W, C) with (H, W) = input_resolution. Returns: same shape."""
        height, width = self.input_resolution
        batch, length, chans = x.shape
        x = x + self.drop_path(self._windowed_attention(x))
        x = x.transpose(1, 2).reshape(batch, chans, height, width)
        x = self.local_conv(x)
        x = x.view(batch, chans, length).transpose(1, 2)
        return x + self.drop_path(self.mlp(x))


class BasicLayer(_Stage):
    """One attention stage: TinyViT blocks, then an optional PatchMerging."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: list[float] | None = None,
        downsample: type[PatchMerging] | None = None,
        local_conv_size: int = 3,
        activation: type[nn.Module] = nn.GELU,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        rates = drop_path if drop_path is not None else [0.0] * depth
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.blocks = nn.ModuleList(
            [
                TinyViTBlock(
                    dim=dim,
                    input_resolution=input_resolution,
                    num_heads=num_heads,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    drop=drop,
                    drop_path=rates[i],
                    local_conv_size=local_conv_size,
                    activation=activation,
                )
                for i in range(depth)
            ]
        )
        self.downsample = _make_downsample(downsample, input_resolution, dim, out_dim, activation)


class TinyViT(nn.Module):
    """TinyViT backbone with SAM's neck: (B, 3, S, S) normalised image -> (B, 256, S/16, S/16).

    The classifier ``norm_head``/``head`` is unused at inference but kept so the official
    checkpoints load strictly.
    """

    def __init__(
        self,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: tuple[int, ...] = (96, 192, 384, 768),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_sizes: tuple[int, ...] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        use_checkpoint: bool = False,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        layer_lr_decay: float = 1.0,
    ) -> None:
        super().__init__()
        if img_size % 16 != 0:
            raise ValueError(f"img_size must be a multiple of 16, got {img_size}")
        self.img_size = img_size
        self.num_classes = num_classes
        self.depths = list(depths)
        self.num_layers = len(depths)
        self.mlp_ratio = mlp_ratio
        # Accepted for signature compatibility with MobileSAM; they do not change the network.
        self.use_checkpoint = use_checkpoint
        self.layer_lr_decay = layer_lr_decay
        activation = nn.GELU

        self.patch_embed = PatchEmbed(in_chans, embed_dims[0], img_size, activation)
        patches_resolution = self.patch_embed.patches_resolution
        self.patches_resolution = patches_resolution
        rates = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]

        self.layers = nn.ModuleList()
        for i in range(self.num_layers):
            # The last stage keeps the previous resolution (see PatchMerging's stride quirk).
            scale = 2 ** (i - 1 if i == 3 else i)
            common = dict(
                dim=embed_dims[i],
                input_resolution=(patches_resolution[0] // scale, patches_resolution[1] // scale),
                depth=depths[i],
                drop_path=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                downsample=PatchMerging if i < self.num_layers - 1 else None,
                out_dim=embed_dims[min(i + 1, len(embed_dims) - 1)],
                activation=activation,
            )
            if i == 0:
                layer: nn.Module = ConvLayer(conv_expand_ratio=mbconv_expand_ratio, **common)
            else:
                layer = BasicLayer(
                    num_heads=num_heads[i],
                    window_size=window_sizes[i],
                    mlp_ratio=mlp_ratio,
                    drop=drop_rate,
                    local_conv_size=local_conv_size,
                    **common,
                )
            self.layers.append(layer)

        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], 256, kernel_size=1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(256),
        )

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.constant_(module.bias, 0.0)
        elif isinstance(module, nn.LayerNorm):
            nn.init.constant_(module.bias, 0.0)
            nn.init.constant_(module.weight, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Arguments: x (B, 3, img_size, img_size) float, normalised and padded.

        Returns: image embeddings (B, 256, img_size/16, img_size/16) float.
        """
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        side = self.img_size // 16
        x = x.view(x.shape[0], side, side, x.shape[-1]).permute(0, 3, 1, 2)
        return self.neck(x)

"""The restoration network R(x_t, t) -> x0_hat: a DDPM-style U-Net.

Cold Diffusion trains R to undo a degradation, ``min_R || R(D(x0, t), t) - x0 ||``, for any
operator D (blur, masking, snow, ...).  The network is the U-Net of Ho et al. (2020) with the
usual refinements:

* residual blocks ``GroupNorm -> SiLU -> conv3x3 -> GroupNorm * (1 + scale) + shift -> SiLU
  -> dropout -> conv3x3`` whose scale/shift come from a sinusoidal embedding of ``t`` passed
  through an MLP (the "scale-shift norm" of improved DDPM);
* multi-head self-attention at the chosen resolution levels and always once in the middle;
* stride-2 convolutions to go down, nearest x2 + conv3x3 to go up, skip connections by
  concatenation (``num_res_blocks`` skips per level, plus one per downsample, as in DDPM).

Images of any size are accepted: the input is padded (reflect, or replicate when reflect is
impossible) up to a multiple of ``2 ** (len(dim_mults) - 1)`` and the output is cropped back,
so 28x28 MNIST digits go through a network built for powers of two.

With the ``cifar10`` preset the network has 37.5M parameters against DDPM's 35.7M: the
scale/shift time projection has twice the outputs of DDPM's additive one (+2.6M), while the
multi-head attention (4 heads x 32 = 128 wide) is narrower than DDPM's full-width one (-0.8M).

Nothing here picks a device or a dtype: both follow the input and the module, and the forward
pass runs under ``torch.autocast`` (bfloat16 on CPU, float16/bfloat16 on GPU).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .common import TLike, Upsample, check_input, count_parameters, crop, fit_steps, pad_to_multiple

__all__ = [
    "UNet",
    "sinusoidal_embedding",
    "PRESETS",
    "count_parameters",
    "build",
]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style position embedding of the (possibly fractional) step ``t``.

    ``t`` has shape (B,) (or is 0-d / a number); the result is (B, dim) float32, with
    ``sin`` in the first half and ``cos`` in the second, frequencies geometric from 1 down to
    ``1 / max_period`` as in DDPM.  An odd ``dim`` gets a trailing zero column.
    """
    t = torch.as_tensor(t)
    if t.dim() == 0:
        t = t.reshape(1)
    # Always float32: the embedding of large steps loses its fine frequencies in bf16/fp16.
    t = t.to(torch.float32)
    half = dim // 2
    if half == 0:
        return torch.zeros(t.shape[0], dim, device=t.device, dtype=torch.float32)
    # DDPM divides by (half - 1) so that the last frequency is exactly 1 / max_period.
    denom = max(half - 1, 1)
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / denom
    )
    args = t[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding by a per-channel scale and shift."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        # One linear layer gives both scale and shift (2 * out_ch numbers per sample).
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * out_ch))
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # A 1x1 conv only where the residual has to change width ("NIN" shortcut in DDPM).
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time_proj(temb)[:, :, None, None].chunk(2, dim=1)
        # (1 + scale) so that a zero scale leaves the normalised features untouched.
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over all H*W positions, with a residual."""

    def __init__(self, channels: int, groups: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        hidden = heads * head_dim
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * hidden, 1)
        self.proj = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        qkv = self.qkv(self.norm(x))
        # (B, 3*heads*d, H, W) -> three (B, heads, H*W, d) tensors.
        q, k, v = qkv.reshape(b, 3, self.heads, self.head_dim, h * w).permute(1, 0, 2, 4, 3)
        # SDPA picks a fused / memory-efficient kernel where one exists (flash on GPU).
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.permute(0, 1, 3, 2).reshape(b, self.heads * self.head_dim, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution (DDPM)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Level(nn.Module):
    """The blocks of one resolution level on one side of the U (res blocks, optional attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()  # Identity where the level has no attention
        self.resample: nn.Module = nn.Identity()


class UNet(nn.Module):
    """R(x_t, t) -> x0_hat, a DDPM U-Net that accepts images of any height and width.

    Args:
        channels: image channels of x_t.
        dim: base width; level ``i`` has ``dim * dim_mults[i]`` channels.
        dim_mults: width multipliers, one per resolution level (level 0 = full resolution);
            the network downsamples ``len(dim_mults) - 1`` times.
        attn_levels: levels that get a self-attention block after each residual block (down
            and up path).  One attention block always sits in the middle.  The default ``(1,)``
            is DDPM's "attention at 16x16" for 32x32 inputs.
        num_res_blocks: residual blocks per level on the way down (the up path has one more,
            to consume the downsample's skip, as in DDPM).
        dropout: dropout inside residual blocks (DDPM uses 0.1 on CIFAR-10).
        time_dim: width of the time embedding MLP; ``4 * dim`` by default.
        groups: GroupNorm groups; must divide ``dim``.
        attn_heads, attn_head_dim: heads and width per head of the self-attention.
        out_channels: channels of x0_hat; ``channels`` by default.
    """

    def __init__(
        self,
        channels: int = 1,
        dim: int = 64,
        dim_mults: Sequence[int] = (1, 2, 4, 8),
        attn_levels: Sequence[int] = (1,),
        num_res_blocks: int = 2,
        dropout: float = 0.0,
        time_dim: Optional[int] = None,
        groups: int = 8,
        attn_heads: int = 4,
        attn_head_dim: int = 32,
        out_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        dim_mults = tuple(int(m) for m in dim_mults)
        attn_levels = tuple(sorted({int(a) for a in attn_levels}))
        time_dim = int(time_dim) if time_dim is not None else 4 * dim
        out_channels = int(out_channels) if out_channels is not None else channels
        _validate(channels, dim, dim_mults, attn_levels, num_res_blocks, dropout, time_dim,
                  groups, attn_heads, attn_head_dim, out_channels)

        # Everything needed to rebuild the network (saved next to checkpoints).
        self.config: Dict[str, Any] = dict(
            channels=channels, dim=dim, dim_mults=dim_mults, attn_levels=attn_levels,
            num_res_blocks=num_res_blocks, dropout=dropout, time_dim=time_dim, groups=groups,
            attn_heads=attn_heads, attn_head_dim=attn_head_dim, out_channels=out_channels,
        )
        self.channels = channels
        self.out_channels = out_channels
        self.dim = dim
        self.num_levels = len(dim_mults)
        # The input must be divisible by this so that every downsample halves exactly.
        self.size_multiple = 2 ** (self.num_levels - 1)

        self.time_mlp = nn.Sequential(
            nn.Linear(dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.stem = nn.Conv2d(channels, dim, 3, padding=1)

        def attn(ch: int, level: int) -> nn.Module:
            if level in attn_levels:
                return AttentionBlock(ch, groups, attn_heads, attn_head_dim)
            return nn.Identity()

        # Down path: remember the width of every tensor pushed as a skip connection.
        skip_chs: List[int] = [dim]
        ch = dim
        self.down = nn.ModuleList()
        for level, mult in enumerate(dim_mults):
            out_ch = dim * mult
            stage = _Level()
            for _ in range(num_res_blocks):
                stage.res.append(ResBlock(ch, out_ch, time_dim, groups, dropout))
                stage.attn.append(attn(out_ch, level))
                ch = out_ch
                skip_chs.append(ch)
            if level != self.num_levels - 1:
                stage.resample = Downsample(ch)
                skip_chs.append(ch)
            self.down.append(stage)

        self.mid_res1 = ResBlock(ch, ch, time_dim, groups, dropout)
        self.mid_attn = AttentionBlock(ch, groups, attn_heads, attn_head_dim)
        self.mid_res2 = ResBlock(ch, ch, time_dim, groups, dropout)

        # Up path, coarsest level first; each res block eats one skip (concatenated).
        self.up = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            out_ch = dim * dim_mults[level]
            stage = _Level()
            for _ in range(num_res_blocks + 1):
                stage.res.append(ResBlock(ch + skip_chs.pop(), out_ch, time_dim, groups, dropout))
                stage.attn.append(attn(out_ch, level))
                ch = out_ch
            if level != 0:
                stage.resample = Upsample(ch)
            self.up.append(stage)
        assert not skip_chs, "skip bookkeeping out of step"

        # Deliberately NOT zero-initialised: a freshly built network must be a non-trivial
        # (arbitrary) restorer, and zero weights would also block gradients upstream at step 0.
        self.out_norm = _norm(ch, groups)
        self.out_conv = nn.Conv2d(ch, out_channels, 3, padding=1)

    # ------------------------------------------------------------------ forward
    def forward(self, x_t: torch.Tensor, t: TLike) -> torch.Tensor:
        """Predict x0_hat from the degraded image ``x_t`` (B, C, H, W) at step ``t``."""
        check_input(x_t, self.channels)
        b, _, h, w = x_t.shape
        emb = sinusoidal_embedding(fit_steps(t, b, x_t.device), self.dim)
        # Follow the module's dtype (e.g. a .half() network); under autocast Linear recasts.
        temb = self.time_mlp(emb.to(self.time_mlp[0].weight.dtype))

        x, pad = pad_to_multiple(x_t, self.size_multiple)
        hcur = self.stem(x)
        skips = [hcur]
        for stage in self.down:
            for res, attn in zip(stage.res, stage.attn):
                hcur = attn(res(hcur, temb))
                skips.append(hcur)
            if not isinstance(stage.resample, nn.Identity):
                hcur = stage.resample(hcur)
                skips.append(hcur)

        hcur = self.mid_res2(self.mid_attn(self.mid_res1(hcur, temb)), temb)

        for stage in self.up:
            for res, attn in zip(stage.res, stage.attn):
                hcur = attn(res(torch.cat([hcur, skips.pop()], dim=1), temb))
            hcur = stage.resample(hcur)

        x0_hat = self.out_conv(F.silu(self.out_norm(hcur)))
        return crop(x0_hat, pad, h, w)


def _validate(channels: int, dim: int, dim_mults: Tuple[int, ...], attn_levels: Tuple[int, ...],
              num_res_blocks: int, dropout: float, time_dim: int, groups: int, attn_heads: int,
              attn_head_dim: int, out_channels: int) -> None:
    if channels < 1 or out_channels < 1:
        raise ConfigError(f"channels and out_channels must be >= 1, got {channels}, {out_channels}")
    if dim < 1 or time_dim < 1:
        raise ConfigError(f"dim and time_dim must be >= 1, got {dim}, {time_dim}")
    if not dim_mults or any(m < 1 for m in dim_mults):
        raise ConfigError(f"dim_mults must be a non-empty list of positive integers, got {dim_mults}")
    if groups < 1 or dim % groups:
        raise ConfigError(f"groups ({groups}) must divide dim ({dim}) for GroupNorm")
    bad = [a for a in attn_levels if not 0 <= a < len(dim_mults)]
    if bad:
        raise ConfigError(
            f"attn_levels {bad} out of range: levels are 0..{len(dim_mults) - 1} (0 = full resolution)"
        )
    if num_res_blocks < 1:
        raise ConfigError(f"num_res_blocks must be >= 1, got {num_res_blocks}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if attn_heads < 1 or attn_head_dim < 1:
        raise ConfigError(f"attn_heads and attn_head_dim must be >= 1, got {attn_heads}, {attn_head_dim}")


# ---------------------------------------------------------------------- presets
# UNet kwargs per experiment, plus ``image_size`` (reporting only; the network takes any size).
# Attention follows DDPM's rule of thumb: at the level whose feature map is 16x16.
PRESETS: Dict[str, Dict[str, Any]] = {
    "mnist": dict(channels=1, dim=64, dim_mults=(1, 2, 4, 8), attn_levels=(1,),
                  num_res_blocks=2, dropout=0.0, image_size=32),   # the authors resize MNIST to 32 px
    "cifar10": dict(channels=3, dim=128, dim_mults=(1, 2, 2, 2), attn_levels=(1,),
                    num_res_blocks=2, dropout=0.1, image_size=32),
    "celeba": dict(channels=3, dim=64, dim_mults=(1, 2, 4, 8), attn_levels=(3,),
                   num_res_blocks=2, dropout=0.0, image_size=128),
    "celeba-gen": dict(channels=3, dim=64, dim_mults=(1, 2, 4, 8), attn_levels=(3,),
                       num_res_blocks=2, dropout=0.0, image_size=128),
    "afhq-gen": dict(channels=3, dim=64, dim_mults=(1, 2, 4, 8), attn_levels=(3,),
                     num_res_blocks=2, dropout=0.0, image_size=128),
    "cifar10-64": dict(channels=3, dim=64, dim_mults=(1, 2, 4, 8), attn_levels=(1,),
                       num_res_blocks=2, dropout=0.0, image_size=32),
    "mnist-cpu": dict(channels=1, dim=16, dim_mults=(1, 2, 2), attn_levels=(),
                      num_res_blocks=1, dropout=0.0, image_size=28),
    "colour-cpu": dict(channels=3, dim=16, dim_mults=(1, 2, 2), attn_levels=(),
                       num_res_blocks=1, dropout=0.0, image_size=32),
}


def _kwargs(name_or_kwargs: Union[str, Mapping[str, Any]]) -> Dict[str, Any]:
    if isinstance(name_or_kwargs, str):
        if name_or_kwargs not in PRESETS:
            raise ConfigError(
                f"unknown network preset {name_or_kwargs!r}; known presets: {', '.join(PRESETS)}"
            )
        kwargs = dict(PRESETS[name_or_kwargs])
    else:
        kwargs = dict(name_or_kwargs)
    kwargs.pop("image_size", None)  # reporting only
    return kwargs


def build(name_or_kwargs: Union[str, Mapping[str, Any]]) -> UNet:
    """A :class:`UNet` from a preset name (see ``PRESETS``) or a dict of UNet kwargs."""
    kwargs = _kwargs(name_or_kwargs)
    try:
        return UNet(**kwargs)
    except TypeError as e:  # unknown keyword
        raise ConfigError(f"bad network settings {kwargs}: {e}") from None

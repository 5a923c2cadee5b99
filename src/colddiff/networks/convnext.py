"""The authors' restoration network: a ConvNeXt U-Net with linear attention (``model.arch = "lucidrains-convnext"``).

Every MNIST, CelebA and AFHQ experiment of the paper (deblurring, inpainting, super-resolution,
generation, the noise baseline, animorphosis) trains the ``Unet`` of the authors' code
(arpitbansal297/Cold-Diffusion-Models at f8b1379,
``deblurring-diffusion-pytorch/deblurring_diffusion_pytorch/deblurring_diffusion_pytorch.py``; the
copies in the defading, defading-generation, demixing, denoising and resolution folders are the same
class, differing only in spacing), itself lucidrains' denoising-diffusion-pytorch U-Net of early 2022.
This module is written from reading it: the same layers in the same order with the same parameter
names, so the authors' state dicts load after stripping their wrappers' prefixes
(:mod:`colddiff.officialckpt`), and the same output for the same weights.

The network, per resolution level ``dim * dim_mults[i]`` wide:

* a time MLP: sinusoidal embedding of the step (``dim`` wide) -> Linear(dim, 4 dim) -> GELU ->
  Linear(4 dim, dim), added per channel inside every ConvNeXt block (after GELU + Linear);
* ConvNeXt blocks: depthwise 7x7 conv, + time, channel LayerNorm (not in the very first block),
  3x3 conv to twice the width, GELU, 3x3 conv, plus a 1x1 residual where the width changes;
* down path: two ConvNeXt blocks, linear attention behind a LayerNorm with a residual, and a
  4x4 stride-2 conv (none at the last level); the skip is taken before the downsampling;
* middle: ConvNeXt, attention, ConvNeXt;
* up path: concatenate the skip, two ConvNeXt blocks, attention, a 4x4 stride-2 transposed conv;
* out: one ConvNeXt block without time, then a 1x1 conv.

Steps: colddiff's t runs 1..T where the authors' code indexes the same image by i = t - 1
(their ``denoise_fn(D(x0, i), i)`` with i drawn from 0..T-1), so this network embeds t - 1.
Sizes: inputs are padded to a multiple of ``2 ** (len(dim_mults) - 1)`` and cropped back
(:mod:`colddiff.networks.common`); the authors' sizes need no padding.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .common import TLike, check_input, crop, fit_steps, pad_to_multiple


class StepEmbedding(nn.Module):
    """Sinusoidal embedding of the authors' step index i (B,) -> (B, dim): sin in the first half, cos in
    the second, frequencies 10000^(-k / (dim/2 - 1)), computed in the authors' order of operations."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, i: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=i.device) * -step)
        args = i[:, None] * freqs[None, :]
        return torch.cat((args.sin(), args.cos()), dim=-1)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel (biased variance, eps 1e-5), gain ``g`` and bias ``b``."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv (+ the time embedding), [LayerNorm], 3x3 conv x2 wide, GELU, 3x3 conv; residual."""

    def __init__(self, dim_in: int, dim_out: int, time_dim: Optional[int] = None, mult: int = 2,
                 norm: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(time_dim, dim_in)) if time_dim is not None else None
        self.ds_conv = nn.Conv2d(dim_in, dim_in, 7, padding=3, groups=dim_in)
        self.net = nn.Sequential(
            ChannelLayerNorm(dim_in) if norm else nn.Identity(),
            nn.Conv2d(dim_in, dim_out * mult, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim_out * mult, dim_out, 3, padding=1),
        )
        self.res_conv = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.ds_conv(x)
        if self.mlp is not None:
            if temb is None:
                raise ValueError("this ConvNeXt block is conditioned on the step: pass its time embedding")
            h = h + self.mlp(temb)[:, :, None, None]
        return self.net(h) + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear attention (softmax over positions on the keys, over features on none): cost linear in H*W."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32) -> None:
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # (B, 3 * heads * d, H, W) -> three (B, heads, d, H*W)
        q, k, v = (z.reshape(b, self.heads, -1, h * w) for z in self.to_qkv(x).chunk(3, dim=1))
        q = q * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)        # (B, heads, d, d)
        out = torch.einsum("bhde,bhdn->bhen", context, q)      # (B, heads, d, H*W)
        return self.to_out(out.reshape(b, -1, h, w))


class _Normed(nn.Module):
    """``fn(LayerNorm(x))``: the attribute names (``norm``, ``fn``) are the authors' PreNorm's."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class AttentionResidual(nn.Module):
    """``x + LinearAttention(LayerNorm(x))`` (the authors' ``Residual(PreNorm(dim, LinearAttention(dim)))``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fn = _Normed(dim, LinearAttention(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class ConvNeXtUNet(nn.Module):
    """R(x_t, t) -> x0_hat, the authors' ConvNeXt U-Net (module docstring); images of any size.

    Args:
        channels: image channels.
        dim: base width; level i has ``dim * dim_mults[i]`` channels.
        dim_mults: width multipliers, one per resolution level.
        out_dim: output channels (``channels`` by default).
        with_time_emb: the authors' ``--remove_time_embed`` runs set this False (no time MLP).
        residual: the authors' ``--residual`` runs return ``x_t + net(x_t)``.
    """

    def __init__(self, channels: int = 3, dim: int = 64, dim_mults: Sequence[int] = (1, 2, 4, 8),
                 out_dim: Optional[int] = None, with_time_emb: bool = True, residual: bool = False) -> None:
        super().__init__()
        dim_mults = tuple(int(m) for m in dim_mults)
        if channels < 1 or dim < 4 or dim % 2 or not dim_mults or any(m < 1 for m in dim_mults):
            raise ConfigError(f"the lucidrains-convnext network needs channels >= 1, an even dim >= 4 (its step "
                              f"embedding has dim/2 - 1 > 0 frequencies) and positive dim_mults; got channels "
                              f"{channels}, dim {dim}, dim_mults {list(dim_mults)}")
        out_dim = int(out_dim) if out_dim is not None else channels
        self.config: Dict[str, Any] = dict(channels=channels, dim=dim, dim_mults=dim_mults, out_dim=out_dim,
                                           with_time_emb=with_time_emb, residual=residual)
        self.channels, self.out_channels, self.dim, self.residual = channels, out_dim, dim, residual
        self.num_levels = len(dim_mults)
        self.size_multiple = 2 ** (self.num_levels - 1)

        widths = [channels] + [dim * m for m in dim_mults]
        pairs = list(zip(widths[:-1], widths[1:]))
        time_dim = dim if with_time_emb else None
        self.time_mlp = nn.Sequential(StepEmbedding(dim), nn.Linear(dim, dim * 4), nn.GELU(),
                                      nn.Linear(dim * 4, dim)) if with_time_emb else None

        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()   # registered here, as theirs is: the state dicts list tensors in the same order
        for level, (w_in, w_out) in enumerate(pairs):
            last = level == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ConvNeXtBlock(w_in, w_out, time_dim, norm=level != 0),
                ConvNeXtBlock(w_out, w_out, time_dim),
                AttentionResidual(w_out),
                nn.Conv2d(w_out, w_out, 4, 2, 1) if not last else nn.Identity(),
            ]))
        mid = widths[-1]
        self.mid_block1 = ConvNeXtBlock(mid, mid, time_dim)
        self.mid_attn = AttentionResidual(mid)
        self.mid_block2 = ConvNeXtBlock(mid, mid, time_dim)

        # every up level ends in an upsampling (the authors' is_last test never holds on this path)
        for w_in, w_out in reversed(pairs[1:]):
            self.ups.append(nn.ModuleList([
                ConvNeXtBlock(w_out * 2, w_in, time_dim),
                ConvNeXtBlock(w_in, w_in, time_dim),
                AttentionResidual(w_in),
                nn.ConvTranspose2d(w_in, w_in, 4, 2, 1),
            ]))
        self.final_conv = nn.Sequential(ConvNeXtBlock(dim, dim), nn.Conv2d(dim, out_dim, 1))

    def forward(self, x_t: torch.Tensor, t: TLike) -> torch.Tensor:
        """x0_hat from ``x_t`` (B, C, H, W) at colddiff's step ``t`` (1..T; the authors' index t - 1)."""
        check_input(x_t, self.channels)
        b, _, h, w = x_t.shape
        temb = None
        if self.time_mlp is not None:
            i = fit_steps(t, b, x_t.device) - 1
            temb = self.time_mlp[0](i)
            temb = self.time_mlp[1:](temb.to(self.time_mlp[1].weight.dtype))
        x_in, pad = pad_to_multiple(x_t, self.size_multiple)
        x, skips = x_in, []
        for block1, block2, attn, down in self.downs:
            x = attn(block2(block1(x, temb), temb))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, temb)), temb)
        for block1, block2, attn, up in self.ups:
            x = torch.cat((x, skips.pop()), dim=1)
            x = up(attn(block2(block1(x, temb), temb)))
        out = self.final_conv(x)
        if self.residual:
            out = out + x_in
        return crop(out, pad, h, w)


def build(kw: Dict[str, Any]) -> ConvNeXtUNet:
    """The network of a run's ``[model]`` settings: ``channels``, ``dim`` and ``dim_mults`` are read; the
    block count, attention and dropout of this architecture are fixed (two ConvNeXt blocks and linear
    attention at every level, no dropout), so ``num_res_blocks``, ``attn_levels`` and ``dropout`` do not apply."""
    return ConvNeXtUNet(channels=kw["channels"], dim=kw["dim"], dim_mults=kw["dim_mults"])

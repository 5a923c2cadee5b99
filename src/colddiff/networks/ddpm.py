"""The authors' DDPM ``Model``: R(x_t, t) -> x0_hat for their CIFAR-10 deblurring, inpainting and
super-resolution experiments.

The authors' CIFAR-10 train scripts (deblurring-, defading- and resolution-diffusion-pytorch/
cifar10_train.py) build ``Model(resolution=32, in_channels=3, out_ch=3, ch=128, ch_mult=(1, 2, 2, 2),
num_res_blocks=2, attn_resolutions=(16,), dropout=0.1)``, the U-Net of Ho et al. (2020) as the DDPM
code has it (Model2.py; defading's copy is new_model.py, the same code up to whitespace; so are the
copies in the defading-generation, demixing and denoising folders, which no train script imports):

* a sinusoidal embedding of the step (``ch`` wide) through Linear(ch, 4 ch) -> swish -> Linear(4 ch,
  4 ch);
* ``conv_in`` (3x3), then per level ``num_res_blocks`` residual blocks ``GroupNorm(32) -> swish ->
  conv3x3 -> + Linear(swish(temb)) -> GroupNorm(32) -> swish -> dropout -> conv3x3`` with a 1x1
  "nin" shortcut where the width changes, each followed by single-head self-attention at the
  attention resolutions, and a stride-2 3x3 convolution (padded right and bottom) between levels;
* a middle block, attention, block; the mirror path with ``num_res_blocks + 1`` blocks per level
  (each eats one skip by concatenation) and nearest x2 + conv3x3 to go up;
* GroupNorm -> swish -> conv3x3 out.

The module names are the authors' (``temb.dense.0``, ``down.1.block.0.nin_shortcut``, ``mid.attn_1.q``,
``up.2.upsample.conv``, ...), so a state dict of theirs loads key for key; the parameter count is
theirs (35,746,307 at the CIFAR-10 setting).  Where colddiff goes beyond their code it says so:

* the step: their GaussianDiffusion feeds the network the step index ``t - 1`` for ``x_t = D(x0, t)``
  (their ``t`` counts from 0); ``forward`` takes colddiff's ``t`` in 1..T and embeds ``t - 1``;
* any H x W: their ``forward`` asserts H = W = resolution; here the input is padded up to a multiple
  of ``2 ** (len(ch_mult) - 1)`` and the output cropped back (:mod:`colddiff.networks.common`; no
  padding at their sizes), and the attention levels are given as levels (``attn_levels``, 0 = full
  resolution) rather than as pixel sizes (their ``attn_resolutions=(16,)`` at 32 px is level 1);
* GroupNorm uses 32 groups as theirs wherever the width allows (``dim`` a multiple of 32, every paper
  setting); narrower networks, which their code cannot build, use ``gcd(32, dim)`` groups;
* swish is ``F.silu`` and the attention ``scaled_dot_product_attention`` (theirs: ``x * sigmoid(x)``
  and two ``bmm``): the same numbers to the last bits, and the fused attention need not hold the
  (H W)^2 matrix, so large images can be restored at their own size.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .common import TLike, Upsample, check_input, crop, fit_steps, pad_to_multiple

__all__ = ["DDPMModel", "timestep_embedding", "build"]

GROUPS = 32  # the authors' Normalize(): GroupNorm(32, C, eps=1e-6)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The DDPM sinusoidal embedding of step indices ``t`` (B,) as the authors compute it: (B, dim)
    float32, sines then cosines, frequencies ``exp(-k log(10000) / (dim/2 - 1))``, an odd ``dim``
    padded with a zero column."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -step)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """DDPM residual block: the time embedding is added (not scale/shift) after the first conv."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        if in_ch != out_ch:  # the authors' default: a 1x1 ("network in network") shortcut
            self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions, full width, 1x1 q/k/v/out, residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x_n = self.norm(x)
        # (B, C, H, W) -> (B, 1, H*W, C); softmax(q k^T / sqrt(C)) v, the authors' bmm pair.
        q, k, v = (conv(x_n).reshape(b, 1, c, h * w).transpose(2, 3) for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution after zero padding on the right and bottom only (the authors' way)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Level(nn.Module):
    """One resolution level of one side of the U: ``block`` and ``attn`` lists (the authors' names)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()  # empty where the level has no attention


class _Middle(nn.Module):
    def __init__(self, ch: int, temb_ch: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(ch, ch, temb_ch, dropout, groups)
        self.attn_1 = AttnBlock(ch, groups)
        self.block_2 = ResnetBlock(ch, ch, temb_ch, dropout, groups)


class _TimeMLP(nn.Module):
    def __init__(self, ch: int, temb_ch: int) -> None:
        super().__init__()
        self.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])


class DDPMModel(nn.Module):
    """R(x_t, t) -> x0_hat, the authors' DDPM ``Model``.

    Args:
        channels: image channels (in and out, as their ``in_channels`` = ``out_ch``).
        dim: their ``ch``, the base width; level ``i`` has ``dim * dim_mults[i]`` channels.
        dim_mults: their ``ch_mult``.
        attn_levels: levels with self-attention after every residual block (0 = full resolution);
            their ``attn_resolutions=(16,)`` at 32 px is ``(1,)``.
        num_res_blocks: residual blocks per level going down (one more going up).
        dropout: inside the residual blocks (0.1 in their CIFAR-10 scripts).
    """

    def __init__(self, channels: int = 3, dim: int = 128, dim_mults: Sequence[int] = (1, 2, 2, 2),
                 attn_levels: Sequence[int] = (1,), num_res_blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        dim_mults = tuple(int(m) for m in dim_mults)
        attn_levels = tuple(sorted({int(a) for a in attn_levels}))
        if channels < 1 or dim < 4 or not dim_mults or any(m < 1 for m in dim_mults) or num_res_blocks < 1:
            raise ConfigError(f"the ddpm network needs channels >= 1, dim >= 4 (its step embedding has dim/2 - 1 > 0 "
                              f"frequencies), positive dim_mults and num_res_blocks >= 1; got channels {channels}, "
                              f"dim {dim}, dim_mults {list(dim_mults)}, num_res_blocks {num_res_blocks}")
        groups = math.gcd(GROUPS, dim)
        self.channels = channels
        self.dim = dim
        self.num_levels = len(dim_mults)
        self.size_multiple = 2 ** (self.num_levels - 1)
        temb_ch = 4 * dim

        # Registered in the authors' order: temb, conv_in, down, mid, up, norm_out, conv_out.
        self.temb = _TimeMLP(dim, temb_ch)
        self.conv_in = nn.Conv2d(channels, dim, 3, padding=1)

        widths = [dim * m for m in dim_mults]
        ch = dim
        skips: List[int] = [ch]  # width of every tensor the down path keeps for the up path
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            stage = _Level()
            for _ in range(num_res_blocks):
                stage.block.append(ResnetBlock(ch, width, temb_ch, dropout, groups))
                ch = width
                if level in attn_levels:
                    stage.attn.append(AttnBlock(ch, groups))
                skips.append(ch)
            if level != self.num_levels - 1:
                stage.downsample = Downsample(ch)
                skips.append(ch)
            self.down.append(stage)

        self.mid = _Middle(ch, temb_ch, dropout, groups)

        # Built coarsest level first, stored by level (up.0 = full resolution), as theirs.
        up: List[nn.Module] = []
        for level in reversed(range(self.num_levels)):
            stage = _Level()
            for _ in range(num_res_blocks + 1):
                stage.block.append(ResnetBlock(ch + skips.pop(), widths[level], temb_ch, dropout, groups))
                ch = widths[level]
                if level in attn_levels:
                    stage.attn.append(AttnBlock(ch, groups))
            if level != 0:
                stage.upsample = Upsample(ch)
            up.insert(0, stage)
        self.up = nn.ModuleList(up)
        assert not skips, "skip bookkeeping out of step"

        self.norm_out = _norm(ch, groups)
        self.conv_out = nn.Conv2d(ch, channels, 3, padding=1)

    def forward(self, x_t: torch.Tensor, t: TLike) -> torch.Tensor:
        """x0_hat from ``x_t`` (B, C, H, W) at colddiff's step ``t`` (1..T; the authors' index t - 1)."""
        check_input(x_t, self.channels)
        b, _, h, w = x_t.shape
        # The authors' network sees the step index t - 1 for x_t = D(x0, t) (their t counts from 0).
        temb = timestep_embedding(fit_steps(t, b, x_t.device) - 1, self.dim).to(self.conv_in.weight.dtype)
        temb = self.temb.dense[1](F.silu(self.temb.dense[0](temb)))

        x, pad = pad_to_multiple(x_t, self.size_multiple)
        hs = [self.conv_in(x)]
        for stage in self.down:
            for i, block in enumerate(stage.block):
                hcur = block(hs[-1], temb)
                hs.append(stage.attn[i](hcur) if len(stage.attn) else hcur)
            if hasattr(stage, "downsample"):
                hs.append(stage.downsample(hs[-1]))

        hcur = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)

        for level in reversed(range(self.num_levels)):
            stage = self.up[level]
            for i, block in enumerate(stage.block):
                hcur = block(torch.cat([hcur, hs.pop()], dim=1), temb)
                if len(stage.attn):
                    hcur = stage.attn[i](hcur)
            if hasattr(stage, "upsample"):
                hcur = stage.upsample(hcur)

        x0_hat = self.conv_out(F.silu(self.norm_out(hcur)))
        return crop(x0_hat, pad, h, w)


def build(kw: Dict[str, Any]) -> DDPMModel:
    """The network of a run's ``[model]`` settings: ``channels``, ``dim``, ``dim_mults``, ``attn_levels``,
    ``num_res_blocks`` and ``dropout`` are read (their ``ch``, ``ch_mult``, attention, blocks and dropout)."""
    return DDPMModel(channels=kw["channels"], dim=kw["dim"], dim_mults=kw["dim_mults"], attn_levels=kw["attn_levels"],
                     num_res_blocks=kw["num_res_blocks"], dropout=kw["dropout"])

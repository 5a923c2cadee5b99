"""What every restoration network R(x_t, t) shares: reading ``t`` and accepting images of any size.

Each architecture downsamples ``len(dim_mults) - 1`` times, so H and W must be multiples of
``2 ** (len(dim_mults) - 1)``; :func:`pad_to_multiple` pads other sizes (reflect, or replicate where
reflect is impossible) and the network crops its output back, so 28 px MNIST digits and photos of
any size go through networks built for powers of two.  Inputs already of the right size are not
touched, so the authors' networks give their exact outputs at their image sizes.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

TLike = Union[int, float, torch.Tensor]


def fit_steps(t: TLike, batch: int, device: torch.device) -> torch.Tensor:
    """``t`` (a number, a 0-d tensor or shape (B,) or (1,)) as a (B,) float32 tensor on ``device``."""
    t = torch.as_tensor(t, device=device)
    if t.dim() == 0:
        t = t.expand(batch)
    elif t.dim() != 1 or t.shape[0] not in (1, batch):
        raise ValueError(f"t must be a number, a 0-d tensor or have shape ({batch},), got {tuple(t.shape)}")
    elif t.shape[0] == 1:
        t = t.expand(batch)
    return t.to(torch.float32)


def pad_to_multiple(x: torch.Tensor, m: int) -> Tuple[torch.Tensor, Tuple[int, int, int, int]]:
    """Pad H, W of ``x`` up to a multiple of ``m``, split evenly on both sides; returns (x, (l, r, t, b))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return x, (0, 0, 0, 0)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # (left, right, top, bottom)
    # Reflect keeps image statistics at the border but needs pad < size on each side.
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    return F.pad(x, pad, mode=mode), pad


def crop(x: torch.Tensor, pad: Tuple[int, int, int, int], h: int, w: int) -> torch.Tensor:
    """Cut the padding of :func:`pad_to_multiple` back off: the output covers exactly the input's pixels."""
    left, _, top, _ = pad
    return x[..., top:top + h, left:left + w]


def check_input(x_t: torch.Tensor, channels: int) -> None:
    if x_t.dim() != 4 or x_t.shape[1] != channels:
        raise ValueError(f"expected x_t of shape (B, {channels}, H, W), got {tuple(x_t.shape)}")


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters in ``model``."""
    return sum(p.numel() for p in model.parameters())


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour x2 then a 3x3 convolution ``conv`` (DDPM's; no checkerboard artefacts)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

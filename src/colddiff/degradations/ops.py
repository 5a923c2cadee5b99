"""Image operations that several degradation families share, so that no family imports another.

``quantize8`` is how a degraded image is stored (the authors' ``--discrete``: mask and discrete
blur round their observed images to 8-bit levels); ``gray`` is the grey version of an image
(desaturation mixes towards it, snow brightens with it).
"""
from __future__ import annotations

import torch

from ..errors import InputError

# ITU-R BT.601 luma weights; they sum to 1, so gray() is the same in [0, 1] and [-1, 1].
LUMA = (0.299, 0.587, 0.114)
GRAYS = ("luma", "mean")


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """Round [-1, 1] values to the 256 levels of an 8-bit image."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


def gray(x: torch.Tensor, weights: str = "luma") -> torch.Tensor:
    """Grey version of an RGB batch repeated over the 3 channels (identity for 1-channel images):
    ``luma`` (BT.601) or ``mean`` (the plain channel mean, the authors' decolorisation kernel of
    ones/3 in decolor-diffusion/diffusion/forward_process_impl.py)."""
    C = x.shape[1]
    if C == 1:
        return x
    if C != 3:
        raise InputError(f"desaturation needs 1- or 3-channel images, got {C} channels")
    if weights == "mean":
        return x.mean(1, keepdim=True).expand_as(x)
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand_as(x)

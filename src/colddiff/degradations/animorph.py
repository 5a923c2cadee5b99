"""Animorphosis: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·z, z an image from another data set (Sec. 5.3).

The partner image ``z`` is chosen at random once per trajectory (``context``); the paper
mixes AFHQ animals into CelebA faces with T = 200.  Partners come from a tensor
(N, C, H, W), any data set whose items are images or (image, label) pairs, or a path to an
image file or folder.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..errors import ConfigError, InputError
from .base import register, work_dtype
from .mixing import Mixing


@register("animorph")
class Animorph(Mixing):
    """Mixing with partner images.

    Args:
        T: number of steps (the paper: 200).
        partners: tensor (N, C, H, W) in [-1, 1], a data set of images or (image, label)
            pairs, or a path to an image file or folder (loaded at the images' size).
        schedule: ``linear`` or ``cosine`` ᾱ schedule.
    """

    _not_shift_invariant = "it mixes in a whole partner image (a face, an animal) laid over the whole frame"

    def __init__(self, T: int = 200, partners: Any = None, schedule: str = "cosine",
                 image_size=None, channels=None):
        super().__init__(T, schedule, image_size=image_size, channels=channels)
        self.partners = partners
        self._resolved = None

    def _source(self, x0: torch.Tensor):
        if self._resolved is not None:
            return self._resolved
        p = self.partners
        if p is None:
            raise ConfigError(
                "animorph needs partner images: create('animorph', partners=<tensor, data set or image folder>)"
            )
        if isinstance(p, (str, os.PathLike)):
            from .. import data
            from ..images import load_images

            if not os.path.exists(p) and str(p) in data.names():  # a data set name, e.g. "mnist-5k"
                H, W = x0.shape[-2:]
                if H != W:
                    raise InputError("animorph partners from a data set need square images")
                p = data.load(str(p), "train", image_size=H, channels=x0.shape[1])
            else:
                p = load_images(p, channels=x0.shape[1], size=tuple(x0.shape[-2:]))
        if isinstance(p, torch.Tensor):
            if p.dim() == 3:
                p = p.unsqueeze(0)
            if p.dim() != 4 or p.shape[0] == 0:
                raise InputError(f"animorph partners must be a non-empty (N, C, H, W) tensor, got {tuple(p.shape)}")
        elif not (hasattr(p, "__len__") and hasattr(p, "__getitem__")) or len(p) == 0:
            raise InputError("animorph partners must be a tensor, a non-empty data set or an image folder")
        self._resolved = p
        return p

    def _take(self, src, idx: list[int]) -> torch.Tensor:
        if isinstance(src, torch.Tensor):
            return src[torch.tensor(idx, device=src.device)]
        items = []
        for i in idx:
            item = src[i]
            items.append(item[0] if isinstance(item, (tuple, list)) else item)
        return torch.stack(items)

    def context(self, x0, generator=None):
        src = self._source(x0)
        dev = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randint(0, len(src), (x0.shape[0],), generator=generator, device=dev).tolist()
        z = self._take(src, idx)
        if tuple(z.shape[1:]) != tuple(x0.shape[1:]):
            raise InputError(
                f"animorph partner images are {tuple(z.shape[1:])} (C, H, W) but the images to degrade are "
                f"{tuple(x0.shape[1:])}; use partners of the same size and channels"
            )
        return {"z": z.to(device=x0.device, dtype=work_dtype(x0.dtype)), "index": torch.tensor(idx)}

    @classmethod
    def _example(cls, image_size: int = 16, channels: int = 1) -> "Animorph":  # checks.example: partners needed
        g = torch.Generator().manual_seed(0)
        partners = torch.rand(6, channels, image_size, image_size, generator=g) * 2 - 1
        return cls(T=8, partners=partners, image_size=image_size, channels=channels)

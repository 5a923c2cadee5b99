"""Gaussian noise, the hot baseline: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, ε ~ N(0, I) fixed per trajectory.

The closed form, the single step and the ᾱ schedules are the mixing degradations' own
(:mod:`colddiff.degradations.mixing`); this family draws ``z`` as Gaussian noise, so DDIM applies.
"""
from __future__ import annotations

import torch

from .base import register, work_dtype
from .mixing import Mixing


@register("noise")
class GaussianNoise(Mixing):
    """Gaussian noise (hot diffusion), ε ~ N(0, I) fixed per trajectory.

    Args:
        T: number of steps (the paper's CelebA/AFHQ baseline: 200).
        schedule: ``linear`` or ``cosine`` ᾱ schedule.
    """

    shift_invariant = True   # i.i.d. noise per pixel

    def __init__(self, T: int = 200, schedule: str = "cosine", image_size=None, channels=None):
        super().__init__(T, schedule, image_size=image_size, channels=channels)

    def mixing_schedule(self):
        return self.alpha_bar  # z is Gaussian: DDIM can re-estimate it from x0_hat

    def context(self, x0, generator=None):
        dev = generator.device if generator is not None else x0.device
        eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=work_dtype(x0.dtype))
        return {"z": eps.to(x0.device)}

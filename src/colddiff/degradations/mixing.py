"""The shared base of the mixing degradations: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·z.

``noise`` (hot diffusion, the baseline) mixes with Gaussian noise ε; ``animorph``
(animorphosis, Sec. 5.3) mixes with a partner image from another data set.  ``z`` is drawn
once per trajectory by ``context`` ("deterministic noise" when it is Gaussian), so the
single steps ``x_s = r_s·x_{s-1} + (√(1−ᾱ_s) − r_s·√(1−ᾱ_{s-1}))·z`` with
``r_s = √(ᾱ_s/ᾱ_{s-1})`` compose exactly into the closed form.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError
from .base import Degradation, bview, start_from_context, work_dtype

SCHEDULES = ("linear", "cosine")


def alpha_bar(schedule: str, T: int) -> torch.Tensor:
    """ᾱ_t for t = 0..T (ᾱ_0 = 1) in float64.

    ``linear``: DDPM's β from 1e-4 to 0.02, rescaled to T steps (as improved DDPM does).
    ``cosine``: Nichol & Dhariwal (2021), offset s = 0.008, β clipped at 0.999.
    """
    if schedule == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T, dtype=torch.float64)
    elif schedule == "cosine":
        s = 0.008
        f = [math.cos((i / T + s) / (1 + s) * math.pi / 2) ** 2 for i in range(T + 1)]
        betas = torch.tensor([min(1 - f[i + 1] / f[i], 0.999) for i in range(T)], dtype=torch.float64)
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


class Mixing(Degradation):
    """Shared closed form and step of the mixing degradations; subclasses draw ``z``."""

    deterministic = False

    def __init__(self, T: int, schedule: str = "cosine", image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        self.schedule = schedule
        self.alpha_bar = alpha_bar(schedule, self.T)

    def _z(self, x0: torch.Tensor, ctx: Any) -> torch.Tensor:
        z = ctx["z"] if isinstance(ctx, dict) else ctx
        if z is None:
            raise ConfigError(f"{self.name} needs its context: pass ctx=D.context(x0)")
        if z.shape != x0.shape:
            raise ConfigError(f"{self.name}: context image shape {tuple(z.shape)} != x0 shape {tuple(x0.shape)}")
        return z.to(device=x0.device, dtype=work_dtype(x0.dtype))

    def forward(self, x0, t, ctx):
        dt = work_dtype(x0.dtype)
        ab = self.alpha_bar.to(device=x0.device)[t]
        x = x0.to(dt)
        return bview(ab.sqrt().to(dt), x) * x + bview((1 - ab).sqrt().to(dt), x) * self._z(x0, ctx)

    # Generation: x_T = D(0, T, ctx) = √(1 − ᾱ_T)·z, z from the context (noise ε, or partner images);
    # the unknown x0 enters x_T only through √ᾱ_T (2.5e-4 for the cosine schedule at T = 200).
    output_range = None  # √ᾱ·x0 + √(1−ᾱ)·z leaves [-1, 1] when z is Gaussian

    def start(self, n, shape, generator=None, device=None, draw=None):
        return start_from_context(self, n, shape, generator, device)

    def step(self, x, s, ctx):
        dt = work_dtype(x.dtype)
        ab = self.alpha_bar.to(device=x.device)
        r = (ab[s] / ab[s - 1]).sqrt()
        c = (1 - ab[s]).sqrt() - r * (1 - ab[s - 1]).sqrt()
        xx = x.to(dt)
        return bview(r.to(dt), xx) * xx + bview(c.to(dt), xx) * self._z(x, ctx)

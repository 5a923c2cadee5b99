"""Desaturation (colourisation task): D(x0, t) = a_t·x0 + (1 − a_t)·gray(x0) (Sec. 4.5).

A step mixes an image with its grey version, ``x_s = r_s·x_{s-1} + (1 − r_s)·gray(x_{s-1})``.
Because ``gray`` is linear and ``gray(gray(x)) = gray(x)``, the mix factors compose:
``a_t = r_1 ··· r_t``.  Both schedules end in total removal of colour at ``t = T``.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Degradation, bview, register, work_dtype
from .ops import GRAYS, gray

SCHEDULES = ("linear", "constant")


@register("desaturate")
class Desaturate(Degradation):
    """Colour removal.

    Args:
        T: number of steps (the paper: 20).
        schedule: ``linear`` (a_t = 1 − t/T) or ``constant`` (every step keeps the same share
            ``rate`` of the colour, a_t = rate^t; the last step removes what is left).
        rate: per-step colour retention of the constant schedule.
        gray: ``luma`` (BT.601 weights) or ``mean`` (the authors' plain channel mean).
    """

    shift_invariant = True   # a per-pixel colour map

    def __init__(self, T: int = 20, schedule: str = "linear", rate: float = 0.9, gray: str = "luma",
                 image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown desaturate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 < float(rate) < 1:
            raise ConfigError(f"desaturate rate must be in (0, 1), got {rate}")
        if gray not in GRAYS:
            raise ConfigError(f"unknown desaturate gray {gray!r}; choose one of {', '.join(GRAYS)}")
        self.schedule, self.rate, self.gray = schedule, float(rate), gray
        a = [1.0]
        for s in range(1, self.T + 1):
            if s == self.T:
                a.append(0.0)
            elif schedule == "linear":
                a.append(1.0 - s / self.T)
            else:
                a.append(self.rate**s)
        self.a = torch.tensor(a, dtype=torch.float64)  # a_t, t = 0..T

    def forward(self, x0, t, ctx):
        dt = work_dtype(x0.dtype)
        x = x0.to(dt)
        a = bview(self.a.to(device=x0.device, dtype=dt)[t], x)
        return a * x + (1 - a) * gray(x, self.gray)

    def step(self, x, s, ctx):
        dt = work_dtype(x.dtype)
        xx = x.to(dt)
        a = self.a.to(x.device)
        r = bview((a[s] / a[s - 1]).to(dt), xx)  # a_{s-1} > 0 for every s <= T
        return r * xx + (1 - r) * gray(xx, self.gray)

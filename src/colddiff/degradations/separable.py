"""Degradations whose every step is a separable linear operator (blur, resolution).

A step acts on the rows and on the columns of each channel independently:
``x_s = A_s^H · x_{s-1} · (A_s^W)^T``.  Applied ``t`` times this is again one matrix per
axis, ``M_t = A_t ··· A_1``, so the closed form costs two small batched matrix products
whatever ``t`` is.  The matrices are built once per (size, device, dtype), in float64.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from .base import Degradation, work_dtype


class SeparableDegradation(Degradation):
    """Base for degradations whose steps are per-axis matrices.

    Subclasses implement ``axis_matrix(n, s)``: the (n, n) float64 matrix of step ``s``
    along an axis of length ``n``, and ``step`` with ordinary 2-D image operations.
    """

    def __init__(self, T, image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        self._cache: Dict[Tuple, torch.Tensor] = {}

    def axis_matrix(self, n: int, s: int) -> torch.Tensor:
        raise NotImplementedError

    def composite(self, n: int, device=None, dtype=torch.float64) -> torch.Tensor:
        """(T+1, n, n) tensor: ``M_t`` = the axis operator of ``t`` steps (``M_0`` = identity)."""
        key = (n, str(device), dtype)
        M = self._cache.get(key)
        if M is None:
            base = self._cache.get((n, "cpu", torch.float64))
            if base is None:
                mats = [torch.eye(n, dtype=torch.float64)]
                for s in range(1, self.T + 1):
                    mats.append(self.axis_matrix(n, s) @ mats[-1])
                base = torch.stack(mats)
                self._cache[(n, "cpu", torch.float64)] = base
            M = base.to(device=device, dtype=dtype)
            self._cache[key] = M
        return M

    def forward(self, x0, t, ctx):
        B, C, H, W = x0.shape
        dt = work_dtype(x0.dtype)
        MH = self.composite(H, x0.device, dt)[t]  # (B, H, H)
        MW = MH if W == H else self.composite(W, x0.device, dt)[t]
        x = x0.to(dt)
        # rows, then columns: M_H · x · M_W^T for every channel of every sample
        out = torch.matmul(MH.unsqueeze(1), x)
        out = torch.matmul(out, MW.transpose(1, 2).unsqueeze(1))
        return out.to(x0.dtype)

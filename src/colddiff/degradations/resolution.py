"""Super-resolution degradation: every step halves the resolution (Cold Diffusion, Sec. 4.3).

Step ``s`` area-averages the image down to ``ceil(n / 2^s)`` pixels per side and resizes it
back to full size with nearest-neighbour interpolation.  Both operations are separable and
linear, so ``t`` steps are one matrix per axis (exact for sizes that are not powers of two,
e.g. MNIST's 28 -> 14 -> 7 -> 4, too).

``downsample="bicubic"`` is the authors' ``Incremental_factor_2`` routine
(resolution-diffusion-pytorch/resolution_diffusion_pytorch/resolution_diffusion_pytorch.py):
the full-size image of step s−1 is resized to n / 2^s pixels by bicubic interpolation without
antialiasing, then back up by nearest-neighbour.  It is linear and separable too, so its
closed form is again one matrix per axis; its cubic lobes can overshoot [−1, 1] slightly,
as theirs do.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Degradation, register, work_dtype
from .separable import SeparableDegradation


def size_at(n: int, s: int) -> int:
    """Side length after ``s`` halvings of an ``n``-pixel side."""
    return max(1, math.ceil(n / 2**s))


def pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix of 1-D adaptive average pooling (the bins torch's adaptive_avg_pool uses)."""
    P = np.zeros((n_out, n_in))
    for i in range(n_out):
        a = (i * n_in) // n_out
        b = -((-(i + 1) * n_in) // n_out)  # ceil
        P[i, a:b] = 1.0 / (b - a)
    return P


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix of 1-D bicubic resizing without antialiasing (torch's ``interpolate(mode="bicubic")``,
    half-pixel centres), read off by resizing the unit vectors."""
    eye = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)
    out = F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=False)  # (n_in, 1, n_out, 1)
    return out[:, 0, :, 0].T.numpy()


DOWNSAMPLES = ("area", "bicubic")


def nearest_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix of 1-D nearest-neighbour resizing (torch's "nearest" index rule)."""
    U = np.zeros((n_out, n_in))
    scale = n_in / n_out
    src = np.minimum(np.floor(np.arange(n_out) * np.float32(scale)).astype(int), n_in - 1)
    U[np.arange(n_out), src] = 1.0
    return U


@register("resolution")
class Downsample(SeparableDegradation):
    """×2 downsampling per step, shown at full size with nearest-neighbour upsampling.

    Args:
        T: number of halvings (the paper: 3 for MNIST/CIFAR-10, i.e. down to 4×4 at 32 px;
            4 for CelebA).  ``2**T`` may not exceed the image size.
        downsample: ``area`` (average over each block) or ``bicubic`` (the authors' routine).
    """

    def __init__(self, T: int = 3, downsample: str = "area", image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        if downsample not in DOWNSAMPLES:
            raise ConfigError(f"unknown resolution downsample {downsample!r}; choose one of {', '.join(DOWNSAMPLES)}")
        self.downsample = downsample
        if downsample == "bicubic":
            self.output_range = None  # cubic lobes overshoot [-1, 1] a little
        if image_size is not None:
            self._check_size(int(image_size))

    shift_invariant = True   # block averages: the same at every block, when blocks tile the image

    def tile_multiple(self) -> int:
        return 2**self.T         # the last step's blocks; an image (or tile) must be made of whole blocks

    def _check_size(self, n: int) -> None:
        if 2**self.T > n:
            raise ConfigError(
                f"resolution: T={self.T} halvings would shrink a {n}-pixel image below one pixel; "
                f"use T <= {int(math.log2(n))}"
            )

    def axis_matrix(self, n: int, s: int) -> torch.Tensor:
        self._check_size(n)
        m = size_at(n, s)
        down = bicubic_matrix(n, m) if self.downsample == "bicubic" else pool_matrix(n, m)
        return torch.from_numpy(nearest_matrix(m, n) @ down)

    def step(self, x, s, ctx):
        # The authors' way on images: pool down, then resize back up with nearest neighbours.
        B, C, H, W = x.shape
        self._check_size(min(H, W))
        dt = work_dtype(x.dtype)
        out = torch.empty_like(x, dtype=dt)
        for sv in torch.unique(s).tolist():
            idx = (s == sv).nonzero().flatten()
            size = (size_at(H, sv), size_at(W, sv))
            if self.downsample == "bicubic":
                small = F.interpolate(x[idx].to(dt), size=size, mode="bicubic", align_corners=False, antialias=False)
            else:
                small = F.adaptive_avg_pool2d(x[idx].to(dt), size)
            out[idx] = F.interpolate(small, size=(H, W), mode="nearest")
        return out.to(x.dtype)

    # ---- generation: the end state is a tiny image (28 px -> 4x4 = 16 numbers per channel), not a constant.
    # Fitting the Gaussian mixture to the whole low-resolution end state, instead of to the channel
    # means, gives the start a digit's rough layout to restore (the "richer start state" of the
    # later work that fixed blur generation's lack of diversity).  Defining start_statistic says so.
    def _end_maps(self, H: int, W: int):
        """The nearest-neighbour upsampling matrices (H, h), (W, w) of the last step and, per low-resolution
        pixel, one full-size pixel showing it (the end state is constant on each pixel's block)."""
        self._check_size(min(H, W))
        UH = torch.from_numpy(nearest_matrix(size_at(H, self.T), H))
        UW = torch.from_numpy(nearest_matrix(size_at(W, self.T), W))
        return UH, UW, UH.argmax(0), UW.argmax(0)

    def end_state(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w): the image at t = T at its own resolution (h = ceil(H / 2^T)); D(x0, T) = up(end_state)."""
        B, C, H, W = x0.shape
        _, _, rows, cols = self._end_maps(H, W)
        x_T = self(x0, self.T)
        return x_T[:, :, rows.to(x0.device)][:, :, :, cols.to(x0.device)]

    def start_statistic(self, x0):
        return self.end_state(x0).double().flatten(1)

    def start(self, n, shape, generator=None, device=None, draw=None):
        """x_T = up(small): the (C, h, w) low-resolution end state drawn by ``draw`` (the fitted GMM), shown at full size."""
        if draw is None:
            raise ConfigError("resolution generation draws its low-resolution start from a Gaussian mixture: pass draw=")
        C, H, W = shape
        UH, UW, rows, cols = self._end_maps(H, W)
        small = draw(n, generator).double().view(n, C, rows.numel(), cols.numel())
        return torch.matmul(torch.matmul(UH, small), UW.T).float().to(device), None

    @classmethod
    def _example(cls, image_size: int = 16, channels: int = 1) -> "Degradation":  # checks.example: T=2 fits 16 px
        return cls(T=2, image_size=image_size, channels=channels)

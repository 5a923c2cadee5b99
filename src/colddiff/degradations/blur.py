"""Gaussian blur: x_t = G_t * x_{t-1} (Cold Diffusion, Sec. 4.1 and 5.1).

Every step convolves with a k×k Gaussian kernel whose width follows a schedule.  The
kernel is separable, so every step (and any number of steps) is one matrix per image axis,
whatever the padding; the closed form is therefore exact and costs the same at every t.
With ``padding="circular"`` the fully blurred image tends to a constant image equal to each
channel's mean, the start state of blur-based generation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import bview, register, work_dtype
from .ops import quantize8
from .separable import SeparableDegradation

SCHEDULES = ("constant", "incremental", "exponential", "cifar10")
PADDINGS = ("circular", "reflect", "zero")


def gaussian_kernel_1d(kernel_size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps; the 2-D kernel is the outer product of two of these."""
    r = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        s2 = 2.0 * np.float64(sigma) ** 2  # numpy: inf for a huge sigma (a box filter), not an OverflowError
        g = np.exp(-(r**2) / s2)
    if not np.isfinite(g).all() or g.sum() == 0:  # sigma so small that s2 underflows to 0: the limit, no blur
        g = (r == 0).astype(np.float64)
    return g / g.sum()


def pad_index(i: np.ndarray, n: int, padding: str) -> np.ndarray:
    """Map (possibly out-of-range) indices to source indices; -1 where zero padding applies."""
    if padding == "circular":
        return np.mod(i, n)
    if padding == "reflect":  # reflect without repeating the edge, like torch's "reflect"
        period = 2 * (n - 1)
        j = np.mod(i, period) if n > 1 else np.zeros_like(i)
        return np.where(j >= n, period - j, j)
    return np.where((i >= 0) & (i < n), i, -1)


@register("blur")
class GaussianBlur(SeparableDegradation):
    """Repeated Gaussian blur.

    Args:
        T: number of steps.
        kernel_size: odd kernel width k (the paper: 11 for MNIST/CIFAR-10, 15 CelebA, 27 generation).
        sigma: kernel std for ``constant``; base std for ``incremental`` (σ_t = sigma·t) and
            ``exponential`` (σ_t = sigma·exp(rate·(t − 1))); ignored by ``cifar10`` (σ_t = 0.35 + 0.01·(t − 1)).
            The two growing schedules count from the authors' step index i = t − 1 (their
            ``np.exp(kernel_std * i)`` and ``i/100 + 0.35`` for i = 0..T−1, in
            deblurring-diffusion-pytorch/deblurring_diffusion_pytorch/deblurring_diffusion_pytorch.py);
            the paper's text writes σ_t = exp(0.01·t), one step further along.
        schedule: ``constant``, ``incremental``, ``exponential`` or ``cifar10``.
        padding: ``circular``, ``reflect`` or ``zero``.
        rate: growth rate of the exponential schedule (the paper's CelebA: 0.01 with sigma=1).
        discrete: the authors' ``--discrete`` (their generation runs): the last step replaces the
            image by its channel means, and every observed degraded image (training inputs,
            ``observe``) is put on 8-bit levels; D itself, in the sampler, is not rounded.  They
            truncate with int(), which floors every non-integer value (half a level lower on
            average); colddiff rounds to the nearest level.
    """

    def __init__(self, T: int = 20, kernel_size: int = 11, sigma: float = 7.0,
                 schedule: str = "constant", padding: str = "reflect", rate: float = 0.01,
                 discrete: bool = False, image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        kernel_size = int(kernel_size)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"blur kernel_size must be a positive odd number, got {kernel_size}")
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown blur schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if padding not in PADDINGS:
            raise ConfigError(f"unknown blur padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        if float(sigma) <= 0:
            raise ConfigError(f"blur sigma must be positive, got {sigma}")
        self.kernel_size, self.sigma, self.schedule = kernel_size, float(sigma), schedule
        self.padding, self.rate, self.discrete = padding, float(rate), bool(discrete)
        if image_size is not None:
            self._check_size(int(image_size))

    shift_invariant = True   # one Gaussian kernel per step, the same at every pixel

    def sigma_at(self, s: int) -> float:
        """Kernel std of step ``s`` (1..T)."""
        if self.schedule == "constant":
            return self.sigma
        if self.schedule == "incremental":
            return self.sigma * s
        if self.schedule == "exponential":  # the authors' Exponential(_reflect): exp(kernel_std * i), i = s - 1
            try:
                return self.sigma * math.exp(self.rate * (s - 1))
            except OverflowError:  # e.g. rate=1e308: the kernel's limit is a box filter
                return math.inf
        return 0.35 + 0.01 * (s - 1)  # cifar10: the authors' Special_6_routine, i/100 + 0.35 with i = s - 1

    def _check_size(self, n: int) -> None:
        r = self.kernel_size // 2
        if self.padding == "reflect" and r >= n:
            raise ConfigError(
                f"reflect padding needs kernel_size//2 < image size, got kernel_size={self.kernel_size} "
                f"for {n}-pixel images; use a smaller kernel or padding=circular/zero"
            )
        if self.padding == "circular" and r > n:
            raise ConfigError(f"circular padding needs kernel_size//2 <= image size ({n})")

    def axis_matrix(self, n: int, s: int) -> torch.Tensor:
        self._check_size(n)
        g = gaussian_kernel_1d(self.kernel_size, self.sigma_at(s))
        r = self.kernel_size // 2
        A = np.zeros((n, n))
        rows = np.arange(n)
        for m in range(self.kernel_size):
            src = pad_index(rows + m - r, n, self.padding)
            ok = src >= 0
            np.add.at(A, (rows[ok], src[ok]), g[m])
        return torch.from_numpy(A)

    def kernel_2d(self, s: int, device=None, dtype=torch.float32) -> torch.Tensor:
        g = torch.from_numpy(gaussian_kernel_1d(self.kernel_size, self.sigma_at(s)))
        return torch.outer(g, g).to(device=device, dtype=dtype)

    def forward(self, x0, t, ctx):
        if not self.discrete:
            return super().forward(x0, t, ctx)
        last = t == self.T  # discrete: D(x0, T) is the channel mean of D(x0, T - 1)
        y = super().forward(x0, torch.where(last, t - 1, t), ctx)
        return torch.where(bview(last, y), y.mean((2, 3), keepdim=True).expand_as(y), y)

    def finalize(self, x_t, t):
        if not self.discrete:
            return x_t

        return quantize8(x_t)

    def step(self, x, s, ctx):
        if self.discrete and bool((s == self.T).any()):
            blurred = self._conv_step(x, s, ctx)
            mean = x.to(blurred.dtype).mean((2, 3), keepdim=True).expand_as(blurred)
            return torch.where(bview(s == self.T, blurred), mean, blurred)
        return self._conv_step(x, s, ctx)

    def _conv_step(self, x, s, ctx):
        # The authors' way: pad, then a depthwise 2-D convolution with the k×k kernel.
        B, C, H, W = x.shape
        self._check_size(min(H, W))
        dt = work_dtype(x.dtype)
        r = self.kernel_size // 2
        mode = {"zero": "constant"}.get(self.padding, self.padding)
        out = torch.empty_like(x, dtype=dt)
        for sv in torch.unique(s).tolist():
            idx = (s == sv).nonzero().flatten()
            k = self.kernel_2d(int(sv), x.device, dt).expand(C, 1, -1, -1)
            xp = F.pad(x[idx].to(dt), (r, r, r, r), mode=mode)
            out[idx] = F.conv2d(xp, k, groups=C)
        return out.to(x.dtype)

    # ---- generation (Cold Diffusion, Sec. 5): every image blurs to a constant image, its channel means,
    # which generation draws from a Gaussian mixture fitted to them (start_statistic)
    RESIDUAL_WARN = 0.05   # warn when D(·, T) keeps more than 5% of an image's contrast

    def start_statistic(self, x0):
        return x0.double().mean((2, 3))

    def constant_residual(self, H: int, W=None) -> float:
        """How much of an image's contrast this blur keeps at t = T (0: D(x0, T) is exactly constant).

        The largest gain ‖M_T·(I − 11ᵀ/n)‖₂ of the per-axis operator on zero-mean signals, over
        both axes: D(x0, T) deviates from a constant image by at most this factor of x0's deviation.
        """
        gains = []
        for n in {int(H), int(W or H)}:
            M = self.composite(n)[self.T]
            P = torch.eye(n, dtype=M.dtype) - 1.0 / n
            gains.append(float(torch.linalg.matrix_norm(M @ P, ord=2)))
        return max(gains)

    def start(self, n, shape, generator=None, device=None, draw=None):
        """x_T = D(fill, T), ``fill`` the constant image of channel means drawn by ``draw`` (the fitted GMM).

        With circular or reflect padding every blur row sums to one, so D(fill, T) == fill up to
        rounding; with zero padding it is darker near the borders, exactly as a real image of
        that mean would be at t = T, so D(fill, T) is the right start for every padding.
        """
        if draw is None:
            raise ConfigError("blur generation draws its start from a Gaussian mixture of channel means: pass draw=")
        C, H, W = shape
        key = ("residual", H, W)
        warned = self.__dict__.setdefault("_warned", set())
        if key not in warned:
            warned.add(key)
            r = self.constant_residual(H, W)
            if r > self.RESIDUAL_WARN:
                import logging

                logging.getLogger("colddiff.generation").warning(
                    "this blur keeps %.0f%% of an image's contrast at t=T=%d (not a constant image), so generation "
                    "from a constant start is out of distribution for the network; the generation presets "
                    "(*-blur-gen: T=300, 27x27, circular) blur to a constant", 100 * r, self.T)
        fill = draw(n, generator).to(device)[:, :, None, None].expand(n, C, H, W).contiguous()
        return self(fill, self.T), None

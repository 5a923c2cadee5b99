"""Snowification, after ImageNet-C's snow corruption (Cold Diffusion, Sec. 4.4).

Two families live here:

* ``snow`` (:class:`AuthorsSnow`): the authors' snow as they ran it
  (``--random_snow --fix_brightness`` in snowification/training_script.sh and the README):
  their own level table, one snow field per trajectory, horizontal or vertical streaks,
  additive and clipped at white.  The paper presets use it.
* ``snow-c`` (:class:`Snow`): colddiff's earlier variant described below, with
  CIFAR-10-C-sized levels and a multiplicative layer whose steps compose exactly.

The rest of this docstring describes ``snow-c``.

A trajectory's snow comes from one field of Gaussian noise (mean ``loc``, std ``scale``)
drawn at ``1/zoom`` of the image size and zoomed up.  At step ``t`` the flakes are the
field's values above a threshold that falls linearly with ``t``; they are motion-blurred
along one direction with a σ that grows linearly with ``t``, and added together with
their 180°-rotated copy into a snow layer ``S_t`` in [0, S_MAX].  The scene is whitened by
a brightness coefficient ``c_t`` that falls linearly from 1 to the level's ``blend``:

    x_t = (1 − S_t)·(c_t·x0 + (1 − c_t)) + S_t  =  1 − a_t·(1 − x0),   a_t = (1 − S_t)·c_t

(1 is white in [-1, 1]).  One step is the per-pixel map
``x_s = 1 − (a_s / a_{s−1})·(1 − x_{s−1})``, so the steps compose into the closed form, whose
cost (one motion blur) does not depend on ``t``.

Levels use the CIFAR-10-C-sized snow settings (loc, scale, zoom, threshold, radius, sigma,
blend) of ImageNet-C for 32-pixel images; zoom, radius and sigma grow with the square root
of the image size (ImageNet-C's 224-pixel settings are about twice its 32-pixel ones).
``random=False`` (default) gives every image the same snow, drawn with ``seed`` (default 0);
``random=True`` draws new snow per trajectory from the generator passed to ``context``.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Degradation, bview, register, work_dtype
from .ops import gray

# level: (loc, scale, zoom, threshold, radius, sigma, blend) for 32×32 images
LEVELS = {
    1: (0.10, 0.20, 1.00, 0.60, 8, 3, 0.95),
    2: (0.10, 0.20, 1.00, 0.50, 10, 4, 0.90),
    3: (0.15, 0.30, 1.75, 0.55, 10, 4, 0.90),
    4: (0.25, 0.30, 2.25, 0.60, 12, 6, 0.85),
}
S_MAX = 0.98  # keeps a_t > 0 so that every step is invertible arithmetic, not a division by 0
REF_SIZE = 32


def motion_kernels(radius: int, sigma: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(B, 1, 2r+1, 2r+1) one-sided motion-blur kernels: Gaussian weights along a ray.

    ``sigma`` (B,) in pixels, ``angle`` (B,) in degrees; taps are splatted bilinearly.
    """
    B = sigma.shape[0]
    K = 2 * radius + 1
    dev, dt = sigma.device, sigma.dtype
    j = torch.arange(radius + 1, device=dev, dtype=dt)
    w = torch.exp(-(j[None] ** 2) / (2 * sigma[:, None] ** 2))  # (B, r+1)
    th = torch.deg2rad(angle)[:, None]
    px = radius + j[None] * torch.cos(th)
    py = radius - j[None] * torch.sin(th)
    x0, y0 = px.floor(), py.floor()
    fx, fy = px - x0, py - y0
    ker = torch.zeros(B, K * K, device=dev, dtype=dt)
    for dy, dx, ww in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy = (y0 + dy).clamp(0, K - 1).long()
        xx = (x0 + dx).clamp(0, K - 1).long()
        ker.scatter_add_(1, yy * K + xx, w * ww)
    ker = ker / ker.sum(1, keepdim=True)
    return ker.view(B, 1, K, K)


def correlate_fft(x: torch.Tensor, ker: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-correlation with zero padding, like ``F.conv2d(x, ker, padding=r,
    groups=B)`` on (1, B, H, W), but through the FFT: O(HW log HW) whatever the kernel size.

    ``x`` is (B, 1, H, W), ``ker`` (B, 1, K, K) with K = 2r + 1.
    """
    B, _, H, W = x.shape
    K = ker.shape[-1]
    r = K // 2
    size = (H + K - 1, W + K - 1)  # linear (not circular) convolution
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    X = torch.fft.rfft2(x.to(dt), s=size)
    Kf = torch.fft.rfft2(torch.flip(ker.to(dt), dims=(-2, -1)), s=size)
    full = torch.fft.irfft2(X * Kf, s=size)
    return full[..., r:r + H, r:r + W].to(x.dtype)


class _SnowField(Degradation):
    """What both snow families share: a snow field drawn per trajectory (``random=True``, in the
    context) or one fixed field per image size drawn with ``seed`` (``random=False``).
    Subclasses set ``random``, ``seed`` and ``_fixed`` and implement ``_draw``."""

    shift_invariant = True   # flakes may fall anywhere and streak the same way everywhere (local blur)

    def context(self, x0, generator=None):
        if not self.random:
            return None
        B, C, H, W = x0.shape
        return self._draw(B, H, W, generator, x0.device)

    def _pattern(self, x0, ctx) -> dict:
        if self.random:
            if ctx is None:
                raise ConfigError("random snow needs its context: pass ctx=D.context(x0)")
            return ctx
        H, W = x0.shape[-2:]
        key = (H, W, str(x0.device))
        if key not in self._fixed:
            self._fixed[key] = self._draw(1, H, W, torch.Generator().manual_seed(self.seed), x0.device)
        return self._fixed[key]


@register("snow-c")
class Snow(_SnowField):
    """Snowification with CIFAR-10-C-like levels and a multiplicative, step-exact snow layer.

    colddiff's earlier snow (the paper presets now use :class:`AuthorsSnow`, registered as
    ``snow``): its levels are ImageNet-C's 32-pixel settings, not the authors' own, and at
    level 4, 128 px its snow covers about half as much of the image as theirs.

    Args:
        T: number of steps (the paper: 200).
        level: snow level 1..4 (the paper: 3 for CIFAR-10, 4 for CelebA).
        random: draw new snow per trajectory (True) or use one fixed snow pattern (False).
        seed: seed of the fixed snow pattern.
    """

    def __init__(self, T: int = 200, level: int = 3, random: bool = False, seed: int = 0,
                 image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        if int(level) not in LEVELS:
            raise ConfigError(f"snow level must be one of {sorted(LEVELS)}, got {level}")
        self.level, self.random, self.seed = int(level), bool(random), int(seed)
        self.deterministic = not self.random
        self._fixed: Dict[Tuple, dict] = {}

    # ---------------------------------------------------------------- snow pattern
    def _draw(self, B: int, H: int, W: int, generator, device) -> dict:
        loc, scale, zoom, *_ = LEVELS[self.level]
        zoom = max(1.0, zoom * self.size_factor(min(H, W)))
        h, w = max(2, math.ceil(H / zoom)), max(2, math.ceil(W / zoom))
        gdev = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(B, 1, h, w, generator=generator, device=gdev)
        angle = torch.rand(B, generator=generator, device=gdev) * 90.0 - 135.0  # ImageNet-C: U(-135°, -45°)
        if (h, w) != (H, W):
            z = F.interpolate(z, size=(H, W), mode="bilinear", align_corners=False)
            # zooming smooths the noise; restore unit variance so the share of flakes above a
            # threshold is the same at every image size
            z = (z - z.mean((1, 2, 3), keepdim=True)) / z.std((1, 2, 3), keepdim=True).clamp(min=1e-6)
        field = loc + scale * z
        return {"field": field.to(device), "angle": angle.to(device)}

    @staticmethod
    def size_factor(size: int) -> float:
        """How flake size and streak length grow with the image: ImageNet-C's 224-pixel settings
        are only ~2× its 32-pixel ones, so they grow with the square root of the size."""
        return math.sqrt(size / REF_SIZE)


    # ---------------------------------------------------------------- schedules
    def threshold_at(self, t: torch.Tensor) -> torch.Tensor:
        loc, scale, _, thr, *_ = LEVELS[self.level]
        start = loc + 3 * scale  # almost no flake at t = 0
        return start + (thr - start) * t / self.T

    def sigma_at(self, t: torch.Tensor, size: int) -> torch.Tensor:
        sigma = LEVELS[self.level][5] * self.size_factor(size)
        return (sigma * t / self.T).clamp(min=0.3)

    def brightness_at(self, t: torch.Tensor) -> torch.Tensor:
        blend = LEVELS[self.level][6]
        return 1 - (1 - blend) * t / self.T

    def layer(self, t: torch.Tensor, x0: torch.Tensor, ctx) -> torch.Tensor:
        """Snow layer S_t, shape (B, 1, H, W), in [0, S_MAX]."""
        B, C, H, W = x0.shape
        dt = work_dtype(x0.dtype)
        pat = self._pattern(x0, ctx)
        field = pat["field"].to(dt).expand(B, -1, -1, -1)
        angle = pat["angle"].to(dt).expand(B)
        tf = t.to(dt)
        thr = bview(self.threshold_at(tf), field)
        flakes = torch.where(field >= thr, field, torch.zeros_like(field)).clamp(0, 1)
        size = min(H, W)
        radius = max(1, min(round(LEVELS[self.level][4] * self.size_factor(size)), size - 1))
        ker = motion_kernels(radius, self.sigma_at(tf, size), angle)
        streaks = correlate_fft(flakes, ker)
        return (streaks + torch.flip(streaks, dims=(-2, -1))).clamp(0, S_MAX)

    def retention(self, t, x0, ctx) -> torch.Tensor:
        """a_t = (1 − S_t)·c_t: how much of x0 survives at each pixel."""
        c = bview(self.brightness_at(t.to(work_dtype(x0.dtype))), x0)
        a = (1 - self.layer(t, x0, ctx)) * c
        return torch.where(bview(t == 0, a), torch.ones_like(a), a)  # a_0 = 1: no snow at t = 0

    def forward(self, x0, t, ctx):
        dt = work_dtype(x0.dtype)
        a = self.retention(t, x0, ctx)
        return 1 - a * (1 - x0.to(dt))

    def step(self, x, s, ctx):
        dt = work_dtype(x.dtype)
        ratio = self.retention(s, x, ctx) / self.retention(s - 1, x, ctx)
        return 1 - ratio * (1 - x.to(dt))


# ---------------------------------------------------------------------------- the authors' snow
# The authors' snow levels (snowification/diffusion/forward_process_impl.py, Snow.generate_snow_layer):
# level: (loc, scale, zoom, threshold first, threshold last, motion-blur taps, motion-blur σ first,
#         σ last, brightness first, brightness last); "first"/"last" are steps 1 and T, linear between.
AUTHORS_LEVELS = {
    1: (0.10, 0.3, 3.0, 0.70, 0.30, 5, 0.50, 5.0, 0.95, 0.70),
    2: (0.55, 0.3, 2.5, 1.15, 0.70, 11, 0.05, 12.0, 0.95, 0.55),
    3: (0.55, 0.3, 2.5, 1.15, 0.70, 11, 0.05, 16.0, 0.95, 0.40),
    4: (0.55, 0.3, 2.5, 1.15, 0.55, 11, 0.05, 20.0, 0.95, 0.30),
}


def zoom_center(z: torch.Tensor, zoom: float) -> torch.Tensor:
    """The centre ``ceil(n / zoom)`` pixels of each side of ``z`` (B, 1, H, W), zoomed back up by ``zoom``
    with linear interpolation through the corner pixels (scipy's ``zoom(order=1)``) to
    ``round(crop·zoom)`` pixels and trimmed to the middle H×W: ImageNet-C's ``clipped_zoom``."""
    B, _, H, W = z.shape

    def crop_size(n):
        c = math.ceil(n / zoom)
        return c, (n - c) // 2, int(round(c * zoom))

    (ch, top, oh), (cw, left, ow) = crop_size(H), crop_size(W)
    crop = z[..., top:top + ch, left:left + cw]
    big = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    th, tw = (oh - H) // 2, (ow - W) // 2
    return big[..., th:th + H, tw:tw + W]


def gaussian_taps(n: int, sigma: torch.Tensor) -> torch.Tensor:
    """(B, n) normalised Gaussian weights centred on tap n // 2 (half a tap off for even n), one row per σ."""
    r = torch.arange(n, dtype=sigma.dtype, device=sigma.device) - n // 2 + (0.5 if n % 2 == 0 else 0.0)
    g = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
    return g / g.sum(1, keepdim=True)


@register("snow")
class AuthorsSnow(_SnowField):
    """Snowification as the authors ran it (``--random_snow --fix_brightness``).

    A trajectory draws one snow field ``N(loc, scale²)`` over the image, zooms its centre up by
    ``zoom`` and picks horizontal or vertical streaks (probability ½ each).  At step ``t`` the
    flakes are the field's values at or above a threshold ``θ_t`` (clipped to [0, 1]), smeared
    along the streak direction by an n-tap Gaussian of std ``σ_t``: ``S_t``.  With its 180°
    rotation the snow layer is ``L_t = S_t + rot180(S_t)`` and, in [0, 1] pixel units,

        x_t = clip(x0 + L_t, 0, 1)                      (fix_brightness, the paper's runs)
        x_t = clip(c_t·x0 + (1 − c_t)·g(x0) + L_t, 0, 1)  (otherwise; g = max(x0, 1.5·gray + 0.5))

    θ_t, σ_t and c_t run linearly from their step-1 to their step-T values (the authors'
    ``torch.linspace`` over their step index i = t − 1).  The closed form is the authors' only
    form (their ``forward`` always starts from the clean image), and it costs one motion blur
    whatever t.  It has no single-step operator: clipping at white forgets how far past white a
    pixel was, so x_t is not a function of x_{t−1}.

    Args:
        T: number of steps (the paper: 200).
        level: the authors' snow level 1..4 (the paper: 3 for CIFAR-10, 4 for CelebA).
        random: a new snow field per trajectory (``--random_snow``) or one fixed field for every image.
        fix_brightness: leave the scene's brightness alone (``--fix_brightness``), as in the paper's runs.
        seed: seed of the fixed field (``random=False``).

    Deliberate deviation: the authors draw one field (and one direction) per training batch and
    share it across the batch; here every image of a batch gets its own, drawn once per
    trajectory in the context.
    """

    def __init__(self, T: int = 200, level: int = 3, random: bool = True, fix_brightness: bool = True,
                 seed: int = 0, image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        if int(level) not in AUTHORS_LEVELS:
            raise ConfigError(f"snow level must be one of {sorted(AUTHORS_LEVELS)}, got {level}")
        self.level, self.random, self.fix_brightness, self.seed = int(level), bool(random), bool(fix_brightness), int(seed)
        self.deterministic = not self.random
        self._fixed: Dict[Tuple, dict] = {}

    # ---------------------------------------------------------------- the per-trajectory snow field
    def _draw(self, B: int, H: int, W: int, generator, device) -> dict:
        loc, scale, zoom = AUTHORS_LEVELS[self.level][:3]
        gdev = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(B, 1, H, W, generator=generator, device=gdev, dtype=torch.float64)
        vertical = torch.rand(B, generator=generator, device=gdev) > 0.5
        field = zoom_center(loc + scale * z, zoom)
        return {"field": field.to(device), "vertical": vertical.to(device)}


    # ---------------------------------------------------------------- schedules (step t = 1..T)
    def _linear(self, first: float, last: float, t: torch.Tensor) -> torch.Tensor:
        frac = (t - 1) / (self.T - 1) if self.T > 1 else torch.zeros_like(t)
        return first + (last - first) * frac

    def threshold_at(self, t: torch.Tensor) -> torch.Tensor:
        lv = AUTHORS_LEVELS[self.level]
        return self._linear(lv[3], lv[4], t)

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        lv = AUTHORS_LEVELS[self.level]
        return self._linear(lv[6], lv[7], t)

    def brightness_at(self, t: torch.Tensor) -> torch.Tensor:
        lv = AUTHORS_LEVELS[self.level]
        return self._linear(lv[8], lv[9], t)

    def layer(self, t: torch.Tensor, x0: torch.Tensor, ctx) -> torch.Tensor:
        """The snow layer L_t = S_t + rot180(S_t), shape (B, 1, H, W), in [0, 1] pixel units."""
        B, C, H, W = x0.shape
        dt = work_dtype(x0.dtype)
        pat = self._pattern(x0, ctx)
        field = pat["field"].to(dt).expand(B, -1, -1, -1)
        vertical = pat["vertical"].expand(B)
        tf = t.to(dt)
        flakes = torch.where(field >= bview(self.threshold_at(tf), field), field, torch.zeros_like(field)).clamp(0, 1)
        n = AUTHORS_LEVELS[self.level][5]
        taps = gaussian_taps(n, self.sigma_at(tf))              # (B, n), one blur per sample's t
        lo, hi = (n - 1) // 2, n // 2                           # zero padding 'same', as conv2d(padding='same')
        rows = flakes.reshape(1, B, H, W)
        horiz = F.conv2d(F.pad(rows, (lo, hi, 0, 0)), taps.view(B, 1, 1, n), groups=B)
        vert = F.conv2d(F.pad(rows, (0, 0, lo, hi)), taps.view(B, 1, n, 1), groups=B)
        S = torch.where(bview(vertical, field), vert.view(B, 1, H, W), horiz.view(B, 1, H, W))
        return S + torch.flip(S, dims=(-2, -1))

    def forward(self, x0, t, ctx):
        dt = work_dtype(x0.dtype)
        x = (x0.to(dt) + 1) / 2                                 # [0, 1], the authors' pixel units
        if not self.fix_brightness:
            c = bview(self.brightness_at(t.to(dt)), x)
            bright = torch.maximum(x, gray(x) * 1.5 + 0.5) if x.shape[1] == 3 else torch.maximum(x, x * 1.5 + 0.5)
            x = c * x + (1 - c) * bright
        return (x + self.layer(t, x0, ctx)).clamp(0, 1) * 2 - 1

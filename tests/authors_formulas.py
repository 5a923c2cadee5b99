"""Independent re-statements of the authors' degradations, step by step as their code runs them.

Written from the arithmetic of arpitbansal297/Cold-Diffusion-Models (read for facts, not copied),
with nothing from colddiff: plain torch/numpy loops that apply one step at a time, the kernels
built as their torchgeometry calls build them.  tests/test_paper_presets.py pins numbers these
functions produced once (the golden numbers) and checks colddiff's closed forms against them.

Their step index is i = 0..T-1; colddiff's t = i + 1.  Images are (C, H, W) float64 in [-1, 1].
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def x_fixed(C: int, n: int) -> torch.Tensor:
    """A fixed test image, (C, n, n) float64 in [-0.9, 0.9]: smooth stripes plus a bright square."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    chans = [0.8 * torch.sin(0.37 * i + 0.23 * (c + 1) * j + c) for c in range(C)]
    x = torch.stack(chans)
    q = n // 4
    x[:, q:2 * q, q:2 * q] = 0.9
    return x.clamp(-0.9, 0.9)


def gauss_1d(size: int, sigma: float) -> np.ndarray:
    """torchgeometry's get_gaussian_kernel: taps at x - size//2 (+0.5 for even sizes), normalised."""
    x = np.arange(size, dtype=np.float64) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    g = np.exp(-x ** 2 / (2.0 * sigma ** 2))
    return g / g.sum()


def gauss_2d(size: int, sigma: float) -> np.ndarray:
    g = gauss_1d(size, sigma)
    return np.outer(g, g)


# ---------------------------------------------------------------- blur (deblurring-diffusion-pytorch)
def blur_sigma(routine: str, i: int, blur_std: float) -> float:
    if routine == "Constant":
        return blur_std
    if routine in ("Exponential", "Exponential_reflect"):
        return float(np.exp(blur_std * i))
    if routine == "Special_6_routine":
        return i / 100 + 0.35
    raise ValueError(routine)


def blur(x0: torch.Tensor, t: int, routine: str, size: int, blur_std: float, mode: str,
         discrete_T: int = 0) -> torch.Tensor:
    """t steps of pad(mode) + depthwise conv2d with the step's k x k Gaussian, as nn.Conv2d(padding_mode=mode).

    ``discrete_T``: their --discrete with T steps, whose last step (i = T - 1) replaces the image by its
    channel means.  (It then also truncates the result to 8 bits; the pins are taken before that.)"""
    x = x0[None].clone()
    C = x.shape[1]
    r = (size - 1) // 2
    for i in range(t):
        k = torch.from_numpy(gauss_2d(size, blur_sigma(routine, i, blur_std)))[None, None].repeat(C, 1, 1, 1)
        x = F.conv2d(F.pad(x, (r, r, r, r), mode=mode), k, groups=C)
        if discrete_T and i == discrete_T - 1:
            x = x.mean((2, 3), keepdim=True).expand_as(x)
    return x[0]


def truncate8(x: torch.Tensor) -> torch.Tensor:
    """Their --discrete 8-bit step: (x + 1)/2 * 255, int() (truncation), back to [-1, 1]."""
    return (((x + 1) * 0.5 * 255).int().double() / 255) * 2 - 1


# ---------------------------------------------------------------- Gaussian masks (defading-*)
def fade_kernel(window: int, std: float) -> np.ndarray:
    """1 - (2-D Gaussian / its max) on a window x window grid, first row and column dropped."""
    g = gauss_2d(window, std)
    return (1.0 - g / g.max())[1:, 1:]


def mask_forward(x0: torch.Tensor, t: int, kernel_std: float, initial_mask: float, centre=None) -> torch.Tensor:
    """Incremental (centred, ``centre=None``) or Random_Incremental (``centre=(rand_x, rand_y)``, the
    window offsets of their q_sample) masks, multiplied step after step."""
    C, n, _ = x0.shape
    x = x0.clone()
    for i in range(t):
        std = kernel_std * (i + initial_mask)
        if centre is None:
            k = fade_kernel(n + 1, std)
        else:
            rx, ry = centre
            k = fade_kernel(2 * n + 1, std)[rx:rx + n, ry:ry + n]
        x = torch.from_numpy(k)[None] * x
    return x


def mask_reverse(x0: torch.Tensor, colour: torch.Tensor, t: int, T: int, kernel_std: float,
                 initial_mask: float) -> torch.Tensor:
    """defading-generation's --reverse schedule: alphas[i] = 1 - (list of running products, reversed)[i],
    x = alphas[i] x0 + (1 - alphas[i]) colour, at i = t - 1."""
    C, n, _ = x0.shape
    running = np.ones((n, n))
    kept = []
    for i in range(T):
        kept.append(running.copy())
        running = running * fade_kernel(n + 1, kernel_std * (i + initial_mask))
    kept.reverse()
    alpha = torch.from_numpy(1.0 - kept[t - 1])[None]
    return alpha * x0 + (1 - alpha) * colour.view(C, 1, 1)


# ---------------------------------------------------------------- snow (snowification)
SNOW = {3: dict(c=(0.55, 0.3, 2.5, 0.7, 11, 16, 0.4), thr=(1.15, 0.7), mb=(0.05, 16)),
        4: dict(c=(0.55, 0.3, 2.5, 0.55, 11, 20, 0.3), thr=(1.15, 0.55), mb=(0.05, 20))}


def snow_base(z: np.ndarray, level: int) -> np.ndarray:
    """loc + scale * z, then ImageNet-C's clipped_zoom with scipy's zoom(order=1)."""
    from scipy.ndimage import zoom as scizoom

    loc, scale, zf = SNOW[level]["c"][:3]
    img = (loc + scale * z)[..., None]
    h = img.shape[0]
    ch = int(np.ceil(h / zf))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zf, zf, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h, 0]


def snow(x0: torch.Tensor, base: np.ndarray, t: int, T: int, level: int, vertical: bool) -> torch.Tensor:
    """--fix_brightness snow at i = t - 1: clip(x0 + S + rot180(S), 0, 1) in [0, 1] units."""
    lv = SNOW[level]
    i = t - 1
    thr = float(torch.linspace(lv["thr"][0], lv["thr"][1], T, dtype=torch.float64)[i])
    sig = float(torch.linspace(lv["mb"][0], lv["mb"][1], T, dtype=torch.float64)[i])
    taps = lv["c"][4]
    layer = torch.from_numpy(base.copy())
    layer[layer < thr] = 0
    layer = layer.clamp(0, 1)[None, None]
    kern = torch.zeros(taps, taps, dtype=torch.float64)
    kern[taps // 2] = torch.from_numpy(gauss_1d(taps, sig))
    if vertical:
        kern = torch.rot90(kern, 1, (0, 1))
    s = F.conv2d(layer, kern[None, None], padding="same")[0, 0]
    L = s + torch.rot90(s, 2, (0, 1))
    return ((x0 + 1) / 2 + L).clamp(0, 1) * 2 - 1


# ---------------------------------------------------------------- decolorisation (decolor-diffusion)
def decolor_linear(x0: torch.Tensor, t: int, T: int) -> torch.Tensor:
    """Linear routine with total removal: each step mixes with the channel mean by an ema factor."""
    x = x0.clone()
    start, diff = 1.0, 1.0 / T
    for i in range(t):
        if i == T - 1:
            f = 0.0
        else:
            f = 1 - diff / start
            start = start * f
        x = f * x + (1 - f) * x.mean(0, keepdim=True).expand_as(x)
    return x


# ---------------------------------------------------------------- super-resolution (resolution-diffusion)
def downsample_factor2(x0: torch.Tensor, t: int) -> torch.Tensor:
    """Incremental_factor_2: resize to n // 2**(i+1) by bicubic (no antialias), back up by nearest-exact."""
    x = x0[None].clone()
    n = x.shape[-1]
    for i in range(t):
        small = F.interpolate(x, size=n // 2 ** (i + 1), mode="bicubic", antialias=False)
        x = F.interpolate(small, size=n, mode="nearest-exact")
    return x[0]


# ---------------------------------------------------------------- noise / mixing (denoising-, demixing-)
def cosine_alphas_cumprod(T: int, s: float = 0.008) -> np.ndarray:
    steps = T + 1
    x = np.linspace(0, steps, steps)
    ac = np.cos(((x / steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = np.clip(1 - ac[1:] / ac[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


def mix(x0: torch.Tensor, z: torch.Tensor, t: int, T: int) -> torch.Tensor:
    """q_sample: sqrt(abar_i) x0 + sqrt(1 - abar_i) z at i = t - 1."""
    ab = float(cosine_alphas_cumprod(T)[t - 1])
    return math.sqrt(ab) * x0 + math.sqrt(1 - ab) * z

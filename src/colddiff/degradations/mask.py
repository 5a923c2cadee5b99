"""Gaussian-mask inpainting: D(x0, t) = x0 ⊙ Π_{i≤t} z_{β_i} (Cold Diffusion, Sec. 4.2).

``z_β = 1 − g_β`` where ``g_β`` is a 2-D Gaussian bump of width β with peak 1, and
``β_i = beta_start + (i − 1)·beta_step``.  The cumulative products are tabulated once per
image size, so the closed form is one table look-up at every t.  With a random centre the
table is indexed by the offset from that centre.

Masked pixels move towards ``fill``: 0 (the paper's formula; mid-grey in [-1, 1]) or, for
the generation variant (``fill="random"``), a random solid colour per trajectory whose last
step replaces the whole image, so that generation can start from the colour alone.
With ``quantize=True`` (default) the degraded image is rounded to 8-bit levels where the authors'
``--discrete`` rounds it, i.e. in :meth:`~colddiff.degradations.base.Degradation.observe` (training
inputs and the restoration start x_T), so the network cannot read the masked content back out of
floating-point residue; ``D(x0, t)`` itself, called by the samplers, stays exact.

``order="reverse"`` is the authors' generation schedule (defading-generation-diffusion-pytorch,
``get_reverse_kernels_with_schedule`` with ``--reverse``): with K_j = Π_{i≤j} z_{β_i} the
visible share is m_t = 1 − K_{T−t}, so at t = 1 only the farthest pixels are dimmed a little,
the visible region then shrinks towards the centre by a small share per step, and at t = T
nothing is left (K_0 = 1).  Read backwards (generation) the image grows out of the centre over
all T steps instead of appearing in one step.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from ..errors import ConfigError
from .base import Degradation, register, start_from_context, work_dtype
from .ops import quantize8

POSITIONS = ("random", "center")
FILLS = ("zero", "random")
ORDERS = ("forward", "reverse")


@register("mask")
class GaussianMask(Degradation):
    """Gaussian-mask inpainting.

    Args:
        T: number of steps (the paper: 50 for MNIST/CIFAR-10, 100 for CelebA).
        beta_start, beta_step: width schedule β_1 = beta_start, β_{i+1} = β_i + beta_step.
        position: ``random`` (a random centre per trajectory) or ``center``.
        fill: ``zero`` (masked pixels -> 0) or ``random`` (generation variant: a random solid colour).
        quantize: round observed degraded images (training inputs, x_T) to 8-bit levels.
        order: ``forward`` (D keeps Π_{i≤t} z_{β_i}) or ``reverse`` (the authors' generation
            schedule, D keeps 1 − Π_{i≤T−t} z_{β_i}; see the module docstring).
        color_scale: the random solid colour of ``fill="random"`` is uniform in
            [−color_scale, color_scale] per channel (the authors' generation: 0.5).
        offset: the centred mask sits ``offset`` pixels up and left of the image's middle; the
            authors' centred kernels (an (n+1)-tap window cropped by its first row and column)
            put it at pixel n/2 − 1 of an even n, i.e. offset 0.5.
    """

    def __init__(self, T: int = 50, beta_start: float = 1.0, beta_step: float = 0.1,
                 position: str = "random", fill: str = "zero", quantize: bool = True,
                 order: str = "forward", color_scale: float = 1.0, offset: float = 0.0,
                 image_size=None, channels=None):
        super().__init__(T, image_size=image_size, channels=channels)
        if position not in POSITIONS:
            raise ConfigError(f"unknown mask position {position!r}; choose one of {', '.join(POSITIONS)}")
        if fill not in FILLS:
            raise ConfigError(f"unknown mask fill {fill!r}; choose one of {', '.join(FILLS)}")
        if float(beta_start) <= 0 or float(beta_step) < 0:
            raise ConfigError("mask needs beta_start > 0 and beta_step >= 0")
        if order not in ORDERS:
            raise ConfigError(f"unknown mask order {order!r}; choose one of {', '.join(ORDERS)}")
        if not 0 < float(color_scale) <= 1:
            raise ConfigError(f"mask color_scale must be in (0, 1], got {color_scale}")
        self.order, self.color_scale, self.offset = order, float(color_scale), float(offset)
        self.beta_start, self.beta_step = float(beta_start), float(beta_step)
        self.position, self.fill, self.quantize = position, fill, bool(quantize)
        self.deterministic = position == "center" and fill == "zero"
        # a mask at a random centre is a local hole that may sit anywhere; a centred one is tied to the frame
        self.shift_invariant = position == "random" and fill == "zero"
        self._not_shift_invariant = ("its mask is centred on the image (position=center), so it depends on where "
                                     "the frame's middle is" if position == "center" else
                                     "its last step replaces the whole image by one colour (fill=random)")
        self._cache: Dict[Tuple, torch.Tensor] = {}

    def beta(self, s: int) -> float:
        return self.beta_start + (s - 1) * self.beta_step

    def _z(self, d2: torch.Tensor, s: int) -> torch.Tensor:
        """One step's mask 1 − g_β on squared distances ``d2`` (the last step is 0 for fill=random)."""
        if self.fill == "random" and s == self.T and self.order == "forward":
            return torch.zeros_like(d2)
        # exp() below -700 would return subnormals (slow on CPUs) where 1 - g == 1 exactly anyway
        return 1.0 - torch.exp((-d2 / (2.0 * self.beta(s) ** 2)).clamp(min=-700.0))

    def _cumulative(self, d2: torch.Tensor) -> torch.Tensor:
        """(T+1, *d2.shape) visible shares m_t: Π_{i≤t} z_{β_i} (forward) or 1 − Π_{i≤T−t} z_{β_i}
        (reverse), computed in float64."""
        out = [torch.ones_like(d2)]
        for s in range(1, self.T + 1):
            out.append(out[-1] * self._z(d2, s))
        if self.order == "reverse":  # m_0 = 1; m_t = 1 − K_{T−t}, so m_T = 1 − K_0 = 0
            out = [out[0]] + [1.0 - out[self.T - t] for t in range(1, self.T + 1)]
        return torch.stack(out)

    def _table(self, H: int, W: int, device, dtype) -> torch.Tensor:
        key = (self.position, H, W, str(device), dtype)  # (a table serves one order and offset: they are fixed)
        tab = self._cache.get(key)
        if tab is None:
            if self.position == "center":
                y = torch.arange(H, dtype=torch.float64) - ((H - 1) / 2 - self.offset)
                x = torch.arange(W, dtype=torch.float64) - ((W - 1) / 2 - self.offset)
            else:  # offsets from an integer centre anywhere in the image
                y = torch.arange(-(H - 1), H, dtype=torch.float64)
                x = torch.arange(-(W - 1), W, dtype=torch.float64)
            d2 = y[:, None] ** 2 + x[None, :] ** 2
            tab = self._cumulative(d2).to(device=device, dtype=dtype)
            self._cache[key] = tab
        return tab

    def context(self, x0, generator=None):
        if self.deterministic:
            return None
        B, C, H, W = x0.shape
        dev = generator.device if generator is not None else torch.device("cpu")
        ctx = {}
        if self.position == "random":
            cy = torch.randint(0, H, (B,), generator=generator, device=dev)
            cx = torch.randint(0, W, (B,), generator=generator, device=dev)
            ctx["center"] = torch.stack([cy, cx], 1).to(x0.device)
        if self.fill == "random":
            u = torch.rand(B, C, 1, 1, generator=generator, device=dev) * 2 - 1
            ctx["color"] = (u * self.color_scale).to(x0.device, x0.dtype)
        return ctx

    def mask(self, t: torch.Tensor, ctx, H: int, W: int, device, dtype) -> torch.Tensor:
        """Cumulative mask for each sample, shape (B, 1, H, W)."""
        tab = self._table(H, W, device, dtype)
        if self.position == "center":
            return tab[t].unsqueeze(1)
        c = ctx["center"].to(device)
        iy = (torch.arange(H, device=device)[None, :] - c[:, :1]) + (H - 1)  # (B, H)
        ix = (torch.arange(W, device=device)[None, :] - c[:, 1:]) + (W - 1)  # (B, W)
        return tab[t[:, None, None], iy[:, :, None], ix[:, None, :]].unsqueeze(1)

    def _fill(self, x0, ctx):
        if self.fill == "random":
            return ctx["color"].to(device=x0.device, dtype=work_dtype(x0.dtype))
        return 0.0

    def forward(self, x0, t, ctx):
        B, C, H, W = x0.shape
        dt = work_dtype(x0.dtype)
        m = self.mask(t, ctx, H, W, x0.device, dt)
        return x0.to(dt) * m + self._fill(x0, ctx) * (1 - m)

    def step(self, x, s, ctx):
        B, C, H, W = x.shape
        dt = work_dtype(x.dtype)
        if self.order == "reverse":
            # m_s / m_{s-1} of the table (m is non-increasing in t; where m_{s-1} = 0 the pixel is the fill already)
            prev = self.mask(s - 1, ctx, H, W, x.device, torch.float64)
            ratio = torch.where(prev > 0, self.mask(s, ctx, H, W, x.device, torch.float64) / prev.clamp(min=1e-300),
                                torch.zeros_like(prev)).to(dt)
            return x.to(dt) * ratio + self._fill(x, ctx) * (1 - ratio)
        if self.position == "center":
            cy = torch.full((B,), (H - 1) / 2 - self.offset, dtype=torch.float64)
            cx = torch.full((B,), (W - 1) / 2 - self.offset, dtype=torch.float64)
        else:
            cy, cx = ctx["center"][:, 0].double().cpu(), ctx["center"][:, 1].double().cpu()
        yy = torch.arange(H, dtype=torch.float64)
        xx = torch.arange(W, dtype=torch.float64)
        d2 = (yy[None, :, None] - cy[:, None, None]) ** 2 + (xx[None, None, :] - cx[:, None, None]) ** 2
        z = torch.stack([self._z(d2[b], int(s[b])) for b in range(B)]).unsqueeze(1)
        z = z.to(device=x.device, dtype=dt)
        return x.to(dt) * z + self._fill(x, ctx) * (1 - z)

    def finalize(self, x_t, t):
        return quantize8(x_t) if self.quantize else x_t

    # ---- generation: the generation variant ends in a random solid colour (the context's colour)
    def start(self, n, shape, generator=None, device=None, draw=None):
        if self.fill != "random":
            raise ConfigError("mask generation needs the generation variant fill=random (e.g. preset celeba-mask-gen): "
                              "with fill=zero the image at t=T still shows the clean image outside the masks")
        return start_from_context(self, n, shape, generator, device)

"""The training objective of Cold Diffusion (Eq. 1 of the paper, Sec. 3.1):

    min_R  E_{x0 ~ data, t ~ U{1..T}}  || R(D(x0, t), t) - x0 ||_1

Two halves, because only the second is differentiated (and compiled, :func:`colddiff.speed.compiled`):

* :func:`degrade_batch` draws what is inside the expectation for a batch of x0: t ~ U{1..T} per image,
  a fresh per-trajectory context, x_t = D(x0, t) as the authors feed it to R (``D.observe``: their
  8-bit rounding of inpainting inputs), plus the optional input noise of ``degradation.input_noise``.
* :func:`l1_loss` is the integrand's estimate on that batch: the mean absolute error between
  x0_hat = R(x_t, t) and x0.

The optimizer step (:func:`colddiff.training.train_step`) averages it over ``train.grad_accum``
micro-batches (and over the processes under DDP), as the authors accumulate gradients over 2 steps.
"""
from __future__ import annotations

from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

from .speed import to_format

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def degrade_batch(D, x0: torch.Tensor, gen: torch.Generator, input_noise: float = 0.0):
    """(x_t, t): t ~ U{1..T} per image, a fresh per-trajectory context, and x_t = D.observe(x0, t, ctx) (D, then
    the family's 8-bit rounding where the authors quantise training inputs).

    ``input_noise`` σ > 0 adds N(0, σ²) to x_t, the forward process of Inverse Heat Dissipation
    (Rissanen et al., ICLR 2023, Sec. 3: blur plus a little noise); σ = 0 draws nothing, so the
    paper's training stream is unchanged.
    """
    t = torch.randint(1, D.T + 1, (x0.shape[0],), generator=gen, device=x0.device)
    ctx = D.context(x0, gen)
    with torch.no_grad():
        # t lies in 1..T by construction: D need not read it back from the GPU to check its range
        x_t = D.observe(x0, t, ctx, t_in_range=True)
        if input_noise > 0:
            x_t = x_t + input_noise * torch.randn(x_t.shape, generator=gen, device=x_t.device, dtype=x_t.dtype)
    return x_t, t


def l1_loss(net: torch.nn.Module, autocast: ContextManager, channels_last: bool = False) -> Loss:
    """``loss(x_t, t, x0) = |R(x_t, t) - x0|_1`` (Eq. 1, mean over the batch's pixels), R = ``net`` under ``autocast``.

    The network runs in the run's precision; the loss is taken in float32.  ``net`` may be the DDP
    wrapper of the model; ``channels_last`` hands it x_t in that memory format (a speed switch:
    the same numbers).
    """
    def loss(x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        with autocast:
            x0_hat = net(to_format(x_t, channels_last), t)
        return F.l1_loss(x0_hat.float(), x0)

    return loss


__all__ = ["degrade_batch", "l1_loss"]

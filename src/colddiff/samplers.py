"""Samplers: direct reconstruction, Algorithm 1 and Algorithm 2 of Cold Diffusion, and DDIM.

All share one signature.  ``R(x, t) -> x0_hat`` is any callable (a network or a plain
function) taking a batch and a (B,) int64 tensor of steps.  ``t`` is an int or a (B,)
tensor: each sample starts at its own step, and a sample whose ``t_b`` is below the
current step ``s`` is passed through unchanged until its turn comes.  ``callback(s, x_s,
x0_hat)`` is called once per step, before the update, so trajectories can be recorded.

Samplers run without autograd (a T-step loop would otherwise keep every graph alive).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import torch

from .degradations.base import Degradation, bview
from .errors import ConfigError

Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]
TLike = Union[int, torch.Tensor]

__all__ = ["direct", "algorithm1", "algorithm2", "ddim", "SAMPLERS"]


def _t_vector(t: TLike, x: torch.Tensor, D: Optional[Degradation] = None) -> torch.Tensor:
    if D is not None:
        return D.as_t(t, x)
    if isinstance(t, torch.Tensor):
        tt = t.to(device=x.device, dtype=torch.long)
        return tt.expand(x.shape[0]).contiguous() if tt.dim() == 0 else tt
    return torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)


def _check_ctx(D: Degradation, ctx: Any) -> None:
    # A random degradation (mask centre, noise, partner image, random snow) must be called with
    # the context that produced x_t at every step; drawing a new one per call would change the
    # degradation in the middle of the trajectory.
    if ctx is None and not D.deterministic:
        raise ConfigError(
            f"{D.name} is random per trajectory: pass ctx=D.context(x0, generator), the context "
            "that produced x_t, to the sampler"
        )


def _restore_active(R: Restorer, x: torch.Tensor, s: int, active: Optional[torch.Tensor],
                    all_active: bool) -> torch.Tensor:
    """x0_hat = R(x_s, s) for the active samples; inactive samples keep x (R is not called on them)."""
    if all_active:
        return R(x, torch.full((x.shape[0],), s, dtype=torch.long, device=x.device)).to(x.dtype)
    x0_hat = x.clone()
    idx = active.nonzero().flatten()
    x0_hat[idx] = R(x[idx], torch.full((idx.numel(),), s, dtype=torch.long, device=x.device)).to(x.dtype)
    return x0_hat


@torch.no_grad()
def direct(R: Restorer, x_t: torch.Tensor, t: TLike) -> torch.Tensor:
    """Direct reconstruction: x0_hat = R(x_t, t) in one call."""
    return R(x_t, _t_vector(t, x_t)).to(x_t.dtype)


def _iterate(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any,
             callback: Optional[Callback], update: Callable, need_ctx: bool = True) -> torch.Tensor:
    """The loop both algorithms share: for s = t..1, x0_hat = R(x_s, s), x_{s-1} = update(...)."""
    if need_ctx:
        _check_ctx(D, ctx)
    tt = _t_vector(t, x_t, D)
    # Which samples are still running is decided on the CPU copy of t, so the loop never waits
    # for the GPU (no per-step device sync); the usual case, one t for the whole batch, needs no
    # masking at all.
    tt_cpu = tt.cpu()
    x = x_t
    for s in range(int(tt_cpu.max()) if tt_cpu.numel() else 0, 0, -1):
        active_cpu = tt_cpu >= s
        all_active = bool(active_cpu.all())
        active = None if all_active else active_cpu.to(x.device)
        x0_hat = _restore_active(R, x, s, active, all_active)
        if callback is not None:
            callback(s, x, x0_hat)
        x_new = update(x, x0_hat, s)
        x = x_new if all_active else torch.where(bview(active, x), x_new, x)
    return x


@torch.no_grad()
def algorithm1(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
               callback: Optional[Callback] = None) -> torch.Tensor:
    """Algorithm 1 (naive): for s = t..1: x0_hat = R(x_s, s); x_{s-1} = D(x0_hat, s-1)."""
    return _iterate(R, D, x_t, t, ctx, callback,
                    lambda x_s, x0_hat, s: D(x0_hat, s - 1, ctx))


@torch.no_grad()
def algorithm2(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
               callback: Optional[Callback] = None) -> torch.Tensor:
    """Algorithm 2 (improved): for s = t..1: x0_hat = R(x_s, s);
    x_{s-1} = x_s − D(x0_hat, s) + D(x0_hat, s−1).

    For D(x, s) = x + s·e this returns D(x0, 0) = x0 exactly whatever R is (Sec. 3.3).
    """
    return _iterate(R, D, x_t, t, ctx, callback,
                    lambda x_s, x0_hat, s: x_s - D(x0_hat, s, ctx) + D(x0_hat, s - 1, ctx))


@torch.no_grad()
def ddim(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
         callback: Optional[Callback] = None) -> torch.Tensor:
    """DDIM with η = 0 (Song et al. 2021), the hot baseline's "DDIM-style" sampler.

    For s = t..1: x0_hat = R(x_s, s); the noise is re-estimated from x0_hat,
    ε_hat = (x_s − √ᾱ_s·x0_hat) / √(1 − ᾱ_s), and x_{s−1} = √ᾱ_{s−1}·x0_hat + √(1 − ᾱ_{s−1})·ε_hat.
    Unlike Algorithm 2 with a fixed ε, the noise is read back from the current x_s instead of
    being held at the start noise, so x_{s−1} always lies on the path through x_s and x0_hat.
    With the oracle R = x0 and x_t = D(x0, t, ε) it retraces D(x0, s−1, ε) exactly.  Only
    defined for the Gaussian-noise degradation (it uses D's ᾱ schedule); ``ctx`` is accepted
    for the shared signature and unused.
    """
    from .degradations.noise import GaussianNoise

    if not isinstance(D, GaussianNoise):
        raise ConfigError(f"ddim re-estimates Gaussian noise and works only with the noise degradation, "
                          f"not {getattr(D, 'name', type(D).__name__)}; use algorithm2 for cold degradations")
    ab = [float(a) for a in D.alpha_bar]  # ᾱ_0 = 1, ..., ᾱ_T in float64

    def update(x_s, x0_hat, s):
        eps_hat = (x_s - math.sqrt(ab[s]) * x0_hat) / math.sqrt(1.0 - ab[s])
        return math.sqrt(ab[s - 1]) * x0_hat + math.sqrt(1.0 - ab[s - 1]) * eps_hat

    return _iterate(R, D, x_t, t, None, callback, update, need_ctx=False)


SAMPLERS = {"direct": direct, "algorithm1": algorithm1, "algorithm2": algorithm2, "ddim": ddim}

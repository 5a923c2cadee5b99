"""The property suite every degradation must pass, built in or a user's plug-in.

``check(D)`` runs each property on small random images and returns one :class:`Result` per
property; ``colddiff check-degradation NAME`` prints them and the test suite runs them for
every registered family.  The properties (DESIGN.md, "Tests of three kinds"):

* identity — D(x0, 0) == x0 exactly, in float32 and float64;
* shape, dtype, device — D(x0, t) has x0's shape, dtype and device;
* range — finite values, inside ``D.output_range`` for x0 in [-1, 1] (when it declares one);
* closed form == steps — ``forward`` equals ``step`` applied t times (where ``step`` exists);
* flat cost — D(x0, T) dispatches about as many tensor operations as D(x0, 1) (+ a small slack):
  the closed form does not loop over steps;
* reproducible context — the same generator seed gives the same context and the same x_t;
* batch axis — a batch's x_t equals the x_t of its parts with the sliced context
  (:func:`colddiff.degradations.context_slice`), and a per-sample t equals scalar t's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Type

import torch

from .base import Degradation, apply_stepwise, context_slice, create

__all__ = ["Result", "check", "example", "PROPERTIES"]


def example(cls: Type[Degradation], image_size: int = 16, channels: int = 1) -> Degradation:
    """A small instance of a registered family to run the properties on (``colddiff check-degradation NAME``):
    ``create(name, T=8)`` at this size, or what the family's own classmethod ``_example(cls, image_size,
    channels)`` returns when its defaults need data (animorph's partner images) or another T."""
    hook = getattr(cls, "_example", None)
    if hook is not None:
        return hook(image_size=image_size, channels=channels)
    return create(cls.name, T=8, image_size=image_size, channels=channels)


@dataclass
class Result:
    name: str
    ok: Optional[bool]          # None: not applicable (skipped)
    detail: str = ""

    def line(self) -> str:
        mark = {True: "pass", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark:<5} {self.name:<24} {self.detail}"


def _images(D: Degradation, B: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    C, H = int(D.channels or 1), int(D.image_size or 16)
    return (torch.rand(B, C, H, H, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)


def _ctx(D, x0, seed=1):
    return D.context(x0, torch.Generator().manual_seed(seed))


def _steps(D) -> List[int]:
    return sorted({1, max(1, D.T // 2), D.T})


def identity(D):
    for dt in (torch.float32, torch.float64):
        x0 = _images(D, 3, dt)
        if not torch.equal(D(x0, 0, _ctx(D, x0)), x0):
            return False, f"D(x0, 0) != x0 in {dt}"
    return True, "D(x0, 0) == x0 (float32, float64)"


def shape_dtype_device(D):
    for dt in (torch.float32, torch.float64):
        x0 = _images(D, 2, dt)
        y = D(x0, D.T, _ctx(D, x0))
        if y.shape != x0.shape or y.dtype != x0.dtype or y.device != x0.device:
            return False, f"{dt}: got {tuple(y.shape)} {y.dtype} on {y.device} for {tuple(x0.shape)} {x0.dtype}"
    return True, "follows x0 (float32, float64, cpu)"


def value_range(D):
    x0 = _images(D, 3)
    ctx = _ctx(D, x0)
    lo, hi = D.output_range if D.output_range is not None else (-float("inf"), float("inf"))
    for t in _steps(D):
        y = D(x0, t, ctx)
        if not torch.isfinite(y).all():
            return False, f"non-finite values at t={t}"
        if y.min() < lo - 1e-6 or y.max() > hi + 1e-6:
            return False, f"values {float(y.min()):.4f}..{float(y.max()):.4f} at t={t} leave {lo:g}..{hi:g}"
    return True, "finite" + (f", inside {lo:g}..{hi:g}" if D.output_range is not None else " (unbounded family)")


def closed_form_equals_steps(D, atol: float = 1e-5):
    if type(D).step is Degradation.step:
        return None, "no single-step operator (step) defined"
    x0 = _images(D, 3)
    ctx = _ctx(D, x0)
    worst = 0.0
    for t in _steps(D):
        worst = max(worst, float((D(x0, t, ctx) - apply_stepwise(D, x0, t, ctx)).abs().max()))
    return worst <= atol, f"max |forward - steps| = {worst:.2e} (tolerance {atol:g}) at t = {_steps(D)}"


def flat_cost(D, slack: float = 0.25, extra: int = 4):
    try:
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:  # pragma: no cover - very old torch
        return None, "operation counting is not available in this torch"

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    x0 = _images(D, 2, torch.float32)
    ctx = _ctx(D, x0)
    counts = {}
    for t in (1, D.T):
        D(x0, t, ctx)  # warm the caches of composite operators first
        Count.n = 0
        with Count():
            D(x0, t, ctx)
        counts[t] = Count.n
    ok = counts[D.T] <= counts[1] + max(extra, slack * counts[1])  # no operation per step
    return ok, f"{counts[1]} tensor operations at t=1, {counts[D.T]} at t=T={D.T}"


def reproducible_context(D):
    x0 = _images(D, 3)
    a, b = D(x0, D.T, _ctx(D, x0, 7)), D(x0, D.T, _ctx(D, x0, 7))
    if not torch.equal(a, b):
        return False, "the same seed gave a different x_T"
    if D.deterministic:
        return True, "deterministic (no context)"
    other = D(x0, D.T, _ctx(D, x0, 8))
    return True, "same seed, same x_T" + ("; another seed, another x_T" if not torch.equal(a, other)
                                          else " (another seed gave the same x_T)")


def batch_axis(D):
    n = 5
    x0 = _images(D, n)
    ctx = _ctx(D, x0)
    t = torch.tensor([min(D.T, s) for s in (0, 1, D.T // 2, D.T, max(1, D.T - 1))])
    full = D(x0, t, ctx)
    parts = torch.cat([D(x0[lo:hi], t[lo:hi], context_slice(ctx, lo, hi, n)) for lo, hi in ((0, 2), (2, 5))])
    if not torch.allclose(full, parts, atol=1e-6):
        return False, f"a batch differs from its parts by {float((full - parts).abs().max()):.2e}"
    per_t = torch.cat([D(x0[i:i + 1], int(t[i]), context_slice(ctx, i, i + 1, n)) for i in range(n)])
    if not torch.allclose(full, per_t, atol=1e-6):
        return False, f"per-sample t differs from scalar t by {float((full - per_t).abs().max()):.2e}"
    return True, "batches and per-sample t agree with their parts"


PROPERTIES: List[tuple] = [("identity at t=0", identity), ("shape, dtype, device", shape_dtype_device),
                           ("range", value_range), ("closed form == steps", closed_form_equals_steps),
                           ("cost flat in t", flat_cost), ("reproducible context", reproducible_context),
                           ("batch axis", batch_axis)]


def check(D: Degradation) -> List[Result]:
    """Run every property on ``D``; an exception inside a property is that property's failure."""
    out = []
    for name, fn in PROPERTIES:
        try:
            ok, detail = fn(D)
        except Exception as e:  # noqa: BLE001 - a user's degradation may fail in any way; report it
            ok, detail = False, f"raised {type(e).__name__}: {e}"
        out.append(Result(name, ok, detail))
    return out

"""Samplers: direct reconstruction, Algorithm 1 and Algorithm 2 of Cold Diffusion, and DDIM.

All share one signature, ``sampler(R, D, x_t, t, ctx=None, callback=None, generator=None, schedule=None)``.
``R(x, t) -> x0_hat`` is any callable (a network or a plain function) taking a batch and a
(B,) int64 tensor of steps.  ``t`` is an int or a (B,) tensor: each sample starts at its own
step, and a sample whose ``t_b`` is below the current step ``s`` is passed through unchanged
until its turn comes.  ``ctx`` is the per-trajectory context that produced x_t;
``callback(s, x_s, x0_hat)`` is called once per step, before the update, so trajectories can
be recorded; ``generator`` feeds samplers that draw random numbers (``stochastic``, with δ > 0);
``schedule`` is the decreasing list of steps to visit, t = t_0 > t_1 > ... > t_K = 0 (a :class:`Schedule`,
or anything :func:`parse_schedule` reads: a count of network calls, ``"N:quadratic"``, an explicit list);
``None`` visits every step t, t−1, ..., 1 (the paper's samplers, bit for bit).
A sampler may take keyword-only options after the shared arguments (``stochastic``: ``delta``);
``Run.sample(..., options=...)`` passes them on.

``SAMPLERS`` is the one registry (a plain dict name -> function); every list of sampler
names (CLI choices included) derives from it.  Each function carries what callers need to
know about it: ``label`` (for tables), ``one_call`` (R is called once instead of t times),
``needs_context`` (it re-applies D, so the context of x_t must be known), ``check(D)``
(a one-line ConfigError when it does not apply to D), ``schedules`` (what it does with a schedule that skips
steps: ``"jumps"`` it jumps from t_i to t_{i+1}, ``"ignored"`` a one-call sampler, ``"refused"`` it raises a
ScheduleError), ``options`` (the names of its keyword-only
options, read from its signature), ``draws(options)`` (whether it draws random numbers with
those options, so callers give it a generator per chunk), ``restores`` (a row of the restoration
table) and ``generation_baseline`` (compared by default in generation tables where it applies).
``DEFAULT`` is the paper's sampler.  Callers read these instead of asking a sampler's name.

Samplers run without autograd (a T-step loop would otherwise keep every graph alive).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from .degradations.base import Degradation, bview
from .errors import ConfigError, InputError

Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]
TLike = Union[int, torch.Tensor]

__all__ = ["direct", "algorithm1", "algorithm2", "authors_shifted", "stochastic", "ddim", "SAMPLERS", "DEFAULT", "register_sampler",
           "get_sampler", "sampler_names", "Schedule", "ScheduleError", "parse_schedule", "check_schedule", "SPACINGS",
           "FULL"]


class ScheduleError(ConfigError):
    """A step schedule that cannot be used: not strictly decreasing, outside 1..T, not ending at 0, or given to
    a sampler that refuses one."""


# How a count of network calls is spread over t..0: "linear" evenly in t; "quadratic" t·(k/K)^2, dense near
# t = 0 (DDIM's quadratic skip), for degradations that lose most of the image in their first steps.
SPACINGS = ("linear", "quadratic")


@dataclass(frozen=True)
class Schedule:
    """The steps a sampler visits: every step (the default), ``count`` network calls spread by ``spacing``,
    or an explicit strictly decreasing list ``steps`` = (t_0, ..., 0).  Plain data: :meth:`for_t` gives the
    list for a start step t of a degradation with T steps."""

    count: Optional[int] = None
    spacing: str = "linear"
    steps: Optional[Tuple[int, ...]] = None

    def __post_init__(self):
        if self.count is not None and self.steps is not None:
            raise ScheduleError("a schedule is a count of steps or a list of steps, not both")
        if self.spacing not in SPACINGS:
            raise ScheduleError(f"unknown step spacing {self.spacing!r}; choose one of {', '.join(SPACINGS)}")
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                       or self.count < 1):
            raise ScheduleError(f"the number of sampling steps must be a whole number >= 1, got {self.count!r}")
        if self.steps is not None:
            st = self.steps
            if len(st) < 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in st):
                raise ScheduleError(f"a list of sampling steps needs at least two whole numbers t_0 > ... > 0, got "
                                    f"{list(st)!r}")
            if any(a <= b for a, b in zip(st, st[1:])):
                raise ScheduleError(f"sampling steps must be strictly decreasing, got {','.join(map(str, st))}")
            if st[-1] != 0:
                raise ScheduleError(f"sampling steps must end at 0 (the restored image), got "
                                    f"{','.join(map(str, st))}; add ,0")

    @property
    def full(self) -> bool:
        """Every step t, t−1, ..., 1: the paper's samplers."""
        return self.count is None and self.steps is None

    def __str__(self) -> str:
        if self.steps is not None:
            return ",".join(map(str, self.steps))
        if self.count is None:
            return "all"
        return str(self.count) if self.spacing == "linear" else f"{self.count}:{self.spacing}"

    def skips(self, starts, T: int) -> bool:
        """Whether this schedule skips a step from any of the start steps ``starts`` (ints 0..T) of a degradation
        with ``T`` steps; never for every step.  A list that does not fit a start step fails here (:meth:`for_t`)."""
        return not self.full and any(len(self.for_t(v, T)) != int(v) + 1 for v in starts)

    def for_t(self, t: int, T: int) -> List[int]:
        """The steps [t_0 = t, t_1, ..., 0] from start step ``t`` (0..T) of a degradation with ``T`` steps."""
        t, T = int(t), int(T)
        if self.steps is not None:
            if self.steps[0] > T:
                raise ScheduleError(f"sampling steps must lie within 1..T={T} for this run, got {self.steps[0]}")
            if self.steps[0] != t:
                raise ScheduleError(f"the sampling steps start at {self.steps[0]} but the images are at t={t}: "
                                    f"start the list at {t} (or give a count of steps)")
            return list(self.steps)
        if self.count is not None and self.count > T:
            raise ScheduleError(f"{self.count} sampling steps but this run has T={T}: give 1..{T}")
        k = t if self.count is None else min(self.count, t)   # network calls
        if k >= t:
            return list(range(t, -1, -1))
        if self.spacing == "linear":
            raw = [round(t * (k - i) / k) for i in range(k + 1)]
        else:
            raw = [round(t * ((k - i) / k) ** 2) for i in range(k + 1)]
        steps = [t]
        for i in range(1, k + 1):  # strictly decreasing with exactly k calls: t_i <= t_{i-1} - 1 and t_i >= k - i
            steps.append(max(min(raw[i], steps[-1] - 1), k - i))
        return steps


FULL = Schedule()


def parse_schedule(value: Any) -> Schedule:
    """A :class:`Schedule` from ``None``/``"all"`` (every step), a count (``8``, ``"8"``), ``"8:quadratic"``,
    or an explicit list (``"20,10,5,0"``, ``[20, 10, 5, 0]``); a ScheduleError saying what is wrong otherwise."""
    if value is None or isinstance(value, Schedule):
        return value or FULL
    if isinstance(value, bool):
        raise ScheduleError(f"sampling steps: give a count, COUNT:SPACING or a list like 20,10,5,0, not {value!r}")
    if isinstance(value, int):
        return Schedule(count=value)
    if isinstance(value, (list, tuple)):
        try:
            steps = tuple(int(v) if not isinstance(v, bool) and int(v) == v else v for v in value)
        except (TypeError, ValueError):
            steps = tuple(value)
        return Schedule(steps=steps)
    text = str(value).strip().lower()
    if text in ("", "all", "every", "full"):
        return FULL
    hint = ("give a count of network calls (8), a count and spacing (8:quadratic; spacings: "
            + ", ".join(SPACINGS) + "), a list ending at 0 (20,10,5,0) or all")
    count, _, spacing = text.partition(":")
    try:
        numbers = tuple(int(v) for v in text.split(",")) if "," in text else (int(count),)
    except ValueError:
        raise ScheduleError(f"sampling steps {value!r} not understood: {hint}") from None
    if "," in text:
        return Schedule(steps=numbers)
    return Schedule(count=numbers[0], spacing=spacing.strip() or "linear")


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


def _call_R(R: Restorer, x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
    """x0_hat = R(x, t), checked: a user's restorer that returns no tensor, or a tensor of another shape
    than ``x``, is one InputError naming R (not a broadcasting error steps later)."""
    out = R(x, tt)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"the restorer R returned {got} for x_t of shape {tuple(x.shape)}; R(x_t, t) must return "
                         "x0_hat, a tensor of x_t's shape")
    return out.to(x.dtype)


def _restore_active(R: Restorer, x: torch.Tensor, s: int, active: Optional[torch.Tensor],
                    all_active: bool) -> torch.Tensor:
    """x0_hat = R(x_s, s) for the active samples; inactive samples keep x (R is not called on them)."""
    if all_active:
        return _call_R(R, x, torch.full((x.shape[0],), s, dtype=torch.long, device=x.device))
    x0_hat = x.clone()
    idx = active.nonzero().flatten()
    x0_hat[idx] = _call_R(R, x[idx], torch.full((idx.numel(),), s, dtype=torch.long, device=x.device))
    return x0_hat


def check_schedule(sampler: str, schedule: Any, T: int, t: Any = None, options: Optional[dict] = None) -> Schedule:
    """The :class:`Schedule` of ``schedule``, checked before any work: its steps for start step ``t``
    (an int; ``None`` or ``"auto"``: per image, so only counts are allowed) of a run with ``T`` steps, and
    refused in one line (ScheduleError) when ``sampler`` with ``options`` takes no schedule that skips steps."""
    sched = parse_schedule(schedule)
    if sched.full:
        return sched
    if isinstance(t, int) and not isinstance(t, bool):
        skips = sched.skips([t], T)
    elif sched.steps is not None:
        raise ScheduleError(f"a list of sampling steps ({sched}) needs one start step for every image: give --t "
                            f"{sched.steps[0]} (or a count of steps)")
    else:
        skips = sched.skips([T], T)
    fn = get_sampler(sampler)
    if skips and fn.schedule_mode(options or {}) == "refused":
        raise ScheduleError(fn.refusal)
    return sched


def _never_draws(options: dict) -> bool:
    return False


def register_sampler(name: str, label: str, one_call: bool = False, needs_context: bool = True,
                     check: Optional[Callable[[Degradation], None]] = None, restores: bool = True,
                     draws: Callable[[dict], bool] = _never_draws, generation_baseline: bool = False,
                     oracle_exact: bool = True, schedules: Union[None, str, Callable[[dict], str]] = None,
                     refusal: str = ""):
    """Function decorator: add a sampler (one signature, see the module docstring) to ``SAMPLERS``.

    ``restores=False`` keeps a sampler out of the restoration table (Table 1): a generation-only sampler.
    ``draws(options)``: whether the sampler draws random numbers with these options (default never).
    ``generation_baseline``: generation tables compare it by default on the runs it applies to.
    ``oracle_exact``: with the perfect restorer R = x0 it returns x0 (False for the authors' shifted update).
    ``schedules``: ``"jumps"``, ``"ignored"`` or ``"refused"`` (a schedule that skips steps), or a function of
    the options giving one of them; by default ``"ignored"`` for a one-call sampler, ``"jumps"`` for one with
    a ``schedule`` parameter, else ``"refused"``.  ``refusal``: the one line that says why it refuses one.
    Its keyword-only parameters are its ``options``.
    """

    def deco(fn):
        fn.sampler_name, fn.label, fn.one_call, fn.needs_context = name, label, one_call, needs_context
        fn.restores, fn.draws, fn.generation_baseline = restores, draws, generation_baseline
        fn.oracle_exact = oracle_exact
        params = inspect.signature(fn).parameters
        fn.options = tuple(p.name for p in params.values() if p.kind is p.KEYWORD_ONLY)
        mode = schedules or ("ignored" if one_call else "jumps" if "schedule" in params else "refused")
        fn.schedule_mode = mode if callable(mode) else (lambda options, m=mode: m)
        fn.schedules = fn.schedule_mode({})
        fn.takes_schedule = "schedule" in params
        fn.refusal = refusal or (f"sampler {name} visits every step and takes no schedule that skips steps; "
                                 "drop the sampling-steps option or use algorithm2")
        fn.check = check or (lambda D: None)
        SAMPLERS[name] = fn
        return fn

    return deco


SAMPLERS: Dict[str, Callable] = {}
DEFAULT = "algorithm2"   # the paper's sampler (Algorithm 2): restoration's and generation's default


def get_sampler(name: str) -> Callable:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}") from None


def sampler_names(D: Optional[Degradation] = None) -> list:
    """Every registered sampler, or those that apply to ``D``."""
    out = []
    for name, fn in SAMPLERS.items():
        if D is not None:
            try:
                fn.check(D)
            except ConfigError:
                continue
        out.append(name)
    return out


@register_sampler("direct", "Direct", one_call=True, needs_context=False)
@torch.no_grad()
def direct(R: Restorer, D: Optional[Degradation], x_t: torch.Tensor, t: TLike, ctx: Any = None,
           callback: Optional[Callback] = None, generator: Optional[torch.Generator] = None,
           schedule: Any = None) -> torch.Tensor:
    """Direct reconstruction: x0_hat = R(x_t, t) in one call (D, ctx and the schedule are not used)."""
    tt = _t_vector(t, x_t, D)
    x0_hat = _call_R(R, x_t, tt)
    if callback is not None:
        callback(int(tt.max()) if tt.numel() else 0, x_t, x0_hat)
    return x0_hat


def _context_take(ctx: Any, idx: torch.Tensor, n: int) -> Any:
    """The part of a context of ``n`` samples that belongs to the samples ``idx``."""
    if isinstance(ctx, torch.Tensor):
        return ctx[idx.to(ctx.device)] if ctx.dim() > 0 and ctx.shape[0] == n else ctx
    if isinstance(ctx, dict):
        return {k: _context_take(v, idx, n) for k, v in ctx.items()}
    return ctx


def _iterate(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any,
             callback: Optional[Callback], step: Callable, need_ctx: bool = True, kind: str = "",
             graphable: bool = True, schedule: Any = None) -> torch.Tensor:
    """The loop the algorithms share: for consecutive steps s > s' of the schedule (every step by default,
    s' = s − 1), x0_hat = R(x_s, s), x_{s'} = step(x_s, x0_hat, s, s', ctx).

    ``graphable=False``: never replay the loop from CUDA graphs (an update that draws random numbers
    would replay the same draw)."""
    if need_ctx:
        _check_ctx(D, ctx)
    sched = parse_schedule(schedule)
    tt = _t_vector(t, x_t, D)
    # Which samples are still running is decided on the CPU copy of t, so the loop never waits
    # for the GPU (no per-step device sync); the usual case, one t for the whole batch, needs no
    # masking at all.
    tt_cpu = tt.cpu()
    s_max = int(tt_cpu.max()) if tt_cpu.numel() else 0
    if not sched.full:
        T = int(D.T) if D is not None else s_max
        lists = {v: sched.for_t(v, T) for v in sorted({int(v) for v in tt_cpu.tolist()}, reverse=True)}
        if any(len(steps) != v + 1 for v, steps in lists.items()):   # it skips a step somewhere
            return _jumps(R, x_t, tt_cpu, ctx, callback, step, lists)
        # a schedule that visits every step is the default loop, bit for bit

    def update(x_s, x0_hat, s, c):
        return step(x_s, x0_hat, s, s - 1, c)

    def eager() -> torch.Tensor:
        x = x_t
        for s in range(s_max, 0, -1):
            active_cpu = tt_cpu >= s
            all_active = bool(active_cpu.all())
            active = None if all_active else active_cpu.to(x.device)
            x0_hat = _restore_active(R, x, s, active, all_active)
            if callback is not None:
                callback(s, x, x0_hat)
            x_new = update(x, x0_hat, s, ctx)
            x = x_new if all_active else torch.where(bview(active, x), x_new, x)
        return x

    # A GraphedRestorer (colddiff.graphs) replays the whole loop from CUDA graphs when every
    # sample is at the same step and nobody needs the per-step callback; elsewhere: eager.
    if (graphable and s_max > 0 and hasattr(R, "loop") and R.applies(x_t, callback)
            and bool((tt_cpu == s_max).all())):
        return R.loop(kind, D, x_t, s_max, ctx, update, eager)
    return eager()


def _jumps(R: Restorer, x_t: torch.Tensor, tt_cpu: torch.Tensor, ctx: Any, callback: Optional[Callback],
           step: Callable, lists: Dict[int, List[int]]) -> torch.Tensor:
    """The loop over a schedule that skips steps; samples that start at different steps t_b run as separate
    groups, each over its own list ``lists[t_b]`` = [t_b, ..., 0]."""
    starts = list(lists)

    def run(x, c, steps):
        for s, s_next in zip(steps, steps[1:]):
            x0_hat = _call_R(R, x, torch.full((x.shape[0],), s, dtype=torch.long, device=x.device))
            if callback is not None:
                callback(s, x, x0_hat)
            x = step(x, x0_hat, s, s_next, c)
        return x

    if len(starts) <= 1:
        return run(x_t, ctx, lists[starts[0]]) if starts else x_t
    out, n = x_t.clone(), x_t.shape[0]
    for v in starts:
        idx = (tt_cpu == v).nonzero().flatten().to(x_t.device)
        out[idx] = run(x_t[idx], _context_take(ctx, idx, n), lists[v])
    return out


def _refuse_skips(schedule: Any, D: Degradation, x_t: torch.Tensor, t: TLike, why: str) -> None:
    """ScheduleError(why) when ``schedule`` skips a step from any of the start steps ``t``."""
    sched = parse_schedule(schedule)
    if sched.full:
        return
    if sched.skips({int(v) for v in _t_vector(t, x_t, D).cpu().tolist()}, int(D.T)):
        raise ScheduleError(why)


@register_sampler("algorithm1", "Algorithm 1")
@torch.no_grad()
def algorithm1(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
               callback: Optional[Callback] = None, generator: Optional[torch.Generator] = None,
               schedule: Any = None) -> torch.Tensor:
    """Algorithm 1 (naive): for s = t..1: x0_hat = R(x_s, s); x_{s-1} = D(x0_hat, s-1).
    Over a schedule t_0 > t_1 > ... > 0: x_{t_{i+1}} = D(x0_hat, t_{i+1})."""
    return _iterate(R, D, x_t, t, ctx, callback,
                    lambda x_s, x0_hat, s, s_next, c: D(x0_hat, s_next, c), kind="algorithm1", schedule=schedule)


@register_sampler("algorithm2", "Algorithm 2")
@torch.no_grad()
def algorithm2(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
               callback: Optional[Callback] = None, generator: Optional[torch.Generator] = None,
               schedule: Any = None) -> torch.Tensor:
    """Algorithm 2 (improved): for s = t..1: x0_hat = R(x_s, s);
    x_{s-1} = x_s − D(x0_hat, s) + D(x0_hat, s−1).

    Over a schedule t_0 > t_1 > ... > 0 it jumps: x_{t_{i+1}} = x_{t_i} − D(x0_hat, t_i) + D(x0_hat, t_{i+1}).
    For D(x, s) = x + s·e this returns D(x0, 0) = x0 exactly whatever R is and whatever the schedule
    (Sec. 3.3: every jump moves x by (t_{i+1} − t_i)·e, and the jumps add up to −t·e).
    """
    return _iterate(R, D, x_t, t, ctx, callback,
                    lambda x_s, x0_hat, s, s_next, c: x_s - D(x0_hat, s, c) + D(x0_hat, s_next, c),
                    kind="algorithm2", schedule=schedule)


# Not a Table 1 row (restores=False): the authors' variant, chosen by name (evaluate --paper-sampler, restore
# --sampler, ...); Algorithm 2 stays the default everywhere.
_SHIFTED_REFUSAL = ("authors-shifted reproduces the authors' one-step-early update and visits every step; "
                    "drop the sampling-steps option or use algorithm2 to skip steps")
_STOCHASTIC_REFUSAL = ("the stochastic sampler adds its delta of noise per single step, which a skipped step would "
                       "not match; visit every step, or use delta 0 / algorithm2 to skip steps")


@register_sampler("authors-shifted", "Algorithm 2 shifted by one (authors' snow/colour code)", restores=False,
                  oracle_exact=False, schedules="refused", refusal=_SHIFTED_REFUSAL)
@torch.no_grad()
def authors_shifted(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
                    callback: Optional[Callback] = None, generator: Optional[torch.Generator] = None,
                    schedule: Any = None) -> torch.Tensor:
    """The update of the authors' snowification and decolorization code (``sample_one_step`` with
    ``x0_step_down`` in snowification/diffusion/diffusion.py and decolor-diffusion/diffusion/diffusion.py):
    Algorithm 2 with both D terms one step early,

        x_{s-1} = x_s − D(x0_hat, s−1) + D(x0_hat, max(s−2, 0)),

    so the last step (s = 1) returns x_1 unchanged.  Unlike Algorithm 2 it does not retrace
    D(x0, s−1) for D(x, s) = x + s·e (it moves by e per step but starts one step behind).
    It reproduces the authors' code step by step, so it refuses a schedule that skips steps.
    """
    _refuse_skips(schedule, D, x_t, t, _SHIFTED_REFUSAL)
    return _iterate(R, D, x_t, t, ctx, callback,
                    lambda x_s, x0_hat, s, s_next, c: x_s - D(x0_hat, s - 1, c) + D(x0_hat, max(s - 2, 0), c),
                    kind="authors-shifted")


# Generation only (restores=False): restoring a given image wants the most likely x0, not a sample;
# with δ = 0 its Table 1 row would repeat Algorithm 2's.
@register_sampler("stochastic", "Stochastic (IHD)", restores=False,
                  draws=lambda options: float(options.get("delta", 0.0)) > 0,
                  schedules=lambda options: "refused" if float(options.get("delta", 0.0)) > 0 else "jumps",
                  refusal=_STOCHASTIC_REFUSAL)
@torch.no_grad()
def stochastic(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
               callback: Optional[Callback] = None, generator: Optional[torch.Generator] = None,
               schedule: Any = None, *, delta: float = 0.0) -> torch.Tensor:
    """Algorithm 2 with fresh noise at every step, in the style of Inverse Heat Dissipation
    (Rissanen, Heinonen, Solin, "Generative Modelling With Inverse Heat Dissipation", ICLR 2023,
    Sec. 3 and its sampling algorithm: u_{k−1} = μ_θ(u_k, k) + δ·ε).

    For s = t..1: x0_hat = R(x_s, s); x_{s−1} = x_s − D(x0_hat, s) + D(x0_hat, s−1) + δ·ε_s with
    ε_s ~ N(0, I) drawn from ``generator``, except at the last step (s = 1), which returns the
    update without fresh noise.  A deterministic restorer started from a constant image can only
    produce as many images as it can tell start values apart; the per-step noise lets every
    intermediate step choose among the details that the blur erased, so R (trained on inputs
    with the matching noise σ, ``degradation.input_noise``) samples instead of averaging.
    With δ = 0 no number is drawn and this is Algorithm 2, bit for bit (schedules included).
    δ is the noise of one step of the trained σ: a schedule that skips steps is refused when δ > 0.
    """
    delta = float(delta)
    if not math.isfinite(delta) or delta < 0:
        raise ConfigError(f"the stochastic sampler's delta must be a finite number >= 0, got {delta!r}")
    if delta > 0:
        _refuse_skips(schedule, D, x_t, t, _STOCHASTIC_REFUSAL)

    def update(x_s, x0_hat, s, s_next, c):
        x_prev = x_s - D(x0_hat, s, c) + D(x0_hat, s_next, c)  # Algorithm 2
        if delta > 0 and s_next > 0:
            eps = torch.randn(x_prev.shape, generator=generator,
                              device=generator.device if generator is not None else x_prev.device)
            x_prev = x_prev + delta * eps.to(device=x_prev.device, dtype=x_prev.dtype)
        return x_prev

    # δ = 0 is Algorithm 2 and may share its CUDA graphs; with δ > 0 every step draws, so no graph
    return _iterate(R, D, x_t, t, ctx, callback, update, kind="algorithm2" if delta == 0 else "stochastic",
                    graphable=delta == 0, schedule=schedule)


def _check_mixing(D: Degradation) -> None:
    if D is None or D.mixing_schedule() is None:
        raise ConfigError(f"ddim re-estimates Gaussian noise and works only with the noise degradation "
                          f"(x_t = √ᾱ·x0 + √(1−ᾱ)·ε), not {getattr(D, 'name', type(D).__name__)}; "
                          "use algorithm2 for cold degradations")


@register_sampler("ddim", "DDIM", needs_context=False, check=_check_mixing, generation_baseline=True)
@torch.no_grad()
def ddim(R: Restorer, D: Degradation, x_t: torch.Tensor, t: TLike, ctx: Any = None,
         callback: Optional[Callback] = None, generator: Optional[torch.Generator] = None,
         schedule: Any = None) -> torch.Tensor:
    """DDIM with η = 0 (Song et al. 2021), the hot baseline's "DDIM-style" sampler.

    For s = t..1: x0_hat = R(x_s, s); the noise is re-estimated from x0_hat,
    ε_hat = (x_s − √ᾱ_s·x0_hat) / √(1 − ᾱ_s), and x_{s−1} = √ᾱ_{s−1}·x0_hat + √(1 − ᾱ_{s−1})·ε_hat.
    Over a schedule t_0 > t_1 > ... > 0 it takes DDIM's skipped steps, x_{t_{i+1}} = √ᾱ_{t_{i+1}}·x0_hat +
    √(1 − ᾱ_{t_{i+1}})·ε_hat.
    Unlike Algorithm 2 with a fixed ε, the noise is read back from the current x_s instead of
    being held at the start noise, so x_{s−1} always lies on the path through x_s and x0_hat.
    With the oracle R = x0 and x_t = D(x0, t, ε) it retraces D(x0, s−1, ε) exactly.  Defined
    for degradations that declare a Gaussian mixing schedule (``D.mixing_schedule()``, the
    noise degradation); ``ctx`` is accepted for the shared signature and unused.
    """
    _check_mixing(D)
    ab = [float(a) for a in D.mixing_schedule()]  # ᾱ_0 = 1, ..., ᾱ_T in float64

    def update(x_s, x0_hat, s, s_next, c=None):
        eps_hat = (x_s - math.sqrt(ab[s]) * x0_hat) / math.sqrt(1.0 - ab[s])
        return math.sqrt(ab[s_next]) * x0_hat + math.sqrt(1.0 - ab[s_next]) * eps_hat

    return _iterate(R, D, x_t, t, None, callback, update, need_ctx=False, kind="ddim", schedule=schedule)

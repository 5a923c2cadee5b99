"""The degradation interface, D(x0, t, ctx) -> x_t, and its registry.

Every family implements two things:

* ``forward(x0, t, ctx)``: the closed form D(x0, t) for a batch and a per-sample integer
  tensor ``t``; its cost must not grow with ``t`` (composite operators are precomputed).
* ``step(x, s, ctx)`` (optional but provided by every built-in family): the single-step
  operator x_{s-1} -> x_s, i.e. how the authors' code applies a degradation, one step at a
  time.  :func:`apply_stepwise` uses it; tests check that it agrees with ``forward``.

Random parts of a degradation (mask centres, snow layers, noise, partner images) are drawn
once per trajectory by ``context(x0, generator)`` and passed back in, so a sampler can call
``D`` at any ``t`` with the same random draw.

``Degradation`` holds the paper's D and nothing else.  How the authors' test scripts evaluate a
family is a table in :mod:`colddiff.paper`, its Hub task tag one in :mod:`colddiff.export`, and a
plug-in's failures are named by :mod:`colddiff.plugins`, which wraps a plug-in class as it
registers (:func:`plug_in`: the registry's two seams, wired by :mod:`colddiff.degradations`).
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Optional, Type, Union

import torch

from ..errors import ConfigError, InputError
from ..timesteps import library_t
from ..validate import degradation_params, images

TLike = Union[int, torch.Tensor]

_REGISTRY: Dict[str, Type["Degradation"]] = {}
MAX_T = 100_000

# The registry's two seams for plug-ins; the registry itself knows nothing of them.  ``_guard`` takes every
# class as it registers (colddiff.plugins wraps a plug-in's methods so that its failures name it) and
# ``_find`` is asked when a name is unknown (colddiff.plugins loads the installed and the named plug-ins).
_guard: Callable[[type], type] = lambda cls: cls
_find: Callable[[], Any] = lambda: None


def plug_in(guard: Callable[[type], type], find: Callable[[], Any]) -> None:
    """Install the plug-in machinery's two seams (colddiff.degradations does, with colddiff.plugins)."""
    global _guard, _find
    _guard, _find = guard, find


def register(name: str, override: bool = False) -> Callable[[Type["Degradation"]], Type["Degradation"]]:
    """Class decorator: make a :class:`Degradation` subclass available to ``create(name)``.

    A name that another module registered already (``blur``, ...) is refused unless ``override=True``
    says the replacement is meant: a plug-in never shadows a built-in family silently."""

    def deco(cls: Type["Degradation"]) -> Type["Degradation"]:
        if not (isinstance(cls, type) and issubclass(cls, Degradation)):
            raise TypeError(f"@register({name!r}) must decorate a Degradation subclass, got {cls!r}")
        old = _REGISTRY.get(name)
        if old is not None and old.__module__ != cls.__module__ and not override:
            where = "built in" if old.__module__.startswith("colddiff.") else f"registered by {old.__module__}"
            raise ConfigError(f"{cls.__module__} registers a degradation named {name!r}, which is {where}; choose "
                              f"another name, or write @register({name!r}, override=True) to replace it on purpose")
        cls.name = name
        _REGISTRY[name] = cls = _guard(cls)
        return cls

    return deco


def names() -> list[str]:
    """Names of all registered degradations, sorted."""
    return sorted(_REGISTRY)


def generative_names() -> list[str]:
    """Registered degradations that define a start state for generation (override ``start``)."""
    return [n for n in names() if _REGISTRY[n].start is not Degradation.start]


def start_fit(D: "Degradation") -> bool:
    """True when generation fits a Gaussian mixture to ``D.start_statistic`` (the family defines one)."""
    return type(D).start_statistic is not Degradation.start_statistic


def get_class(name: str) -> Type["Degradation"]:
    if name not in _REGISTRY:  # not built in: look in the installed and named plug-ins
        _find()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown degradation {name!r}; known degradations: {', '.join(names())} (a plug-in of your own: "
            "pass --plugin FILE_OR_MODULE or set COLDDIFF_PLUGINS)"
        ) from None


def parameters(name: str) -> Dict[str, Any]:
    """The keyword arguments (with defaults) that ``create(name, ...)`` accepts."""
    cls = get_class(name)
    sig = inspect.signature(cls.__init__)
    out = {}
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def create(name: str, **params: Any) -> "Degradation":
    """Build a registered degradation, e.g. ``create("blur", T=20, kernel_size=11, sigma=7)``.

    ``T`` and the family's own keywords are accepted; ``image_size`` and ``channels`` are
    accepted by every family (used where a family needs them, ignored otherwise).
    """
    cls = get_class(name)
    accepted = parameters(name)
    takes_kwargs = any(
        p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()
    )
    unknown = [k for k in params if k not in accepted]
    if unknown and not takes_kwargs:
        # image_size / channels are universal keywords; families that don't need them ignore them.
        really_unknown = [k for k in unknown if k not in ("image_size", "channels")]
        if really_unknown:
            raise ConfigError(
                f"degradation {name!r} has no parameter(s) {', '.join(map(repr, really_unknown))}; "
                f"its parameters are: {', '.join(accepted)}"
            )
        params = {k: v for k, v in params.items() if k in accepted}

    params = degradation_params(name, cls.__init__, params)  # typed and finite before any kernel is built
    try:
        return cls(**params)
    except (TypeError, ValueError, OverflowError) as e:  # wrong argument types or missing required ones
        if isinstance(e, (ConfigError, InputError)):
            raise
        raise ConfigError(f"cannot build degradation {name!r}: {e}") from None


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Precision used for the arithmetic of a degradation: float32 for 16-bit inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def bview(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample (B,) tensor so it broadcasts against a (B, C, H, W) tensor."""
    return v.view(-1, *([1] * (like.dim() - 1)))


class Degradation(ABC):
    """Base class of all degradations.  Subclasses implement ``forward`` (and ``step``).

    What it holds, all of it about D:

    * the operator: ``T``, ``forward`` (closed form), ``step`` (one step), ``context`` and
      ``deterministic`` (its random draw), ``output_range``;
    * applying it: ``D(x0, t, ctx)``, ``observe`` (with ``finalize``: how a degraded image is stored),
      ``as_t`` (a step t, checked);
    * what samplers and generation may assume: ``mixing_schedule`` (DDIM), ``start`` and
      ``start_statistic`` (the start state x_T);
    * what restoring photos may assume: ``shift_invariant`` (why not: ``_not_shift_invariant``), ``tile_multiple``;
    * its registry entry: ``name`` (set by :func:`register`).

    What is not the operator lives beside its users, as functions of D: :func:`apply_stepwise` (t single
    steps) and :func:`describe` (its settings) here, :func:`colddiff.degradations.checks.example` (a small
    instance for the property suite), :func:`colddiff.restoration.native_size_problem` (may R restore an
    H×W image).  A family may replace the last three with a hook of its own: ``_describe(self)``,
    ``_example(cls, image_size, channels)`` (a classmethod), ``_native_size_problem(self, H, W)``.

    Attributes:
        T: number of degradation steps; valid ``t`` are ``0..T``.
        name: registry name (set by :func:`register`).
        deterministic: False when ``context`` draws random per-trajectory parameters.
    """

    name: str = "degradation"
    deterministic: bool = True

    def __init__(self, T: int, image_size: Optional[int] = None, channels: Optional[int] = None):
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ConfigError(f"T must be a positive integer number of steps, got {T!r}")
        if T > MAX_T:  # samplers take T network calls; 1e8 steps only hangs (the paper uses at most 1,000)
            raise ConfigError(f"T must be at most {MAX_T:,} steps, got {T:,}")
        self.T = int(T)
        self.image_size = image_size
        self.channels = channels

    # ------------------------------------------------------------------ interface
    def context(self, x0: torch.Tensor, generator: Optional[torch.Generator] = None) -> Any:
        """Draw the per-trajectory random parameters for the batch ``x0`` (None if there are none)."""
        return None

    @abstractmethod
    def forward(self, x0: torch.Tensor, t: torch.Tensor, ctx: Any) -> torch.Tensor:
        """Closed form D(x0, t); ``t`` is a (B,) int64 tensor on x0's device."""

    def step(self, x: torch.Tensor, s: torch.Tensor, ctx: Any) -> torch.Tensor:
        """One degradation step x_{s-1} -> x_s, ``s`` a (B,) tensor in 1..T (authors' way).

        Optional for user-defined degradations: only ``apply_stepwise`` needs it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a single-step operator")

    # ------------------------------------------------------------------ generation (start states)
    # A family that can generate from t = T says so by overriding ``start``.  When its end state
    # still carries a few numbers of x0 (blur: the channel means), it also defines
    # ``start_statistic`` (:func:`start_fit`): generation fits a Gaussian mixture to that
    # statistic over the training set and passes a sampler of it to ``start`` as ``draw``.
    def start_statistic(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, d) numbers of x0 that survive to t = T and must be drawn to generate (defined: :func:`start_fit`)."""
        raise NotImplementedError(f"{type(self).__name__} fits nothing for its start state")

    def start(self, n: int, shape, generator: Optional[torch.Generator] = None, device=None,
              draw: Optional[Callable[[int, torch.Generator], torch.Tensor]] = None):
        """(x_T, ctx): ``n`` start states of generation, shape (n, *shape), every random number from ``generator``.

        ``draw(m, generator)`` samples the fitted start statistic ((m, d), start_fit families only).
        The base class cannot generate: its image at t = T still depends on the clean image.
        """
        raise ConfigError(f"generation is not defined for {self.name}: its image at t=T still depends on the "
                          "clean image, so there is nothing to start from (generative degradations: "
                          f"{', '.join(generative_names()) or 'none'})")


    # ------------------------------------------------------------------ capabilities
    # Samplers ask for what they need instead of a family's name: DDIM needs x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·z.
    output_range: Optional[tuple] = (-1.0, 1.0)   # bounds of D(x0, t) for x0 in [-1, 1]; None = unbounded

    # Restoring images of any size (colddiff.restoration): a family whose operator is local and acts the
    # same way at every pixel (a convolution, a per-pixel map, i.i.d. noise, snow that may fall anywhere)
    # says so with ``shift_invariant = True``; R then runs on a whole photo, or on overlapping tiles of it,
    # exactly as on the training crops.  A family that is not (a mask centred on the image, a partner
    # image mixed in whole) keeps False and says why in ``_not_shift_invariant`` (one clause, which
    # colddiff.restoration.native_size_problem gives as the reason a photo cannot be restored at its size).
    shift_invariant: bool = False
    _not_shift_invariant: str = "it does not declare its operator shift-invariant (shift_invariant = True)"

    def tile_multiple(self) -> int:
        """Tiles of an image must start and end on multiples of this many pixels (1: anywhere)."""
        return 1

    def mixing_schedule(self) -> Optional[torch.Tensor]:
        """ᾱ_0..ᾱ_T (float64) when D(x0, t) = √ᾱ_t·x0 + √(1−ᾱ_t)·z with Gaussian z (DDIM applies), else None."""
        return None

    def finalize(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What :meth:`observe` applies to D(x0, t): how a degraded image is stored (e.g. 8-bit rounding).

        Never applied inside ``D(x0, t)`` itself: the samplers' D calls stay exact, as in the authors'
        code, which rounds only the training inputs and the inpainting start x_T."""
        return x_t

    # ------------------------------------------------------------------ calling
    def __call__(self, x0: torch.Tensor, t: TLike, ctx: Any = None, *, t_in_range: bool = False) -> torch.Tensor:
        x0, tt, ctx = self._prepare(x0, t, ctx, t_in_range)
        return self._exact_at_0(x0, tt, self.forward(x0, tt, ctx))

    def _prepare(self, x0: torch.Tensor, t: TLike, ctx: Any, t_in_range: bool = False):
        """What every way of applying D checks and converts first: x0 a (B, C, H, W) float tensor, t a (B,)
        int64 tensor in 0..T on x0's device (``t_in_range``: see :meth:`as_t`), and the context drawn when
        none was passed."""
        x0 = self._check_x(x0)
        tt = self.as_t(t, x0, in_range=t_in_range)
        if ctx is None and not self.deterministic:
            ctx = self.context(x0)
        return x0, tt, ctx

    @staticmethod
    def _exact_at_0(x0: torch.Tensor, tt: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """x_t in x0's dtype, with D(x0, 0) == x0 exactly, whatever floating-point residue the closed form leaves."""
        return torch.where(bview(tt == 0, x0), x0, x_t.to(x0.dtype))

    def observe(self, x0: torch.Tensor, t: TLike, ctx: Any = None, stepwise: bool = False, *,
                t_in_range: bool = False) -> torch.Tensor:
        """The degraded image as it is stored and fed to R: ``finalize(D(x0, t))`` (8-bit rounding for the
        families that quantise), with D(x0, 0) == x0.  Training inputs and the start x_t of a restoration
        use it; the samplers' D calls do not (Algorithm 2's update stays exact).  ``stepwise``: build
        D(x0, t) one step at a time (:func:`apply_stepwise`).  ``t_in_range``: see :meth:`as_t`."""
        x0, tt, ctx = self._prepare(x0, t, ctx, t_in_range)
        x = apply_stepwise(self, x0, tt, ctx) if stepwise else self(x0, tt, ctx, t_in_range=True)
        return self._exact_at_0(x0, tt, self.finalize(x, tt))

    # ------------------------------------------------------------------ helpers
    def as_t(self, t: TLike, x0: torch.Tensor, in_range: bool = False) -> torch.Tensor:
        """Turn an int or a (B,) tensor into a validated (B,) int64 tensor on x0's device.

        ``in_range=True``: the caller vouches that a tensor ``t`` lies in 0..T (training draws
        t ~ U{1..T}), so its range check, which reads t back from the GPU, is skipped."""
        B = x0.shape[0]
        if isinstance(t, (list, tuple)) or (type(t).__module__ == "numpy" and getattr(t, "ndim", 0) > 0):
            try:   # per-image steps as a list or a NumPy array: the tensor rules below apply
                t = torch.as_tensor(t if isinstance(t, (list, tuple)) else t.tolist())
            except (TypeError, ValueError, RuntimeError):
                raise InputError(f"t must be an int or a ({B},) tensor of steps, got {t!r}") from None
        if isinstance(t, torch.Tensor):
            if t.is_floating_point():
                if not torch.equal(t, t.round()):
                    raise ConfigError("t must hold whole numbers of steps")
            tt = t.to(device=x0.device, dtype=torch.long)
            if tt.dim() == 0:
                tt = tt.expand(B)
            elif tt.shape != (B,):
                raise InputError(f"t must be an int or a ({B},) tensor, got shape {tuple(t.shape)}")
        else:
            # the library's rule (0..T), checked on the int: no GPU sync in a sampler's loop
            return torch.full((B,), library_t(t, self.T, self.name), dtype=torch.long, device=x0.device)
        if tt.numel() and not in_range and (int(tt.min()) < 0 or int(tt.max()) > self.T):
            raise ConfigError(
                f"t out of range: got {int(tt.min())}..{int(tt.max())}, but {self.name} has steps 0..{self.T}"
            )
        return tt.contiguous()

    def _check_x(self, x0: torch.Tensor) -> torch.Tensor:
        return images(x0, "x0", self.channels, owner=f"the degradation {self.name}")  # the shared API check

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in describe(self).items() if k != "name")
        return f"{type(self).__name__}({args})"


def apply_stepwise(D: Degradation, x0: torch.Tensor, t: TLike, ctx: Any = None) -> torch.Tensor:
    """D(x0, t) by applying ``D.step`` t times (O(t) cost, as in the authors' code)."""
    if type(D).step is Degradation.step:  # e.g. the authors' snow: only a closed form exists
        raise ConfigError(f"{D.name} has no single-step operator (its image at t is not a function of the "
                          "image at t-1), so it cannot be applied step by step; use the closed form D(x0, t)")
    x0, tt, ctx = D._prepare(x0, t, ctx)
    x = x0
    for s in range(1, int(tt.max().item()) + 1 if tt.numel() else 1):
        x_next = D.step(x, torch.full_like(tt, s), ctx).to(x0.dtype)
        x = torch.where(bview(tt >= s, x0), x_next, x)
    return D._exact_at_0(x0, tt, x)


def describe(D: Degradation) -> Dict[str, Any]:
    """The settings of a degradation (JSON-friendly): its name, T and every keyword of ``create`` that it keeps
    as a plain attribute of the same name; used in configs, reports and ``repr``.  A family whose settings are
    held otherwise defines ``_describe(self)`` returning this dict itself."""
    hook = getattr(D, "_describe", None)
    if hook is not None:
        return hook()
    out = {"name": D.name, "T": D.T}
    for k in parameters(D.name) if D.name in _REGISTRY else []:
        if k in ("T",):
            continue
        v = getattr(D, k, None)
        if isinstance(v, (int, float, str, bool, type(None), list, tuple)):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def start_from_context(D: Degradation, n: int, shape, generator=None, device=None):
    """The start state of a family whose t = T image is its context alone (solid colour, partner, noise):
    x_T = D(0, T, ctx), ctx = D.context(0, generator), so every later D(x0_hat, s, ctx) heads to the same end."""
    x0 = torch.zeros(n, *shape, device=device)
    ctx = D.context(x0, generator)
    return D(x0, D.T, ctx), ctx


# ---------------------------------------------------------------------------- contexts
# A per-trajectory context is None, a tensor, or a dict of those (nested dicts allowed).  One
# batch-axis rule for all of them: a tensor leaf whose first axis has the batch's length holds
# one entry per sample; any other leaf (a scalar, a table shared by the batch) is shared.
def context_to(ctx: Any, device) -> Any:
    """The context with every tensor moved to ``device``."""
    if isinstance(ctx, torch.Tensor):
        return ctx.to(device)
    if isinstance(ctx, dict):
        return {k: context_to(v, device) for k, v in ctx.items()}
    return ctx


def context_slice(ctx: Any, lo: int, hi: int, n: int) -> Any:
    """The part of a context of ``n`` samples that belongs to samples ``lo:hi``."""
    if isinstance(ctx, torch.Tensor):
        return ctx[lo:hi].contiguous() if ctx.dim() > 0 and ctx.shape[0] == n else ctx
    if isinstance(ctx, dict):
        return {k: context_slice(v, lo, hi, n) for k, v in ctx.items()}
    return ctx


def context_cat(parts: list, sizes: list) -> Any:
    """One context from the contexts of consecutive batches of ``sizes`` samples (inverse of context_slice)."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if all(p.dim() > 0 and p.shape[0] == m for p, m in zip(parts, sizes)):
            return torch.cat(list(parts))
        return first
    if isinstance(first, dict):
        return {k: context_cat([p[k] for p in parts], sizes) for k in first}
    return first

"""CUDA graphs for the sampling loop (Algorithm 1, Algorithm 2, DDIM) at a fixed batch shape.

On a GPU a small restorer is launch-bound: each of its kernels, and each of the 10-20 small
kernels of Algorithm 2's update, costs a few microseconds of host time to launch, and the GPU
waits for the host.  A CUDA graph records the kernels of one step once and replays them with a
single launch.  ``GraphedRestorer(R)`` wraps any restorer; the samplers' shared loop
(``samplers._iterate``) hands it whole trajectories when it may:

* first call for a (sampler, D, batch shape, dtype, t) key: the ordinary eager loop, run with
  ``torch.cuda.set_sync_debug_mode("error")`` to find out whether the degradation's update ever
  waits for the GPU (a host read such as ``.cpu()``, which a graph cannot hold); it also warms
  every lazily built cache.  Then every step is captured, into one shared memory pool:
  *whole-step* graphs (network + update; one graph per s, since D's step is a Python int) when
  the update never synchronised, else *network-only* graphs (one graph, t a static tensor) with
  the update run eagerly.  The captured loop is replayed once on the same input and must agree
  with the eager result (float tolerance), else graphs are switched off for that key with one
  log line.  The first call returns the eager result.
* later calls with the same key: copy x_t and the context into the graph's static inputs and
  replay.  Results equal the eager loop's within float tolerance (the same kernels run).

Anywhere else (a CPU tensor, per-sample t that differ, a per-step callback, a capture that is
already in progress) the samplers run the eager loop unchanged: CPU results are identical.
"""
from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from typing import Any, Callable, Optional

import torch

log = logging.getLogger("colddiff.graphs")

MAX_ENTRIES = 4  # captured (shape, t) keys kept per restorer; older ones are freed


def _leaves(ctx: Any) -> list:
    """The tensors of a context (None, a tensor, or nested dicts of those), in a fixed order."""
    if isinstance(ctx, torch.Tensor):
        return [ctx]
    if isinstance(ctx, dict):
        return [leaf for k in sorted(ctx) for leaf in _leaves(ctx[k])]
    return []


def _signature(ctx: Any) -> tuple:
    if isinstance(ctx, torch.Tensor):
        return ("T", tuple(ctx.shape), ctx.dtype, str(ctx.device))
    if isinstance(ctx, dict):
        return tuple((k, _signature(ctx[k])) for k in sorted(ctx))
    return ("V", repr(ctx))


def _clone(ctx: Any) -> Any:
    if isinstance(ctx, torch.Tensor):
        return ctx.clone()
    if isinstance(ctx, dict):
        return {k: _clone(v) for k, v in ctx.items()}
    return ctx


@contextlib.contextmanager
def _sync_errors():
    """Raise on any operation that makes the host wait for the GPU (what a graph cannot record)."""
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


class _Entry:
    """The captured loop of one key: static inputs, graphs, and which kind they are."""

    def __init__(self, x: torch.Tensor, ctx: Any, whole: bool):
        self.x = x.clone()                    # x_s, updated in place by every step
        self.ctx = _clone(ctx)
        self.whole = whole
        self.x0_hat = torch.empty_like(x)     # network-only graphs write R's output here
        self.t = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        self.graphs: dict = {}
        self.replays = 0

    def load(self, x: torch.Tensor, ctx: Any) -> None:
        self.x.copy_(x)
        for dst, src in zip(_leaves(self.ctx), _leaves(ctx)):
            dst.copy_(src)


class GraphedRestorer:
    """A restorer ``R(x, t)`` whose sampling loops are replayed from CUDA graphs where possible.

    Called directly it is ``R`` itself.  ``stats`` counts captures, replays and fall-backs
    (for tests and benchmarks).
    """

    def __init__(self, R: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], max_entries: int = MAX_ENTRIES):
        self.R = R
        self.max_entries = max_entries
        self._entries: "OrderedDict[tuple, Optional[_Entry]]" = OrderedDict()
        self.stats = {"eager": 0, "captured_whole": 0, "captured_network": 0, "replayed": 0, "refused": 0}

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.R(x, t)

    @staticmethod
    def applies(x: torch.Tensor, callback) -> bool:
        return (callback is None and x.is_cuda and torch.cuda.is_available()
                and not torch.cuda.is_current_stream_capturing())

    # -------------------------------------------------------------- the loop
    def loop(self, kind: str, D, x_t: torch.Tensor, s_max: int, ctx: Any, update: Callable,
             eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        """x_0 of the loop s = s_max..1 (every sample at the same step); ``eager()`` runs it plainly."""
        key = (kind, id(D), tuple(x_t.shape), x_t.dtype, str(x_t.device), s_max, _signature(ctx))
        if key in self._entries:
            entry = self._entries[key]
            self._entries.move_to_end(key)
            if entry is None:  # capture was refused for this key: eager
                self.stats["eager"] += 1
                return eager()
            return self._replay(entry, x_t, ctx, s_max).clone()
        # first time: the eager loop, watched for host syncs, gives the result and warms every cache
        whole = True
        try:
            with _sync_errors():
                out = eager()
        except RuntimeError as e:
            if "synchroniz" not in str(e).lower():
                raise
            whole = False
            out = eager()
        self.stats["eager"] += 1
        entry = self._capture(D, x_t, s_max, ctx, update, whole)
        if entry is not None:
            check = self._replay(entry, x_t, ctx, s_max)
            tol = 1e-3 if x_t.dtype == torch.float32 else 2e-2
            if not torch.allclose(check, out, rtol=tol, atol=tol):
                log.warning("CUDA graph of %s at batch %s disagrees with the eager loop (max |diff| %.3g); "
                            "running this shape eagerly", kind, tuple(x_t.shape),
                            float((check - out).abs().max()))
                entry = None
        if entry is None:
            self.stats["refused"] += 1
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return out

    def _replay(self, entry: _Entry, x_t: torch.Tensor, ctx: Any, s_max: int) -> torch.Tensor:
        entry.load(x_t, ctx)
        for s in range(s_max, 0, -1):
            if entry.whole:
                entry.graphs[s].replay()
            else:
                entry.t.fill_(s)
                entry.graphs[0].replay()
                entry.x.copy_(entry.update(entry.x, entry.x0_hat, s, entry.ctx))
        entry.replays += 1
        self.stats["replayed"] += 1
        return entry.x

    def _capture(self, D, x_t: torch.Tensor, s_max: int, ctx: Any, update: Callable, whole: bool) -> Optional[_Entry]:
        entry = _Entry(x_t, ctx, whole)
        entry.update = update
        B, dev = x_t.shape[0], x_t.device
        pool = torch.cuda.graph_pool_handle()

        def whole_step(s: int) -> None:
            x0_hat = self.R(entry.x, torch.full((B,), s, dtype=torch.long, device=dev)).to(entry.x.dtype)
            entry.x.copy_(update(entry.x, x0_hat, s, entry.ctx))

        def network_step() -> None:
            entry.x0_hat.copy_(self.R(entry.x, entry.t).to(entry.x.dtype))

        try:
            # one warm-up call on a side stream, as torch.cuda.graph's documentation asks
            side = torch.cuda.Stream(device=dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                entry.t.fill_(s_max)
                network_step()
            torch.cuda.current_stream(dev).wait_stream(side)
            if whole:
                for s in range(s_max, 0, -1):  # replayed in this order, so one pool serves all
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g, pool=pool):
                        whole_step(s)
                    entry.graphs[s] = g
                self.stats["captured_whole"] += 1
            else:
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, pool=pool):
                    network_step()
                entry.graphs[0] = g
                self.stats["captured_network"] += 1
            torch.cuda.synchronize(dev)
        except RuntimeError as e:  # something in R or D cannot be recorded: eager for this key
            log.warning("could not capture a CUDA graph of the sampling loop at batch %s (%s); running it eagerly",
                        tuple(x_t.shape), str(e).splitlines()[0] if str(e) else type(e).__name__)
            with contextlib.suppress(Exception):
                torch.cuda.synchronize(dev)
            return None
        return entry

"""Training-step benchmark: what ``train()`` adds to the bare network step.

For the small CPU presets (``mnist5k-*``) and at the sizes of ``cifar10-blur`` and
``celeba-blur`` (their presets' networks), this measures

* the FULL training step as ``train()`` does it: the learning rate of the step (``lr_at``),
  then for each of the preset's ``grad_accum`` micro-batches the next batch of a
  ``BatchStream`` (the preset's real training set when it is here, else random images of
  the right shape: "synthetic data"), moved to the device, ``degrade_batch`` (t ~ U{1..T},
  a fresh context, the closed form ``D(x0, t)``), forward (under autocast for bfloat16, as
  ``train.precision=bf16`` does), L1 loss, backward; then the loss read back (``float``:
  the NaN check), gradient clipping when the preset sets it, the Adam step,
  ``zero_grad(set_to_none=True)`` and an EMA update (``_update_ema(..., reset=False)``, at
  every step, whatever the preset's ``ema_every``: the conservative case);
* the BARE network step on the same already-degraded batches: forward + L1 + backward for
  the same micro-batches, gradient clipping when the preset sets it (part of the optimizer
  update, not of the loop around it), the Adam step and ``zero_grad(set_to_none=True)``;
  no data, no degradation, no loss read-back, no EMA;
* the same full step with the degradation applied step by step
  (``degrade_batch(..., stepwise=True)``, the authors' O(T) way).

overhead = (full - bare) / bare; target <= 10 %.  Each part of the overhead (data,
degradation, step-by-step degradation, EMA update, gradient clipping) is also timed on its
own and reported as a share of the bare step.

    python -m benchmarks.training [--quick] [--device cpu|cuda] [--dtype float32|bfloat16]
                                  [--out PATH] [--markdown] [--presets NAME,...]

Timing: warm-up steps first (not timed: Adam state, degradation caches, allocator), then
the median of N timed steps of each kind measured with ``time.perf_counter``
(``torch.cuda.synchronize()`` before each clock read on CUDA).  Full, bare and stepwise
steps are interleaved, all six orders in turn (so each kind follows each other kind equally
often), so that drifts in machine load hit all three alike.  Each kind trains its own
model/optimizer/EMA copy, initialised identically, so no state leaks from one to another;
the full and stepwise steps read the same images and draw the same t (same data order
and generator seed), and the bare step reuses the degraded micro-batches of the latest
full step.  On the CPU the full-size
networks are slow: few timed steps there, and celeba-blur runs with a smaller batch (the
table says so).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import math
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from benchmarks.common import finish, machine_meta, pick_presets, sync
import torch.nn.functional as F

from colddiff import data as data_mod
from colddiff.presets import preset as get_preset
from colddiff import speed
from colddiff.training import BatchStream, _update_ema, degrade_batch, lr_at

NAME = "training"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "training.json"
OVERHEAD_TARGET = 0.10
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RowSpec:
    preset: str
    big: bool                       # a full-size network: few timed steps on the CPU
    cpu_batch: Optional[int] = None  # smaller micro-batch on the CPU (None: the preset's)
    quick: bool = True              # part of the --quick run


ROWS: List[RowSpec] = [
    RowSpec("mnist5k-blur", big=False),
    RowSpec("mnist5k-inpaint", big=False),
    RowSpec("mnist5k-sr", big=False),
    RowSpec("cifar10-blur", big=True, quick=False),
    RowSpec("celeba-blur", big=True, cpu_batch=4, quick=False),
]


@dataclass
class Options:
    device: torch.device
    dtype: torch.dtype
    quick: bool
    seed: int
    warmup_small: int
    timed_small: int
    warmup_big: int
    timed_big: int
    timed_big_cpu: int
    component_reps_small: int
    component_reps_big: int


def steps_for(spec: RowSpec, opts: Options) -> Tuple[int, int, int]:
    """(warm-up rounds, timed rounds, component repeats) of a row."""
    if not spec.big:
        return opts.warmup_small, opts.timed_small, opts.component_reps_small
    if opts.device.type == "cpu":
        return 1, opts.timed_big_cpu, opts.component_reps_big
    return opts.warmup_big, opts.timed_big, opts.component_reps_big


# ---------------------------------------------------------------------------- timing
def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of ``fn`` (synchronised on CUDA)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


class SyntheticImages:
    """Random images in [-1, 1] shaped like the data set's, held as one tensor like TensorImages."""

    def __init__(self, n: int, C: int, H: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, C, H, H, generator=g) * 2 - 1

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], -1


def load_data(cfg, n_synthetic: int, seed: int) -> Tuple[Any, str, Optional[str]]:
    """(dataset, source label, reason it is synthetic) — the real training set when it is here."""
    try:
        ds = data_mod.load(cfg.data.name, "train", root=cfg.data.root or None,
                           image_size=cfg.data.image_size, channels=cfg.data.channels, download=False)
        return ds, f"{cfg.data.name} train ({len(ds):,})", None
    except Exception as e:  # not here (or its package is missing): random images of the right shape
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return (SyntheticImages(n_synthetic, cfg.data.channels, cfg.data.image_size, seed),
                "synthetic data", reason)


class Trainer:
    """One model / optimizer / EMA / data stream / generator: the state of one kind of step.

    The speed settings come from ``cfg.train`` as in ``train()``: ``channels_last``, ``fused_adam``
    (auto: fused on CUDA) and ``compile`` (the network and L1 loss compiled together), with
    ``dtype`` the autocast of the network.
    """

    def __init__(self, cfg, base_model: torch.nn.Module, ds, device: torch.device, seed: int,
                 dtype: torch.dtype = torch.float32):
        tr = cfg.train
        self.cfg, self.device = cfg, device
        self.model = copy.deepcopy(base_model).to(device).train()
        self.ema = copy.deepcopy(base_model).to(device)
        self.ema.requires_grad_(False).eval()
        if tr.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.ema.to(memory_format=torch.channels_last)
        self.opt = speed.make_adam(self.model.parameters(), tr.lr, device, tr.fused_adam)
        self.stream = BatchStream(ds, tr.batch_size, seed, device=device)
        self.gen = torch.Generator(device=device).manual_seed(seed * 7919 + 17)
        self.loss_fn = speed.compiled_loss(self.model, tr.compile, make_autocast(device, dtype), tr.channels_last)
        self.acc = speed.LossAccumulator(device)
        self.step = 0


def make_autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def full_step(s: Trainer, D, dtype: torch.dtype, stepwise: bool, record: Optional[list] = None):
    """One optimizer step as train() does it (see the module docstring); returns the loss (a float on
    the CPU; on CUDA the device tensor: train() reads it back only at log and checkpoint steps)."""
    cfg, tr, dev = s.cfg, s.cfg.train, s.device
    lr = lr_at(cfg, s.step)
    for group in s.opt.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=dev)
    if record is not None:
        record.clear()
    for _ in range(tr.grad_accum):
        x0 = s.stream.next().to(dev, non_blocking=True)
        x_t, t = degrade_batch(D, x0, s.gen, stepwise=stepwise)
        loss = s.loss_fn(x_t, t, x0) / tr.grad_accum
        loss.backward()
        loss_sum += loss.detach()
        if record is not None:
            record.append((x_t, t, x0))
    s.acc.add(loss_sum, s.step + 1)
    loss_value = loss_sum
    if dev.type != "cuda":  # as train(): read back at every step only where that costs nothing
        loss_value = float(loss_sum)
        if not math.isfinite(loss_value):
            raise RuntimeError(f"non-finite loss {loss_value} at benchmark step {s.step + 1}")
    if tr.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), tr.grad_clip)
    s.opt.step()
    s.opt.zero_grad(set_to_none=True)
    s.step += 1
    _update_ema(s.ema, s.model, tr.ema_decay, reset=False)
    return loss_value


def bare_step(s: Trainer, batches: list, dtype: torch.dtype) -> None:
    """Forward + L1 + backward on already-degraded micro-batches, (clip,) Adam step."""
    tr, dev = s.cfg.train, s.device
    for x_t, t, x0 in batches:
        with make_autocast(dev, dtype):
            x0_hat = s.model(x_t, t)
        loss = F.l1_loss(x0_hat.float(), x0) / tr.grad_accum
        loss.backward()
    if tr.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), tr.grad_clip)
    s.opt.step()
    s.opt.zero_grad(set_to_none=True)
    s.step += 1


# ---------------------------------------------------------------------------- one row
def bench_row(spec: RowSpec, opts: Options, progress: bool = True) -> Dict[str, Any]:
    dev, dt = opts.device, opts.dtype
    cfg = get_preset(spec.preset)
    tr = cfg.train
    notes: List[str] = []
    preset_batch = tr.batch_size
    if dev.type == "cpu" and spec.cpu_batch is not None and spec.cpu_batch < tr.batch_size:
        tr.batch_size = spec.cpu_batch
        notes.append(f"batch {spec.cpu_batch} on CPU (preset {preset_batch})")
    B, A = tr.batch_size, tr.grad_accum
    H, C = cfg.data.image_size, cfg.data.channels
    warmup, n_timed, comp_reps = steps_for(spec, opts)
    ds, source, synth_reason = load_data(cfg, n_synthetic=max(B * A * 8, 64), seed=opts.seed)
    D = cfg.build_degradation()
    torch.manual_seed(opts.seed)
    base = cfg.build_model()
    n_params = sum(p.numel() for p in base.parameters())
    row: Dict[str, Any] = {
        "preset": spec.preset, "size": H, "C": C, "T": D.T, "batch": B, "preset_batch": preset_batch,
        "grad_accum": A, "images_per_step": B * A, "params": n_params, "grad_clip": tr.grad_clip,
        "ema_every_preset": tr.ema_every, "data_source": source, "synthetic": synth_reason is not None,
        "synthetic_reason": synth_reason, "warmup_rounds": warmup, "timed_rounds": n_timed,
        "status": "ok", "notes": notes,
    }
    if tr.ema_every != 1:
        notes.append(f"EMA every step (preset: every {tr.ema_every})")
    if tr.grad_clip > 0:
        notes.append(f"grad clip {tr.grad_clip:g} in full and bare")

    torch.manual_seed(opts.seed + 1)  # dropout etc.
    kinds = {k: Trainer(cfg, base, ds, dev, opts.seed, dt) for k in ("full", "bare", "stepwise")}
    del base
    batches: list = []  # degraded micro-batches of the latest full step, reused by the bare step
    times: Dict[str, List[float]] = {k: [] for k in kinds}
    losses: Dict[str, List[float]] = {"full": [], "stepwise": []}

    def run_kind(kind: str) -> float:
        s = kinds[kind]
        if kind == "full":
            return timed(lambda: losses["full"].append(full_step(s, D, dt, False, batches)), dev)
        if kind == "stepwise":
            return timed(lambda: losses["stepwise"].append(full_step(s, D, dt, True)), dev)
        return timed(lambda: bare_step(s, batches, dt), dev)

    # All six orders in turn, so that each kind follows each other kind equally often (a plain
    # rotation would always run full right after stepwise).  Round 0 starts with full: the bare
    # step needs its batches.
    orders = list(itertools.permutations(["full", "bare", "stepwise"]))
    t_row = time.perf_counter()
    for r in range(warmup + n_timed):
        for kind in orders[r % len(orders)]:
            sec = run_kind(kind)
            if r >= warmup:
                times[kind].append(sec)
        if progress:
            tag = "warm-up" if r < warmup else "timed"
            print(f"    {spec.preset}: round {r + 1}/{warmup + n_timed} ({tag}) "
                  f"{time.perf_counter() - t_row:6.1f} s", file=sys.stderr, flush=True)

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    bare, full, stepw = med["bare"], med["full"], med["stepwise"]
    pair = [(f - b) / b for f, b in zip(times["full"], times["bare"])]
    row.update(
        bare_ms=bare, full_ms=full, stepwise_ms=stepw,
        overhead=(full - bare) / bare, stepwise_overhead=(stepw - bare) / bare,
        overhead_paired_median=statistics.median(pair),
        images_per_s=B * A / (full / 1e3),
        target_met=bool((full - bare) / bare <= OVERHEAD_TARGET),
        samples_ms={k: [v * 1e3 for v in vs] for k, vs in times.items()},
        final_losses={k: float(v[-1]) for k, v in losses.items()},
    )

    # -- the parts of the overhead, each timed on its own (median of comp_reps), per optimizer step
    comp = component_times(cfg, D, ds, kinds, dt, dev, comp_reps, opts.seed)
    row["components_ms"] = comp
    row["components_share_of_bare"] = {k: (v / bare if v is not None else None) for k, v in comp.items()}
    row["component_reps"] = comp_reps
    row["overhead_from_parts"] = (comp["data"] + comp["degrade"] + comp["ema"]) / bare
    row["stepwise_overhead_from_parts"] = (comp["data"] + comp["degrade_stepwise"] + comp["ema"]) / bare
    sb = times["bare"]
    row["bare_spread"] = (max(sb) - min(sb)) / statistics.median(sb) if len(sb) > 1 else None
    if spec.big and row["bare_spread"] is not None:
        notes.append(f"bare steps {min(sb):.1f}-{max(sb):.1f} s")
    ema_share = comp["ema"] / bare
    if ema_share > OVERHEAD_TARGET:
        notes.append(f"EMA update alone {comp['ema']:.3g} ms = {ema_share:.0%} of bare")
    return row


def component_times(cfg, D, ds, kinds, dt, dev, reps: int, seed: int) -> Dict[str, Optional[float]]:
    """Per optimizer step (all micro-batches): data, closed-form and stepwise degradation, EMA, clip (ms)."""
    tr = cfg.train
    A = tr.grad_accum
    stream = BatchStream(ds, tr.batch_size, seed + 12345)
    gen = torch.Generator(device=dev).manual_seed(seed + 4242)
    x0s = [stream.next().to(dev) for _ in range(A)]

    def data():
        for _ in range(A):
            stream.next().to(dev, non_blocking=True)

    def degrade(stepwise: bool):
        def f():
            for x0 in x0s:
                degrade_batch(D, x0, gen, stepwise=stepwise)
        return f

    s = kinds["full"]

    def ema():
        _update_ema(s.ema, s.model, tr.ema_decay, reset=False)

    out: Dict[str, Optional[float]] = {}
    for name, fn, n in (("data", data, reps), ("degrade", degrade(False), reps),
                        ("degrade_stepwise", degrade(True), max(1, min(reps, 3))), ("ema", ema, reps)):
        fn()  # warm
        out[name] = statistics.median(timed(fn, dev) for _ in range(n)) * 1e3
    out["clip"] = None
    if tr.grad_clip > 0:  # gradients of one bare-like backward, clipped, then dropped
        b = kinds["bare"]
        x_t, t = degrade_batch(D, x0s[0], gen)
        with make_autocast(dev, dt):
            loss = F.l1_loss(b.model(x_t, t).float(), x0s[0])
        loss.backward()
        clip = lambda: torch.nn.utils.clip_grad_norm_(b.model.parameters(), tr.grad_clip)  # noqa: E731
        clip()
        out["clip"] = statistics.median(timed(clip, dev) for _ in range(reps)) * 1e3
        b.opt.zero_grad(set_to_none=True)
    return out


# ---------------------------------------------------------------------------- tables
COLUMNS = ["preset", "image size", "C", "T", "batch x accum", "params", "bare step ms", "full step ms",
           "overhead %", "stepwise full step ms", "stepwise overhead %", "images/s (full)", "data source",
           "target met", "EMA ms (% bare)", "parts %", "notes"]
COMP_COLUMNS = ["preset", "bare step ms", "data ms", "degrade ms", "stepwise degrade ms", "EMA ms",
                "clip ms", "data %", "degrade %", "stepwise degrade %", "EMA %", "clip %"]


def _ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{v * 100:+.1f}"


def _rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def _params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def table_cells(row: Dict[str, Any]) -> List[str]:
    ok = row.get("bare_ms") is not None
    comp = row.get("components_ms") or {}
    ema = (f"{_ms(comp['ema'])} ({comp['ema'] / row['bare_ms'] * 100:.1f})"
           if ok and comp.get("ema") is not None else "-")
    n_timed = row.get("timed_rounds")
    notes = list(row.get("notes", []))
    if ok:
        notes.append(f"median of {n_timed} timed step{'s' if n_timed != 1 else ''}")
    if row["status"] != "ok":
        notes.append(f"[{row['status']}] {row.get('problem', '')}")
    return [
        row["preset"], f"{row['size']}x{row['size']}", str(row["C"]), str(row.get("T", "-")),
        f"{row['batch']} x {row['grad_accum']}", _params(row["params"]) if row.get("params") else "-",
        _ms(row.get("bare_ms")), _ms(row.get("full_ms")), _pct(row.get("overhead")),
        _ms(row.get("stepwise_ms")), _pct(row.get("stepwise_overhead")),
        _rate(row["images_per_s"]) if ok else "-", row.get("data_source", "-"),
        ("yes" if row["target_met"] else "NO") if ok else "-", ema,
        _pct(row.get("overhead_from_parts")), "; ".join(notes),
    ]


def comp_cells(row: Dict[str, Any]) -> List[str]:
    c, sh = row["components_ms"], row["components_share_of_bare"]
    keys = ["data", "degrade", "degrade_stepwise", "ema", "clip"]
    return ([row["preset"], _ms(row["bare_ms"])] + [_ms(c[k]) for k in keys]
            + ["-" if sh[k] is None else f"{sh[k] * 100:.1f}" for k in keys])


def _render(columns: List[str], rows: List[List[str]], numeric: set, markdown: bool) -> List[str]:
    if markdown:
        lines = ["| " + " | ".join(columns) + " |",
                 "|" + "|".join("---:" if i in numeric else "---" for i in range(len(columns))) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return lines
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) if rows else len(columns[i])
              for i in range(len(columns))]

    def fmt(cells: List[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in numeric else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    return [fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    head = (f"Training step, full (as train() does it) vs bare network step: {meta['device_name']} "
            f"({meta['device']}, {meta['threads']} threads), {meta['dtype']}"
            f"{' (autocast)' if meta['dtype'] != 'float32' else ''}, torch {meta['torch']}, {meta['date']}"
            + (" [quick]" if meta["quick"] else ""))
    lines = [f"**{head}**", ""] if markdown else [head]
    lines += _render(COLUMNS, [table_cells(r) for r in result["rows"]], set(range(2, 12)) | {14, 15}, markdown)
    comp_rows = [comp_cells(r) for r in result["rows"] if r.get("components_ms")]
    if comp_rows:
        lines += ["", ("**" if markdown else "") + "Parts of the overhead, each timed on its own per optimizer "
                  "step (all micro-batches), % of the bare step" + ("**" if markdown else "")]
        if markdown:
            lines.append("")
        lines += _render(COMP_COLUMNS, comp_rows, set(range(1, 12)), markdown)
    lines.append("")
    lines.append(f"overhead = (full - bare) / bare, target <= {OVERHEAD_TARGET:.0%}; full = data + degrade_batch "
                 f"+ fwd + L1 + bwd per micro-batch, loss read-back, (clip,) Adam, zero_grad, EMA every step; "
                 f"bare = fwd + L1 + bwd on the same degraded batches, (clip,) Adam, zero_grad; stepwise = full "
                 f"with degrade_batch(stepwise=True). Medians; full/bare/stepwise interleaved. "
                 f"parts % = (data + degrade + EMA, each timed on its own) / bare: the overhead expected "
                 f"from its parts, a check where step-to-step noise is larger than the overhead.")
    lines.append(f"Total runtime {meta['total_runtime_s']:.1f} s.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run
def run(opts: Options, presets: Optional[List[str]] = None, progress: bool = True) -> Dict[str, Any]:
    start = time.perf_counter()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    specs = [s for s in ROWS if (s.quick or not opts.quick) and (not presets or s.preset in presets)]
    if opts.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as train() sets them on CUDA
        torch.backends.cudnn.allow_tf32 = True
    rows = []
    for i, spec in enumerate(specs):
        t0 = time.perf_counter()
        try:
            row = bench_row(spec, opts, progress)
        except Exception as e:  # a broken row says so; the others still run
            row = {"preset": spec.preset, "size": 0, "C": 0, "T": "-", "batch": 0, "grad_accum": 0,
                   "params": 0, "status": "error", "notes": [], "problem": f"ERROR {type(e).__name__}: {e}",
                   "traceback": traceback.format_exc()}
            try:
                cfg = get_preset(spec.preset)
                row.update(size=cfg.data.image_size, C=cfg.data.channels, batch=cfg.train.batch_size,
                           grad_accum=cfg.train.grad_accum)
            except Exception:
                pass
        row["row_seconds"] = time.perf_counter() - t0
        rows.append(row)
        if opts.device.type == "cuda":
            torch.cuda.empty_cache()
        if progress:
            print(f"[{i + 1}/{len(specs)}] {spec.preset:<16} {row['status']:<6} {row['row_seconds']:6.1f} s",
                  file=sys.stderr, flush=True)
    meta = {
        **machine_meta(NAME, opts.device, opts.dtype, date),
        "precision": "fp32" if opts.dtype == torch.float32 else "bf16 autocast (train.precision=bf16)",
        "quick": opts.quick,
        "seed": opts.seed,
        "presets": [s.preset for s in specs],
        "timing": {"warmup_small": opts.warmup_small, "timed_small": opts.timed_small,
                   "warmup_big": 1 if opts.device.type == "cpu" else opts.warmup_big,
                   "timed_big": opts.timed_big_cpu if opts.device.type == "cpu" else opts.timed_big,
                   "component_reps_small": opts.component_reps_small,
                   "component_reps_big": opts.component_reps_big,
                   "statistic": "median", "interleaved": "full, bare, stepwise; the six orders in turn, one per round",
                   "ema": "every step, reset=False"},
        "overhead_target": OVERHEAD_TARGET,
        "total_runtime_s": time.perf_counter() - start,
    }
    failures = [r for r in rows if r["status"] == "error"]
    return {"meta": meta, "rows": rows, "ok": not failures,
            "failures": [f"{r['preset']}: {r['problem']}" for r in failures],
            "target_missed": [f"{r['preset']}: overhead {r['overhead'] * 100:.1f} %"
                              for r in rows if r.get("target_met") is False]}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="only the three CPU presets, few steps (< 60 s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                   help="float32, or bfloat16 = autocast mixed precision as train.precision=bf16 (default float32)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    p.add_argument("--markdown", action="store_true", help="also print the tables in Markdown")
    p.add_argument("--presets", help="comma-separated rows: " + ", ".join(s.preset for s in ROWS))
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps of each kind for the small presets (default 30, quick 6; CUDA 30, quick 10)")
    p.add_argument("--seed", type=int, default=0)
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.training: --device cuda but CUDA is not available")
    q, cuda = args.quick, device.type == "cuda"
    timed_small = args.steps if args.steps is not None else ((10 if q else 30) if cuda else (6 if q else 30))
    return Options(
        device=device, dtype=DTYPES[args.dtype], quick=q, seed=args.seed,
        warmup_small=(5 if cuda else 3) if q else (10 if cuda else 5), timed_small=timed_small,
        warmup_big=3, timed_big=10, timed_big_cpu=3,
        component_reps_small=(10 if q else 20) if cuda else (5 if q else 10),
        component_reps_big=10 if cuda else 2)


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run, print the table(s), write the JSON; return the result."""
    args = parser().parse_args(argv)
    opts = options_from_args(args)
    result = run(opts, pick_presets(args.presets, ROWS))
    return finish(result, format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Training-step benchmark: what ``train()`` adds to the bare network step.

For the small CPU presets (``mnist5k-*``) and at the sizes of ``cifar10-blur`` and
``celeba-blur`` (their presets' networks), this measures

* the FULL training step: ``colddiff.training.train_step``, the function ``train()`` calls
  (``benchmarks.common.full_step``): the learning rate of the step, then for each of the
  preset's ``grad_accum`` micro-batches the next batch of a ``BatchStream`` (the preset's
  real training set when it is here, else random images of the right shape: "synthetic
  data"), moved to the device, ``degrade_batch`` (t ~ U{1..T}, a fresh context, the closed
  form ``D(x0, t)``, the preset's input noise), forward (under autocast for bfloat16, as
  ``train.precision=bf16`` does), L1 loss, backward; gradient clipping when the preset sets
  it, the Adam step, ``zero_grad(set_to_none=True)`` and an EMA update; then, as ``train()``,
  the loss added on the device and read back (the NaN check) on a CPU.  The EMA is updated
  at every step (``ema_every=1``, ``ema_start=0``), whatever the preset says: the
  conservative case;
* the BARE network step on the same already-degraded batches: the same compiled loss
  (forward + L1) + backward for the same micro-batches, gradient clipping when the preset
  sets it (part of the optimizer update, not of the loop around it), the Adam step and
  ``zero_grad(set_to_none=True)``; no data, no degradation, no loss read-back, no EMA;
* the same full step with the degradation applied step by step (``D`` wrapped in
  ``benchmarks.common.Stepwise``: ``apply_stepwise``, the authors' O(T) way).

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
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.common import (BenchOptions, DTYPES, PRECISION, Stepwise, SyntheticImages, add_options, device_of,
                               finish, full_step, heading, machine_meta, ms, overhead_result, param_count, pct,
                               pick_presets, rate, render, run_rows, step_parts, subheading, timed)

from colddiff import data as data_mod
from colddiff import speed
from colddiff.presets import preset as get_preset
from colddiff.objective import degrade_batch
from colddiff.training import BatchStream, _update_ema

NAME = "training"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "training.json"
OVERHEAD_TARGET = 0.10


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
class Options(BenchOptions):
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


def recorded(loss_fn, batches: list):
    """``loss_fn`` that also keeps its inputs (x_t, t, x0): the degraded micro-batches the bare step reuses."""
    def f(x_t, t, x0):
        batches.append((x_t, t, x0))
        return loss_fn(x_t, t, x0)
    return f


def bare_step(s, cfg, batches: list) -> None:
    """Forward + L1 + backward on already-degraded micro-batches, (clip,) Adam step, ``zero_grad``."""
    tr = cfg.train
    for x_t, t, x0 in batches:
        loss = s.loss_fn(x_t, t, x0) / tr.grad_accum
        loss.backward()
    if tr.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), tr.grad_clip)
    s.opt.step()
    s.opt.zero_grad(set_to_none=True)


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
    # the conservative case: an EMA update (lerp, not the plain copy before ema_start) at every step
    tr.ema_every, tr.ema_start = 1, 0
    tr.precision = PRECISION[dt]
    if tr.grad_clip > 0:
        notes.append(f"grad clip {tr.grad_clip:g} in full and bare")

    torch.manual_seed(opts.seed + 1)  # dropout etc.
    # full and stepwise: colddiff.training.train_step itself, on the same images and t; stepwise with
    # D applied step by step.  Each kind has its own model, optimizer, EMA and data stream.
    kinds = {k: step_parts(cfg, base, ds, Stepwise(D) if k == "stepwise" else D, dev, opts.seed)
             for k in ("full", "bare", "stepwise")}
    del base
    batches: list = []  # degraded micro-batches of the latest full step, reused by the bare step
    kinds["full"].loss_fn = recorded(kinds["full"].loss_fn, batches)
    done = dict.fromkeys(kinds, 0)  # optimizer steps taken by each kind
    accs = {k: speed.LossAccumulator(dev) for k in kinds}
    times: Dict[str, List[float]] = {k: [] for k in kinds}
    losses: Dict[str, List[Any]] = {"full": [], "stepwise": []}

    def one_step(kind: str) -> None:
        if kind == "bare":
            bare_step(kinds[kind], cfg, batches)
        else:
            if kind == "full":
                batches.clear()
            losses[kind].append(full_step(cfg, done[kind], kinds[kind], accs[kind]))
        done[kind] += 1

    def run_kind(kind: str) -> float:
        return timed(lambda: one_step(kind), dev)[0]

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
    comp = component_times(cfg, D, ds, kinds, dev, comp_reps, opts.seed)
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


def component_times(cfg, D, ds, kinds, dev, reps: int, seed: int) -> Dict[str, Optional[float]]:
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
                degrade_batch(Stepwise(D) if stepwise else D, x0, gen, input_noise=cfg.degradation.input_noise)
        return f

    s = kinds["full"]

    def ema():
        _update_ema(s.ema, s.model, tr.ema_decay, reset=False)

    out: Dict[str, Optional[float]] = {}
    for name, fn, n in (("data", data, reps), ("degrade", degrade(False), reps),
                        ("degrade_stepwise", degrade(True), max(1, min(reps, 3))), ("ema", ema, reps)):
        fn()  # warm
        out[name] = statistics.median(timed(fn, dev)[0] for _ in range(n)) * 1e3
    out["clip"] = None
    if tr.grad_clip > 0:  # gradients of one bare-like backward, clipped, then dropped
        b = kinds["bare"]
        x_t, t = degrade_batch(D, x0s[0], gen)
        b.loss_fn(x_t, t, x0s[0]).backward()
        clip = lambda: torch.nn.utils.clip_grad_norm_(b.model.parameters(), tr.grad_clip)  # noqa: E731
        clip()
        out["clip"] = statistics.median(timed(clip, dev)[0] for _ in range(reps)) * 1e3
        b.opt.zero_grad(set_to_none=True)
    return out


# ---------------------------------------------------------------------------- tables
COLUMNS = ["preset", "image size", "C", "T", "batch x accum", "params", "bare step ms", "full step ms",
           "overhead %", "stepwise full step ms", "stepwise overhead %", "images/s (full)", "data source",
           "target met", "EMA ms (% bare)", "parts %", "notes"]
COMP_COLUMNS = ["preset", "bare step ms", "data ms", "degrade ms", "stepwise degrade ms", "EMA ms",
                "clip ms", "data %", "degrade %", "stepwise degrade %", "EMA %", "clip %"]


def table_cells(row: Dict[str, Any]) -> List[str]:
    ok = row.get("bare_ms") is not None
    comp = row.get("components_ms") or {}
    ema = (f"{ms(comp['ema'])} ({comp['ema'] / row['bare_ms'] * 100:.1f})"
           if ok and comp.get("ema") is not None else "-")
    n_timed = row.get("timed_rounds")
    notes = list(row.get("notes", []))
    if ok:
        notes.append(f"median of {n_timed} timed step{'s' if n_timed != 1 else ''}")
    if row["status"] != "ok":
        notes.append(f"[{row['status']}] {row.get('problem', '')}")
    return [
        row["preset"], f"{row['size']}x{row['size']}", str(row["C"]), str(row.get("T", "-")),
        f"{row['batch']} x {row['grad_accum']}", param_count(row["params"]) if row.get("params") else "-",
        ms(row.get("bare_ms")), ms(row.get("full_ms")), pct(row.get("overhead")),
        ms(row.get("stepwise_ms")), pct(row.get("stepwise_overhead")),
        rate(row["images_per_s"]) if ok else "-", row.get("data_source", "-"),
        ("yes" if row["target_met"] else "NO") if ok else "-", ema,
        pct(row.get("overhead_from_parts")), "; ".join(notes),
    ]


def comp_cells(row: Dict[str, Any]) -> List[str]:
    c, sh = row["components_ms"], row["components_share_of_bare"]
    keys = ["data", "degrade", "degrade_stepwise", "ema", "clip"]
    return ([row["preset"], ms(row["bare_ms"])] + [ms(c[k]) for k in keys]
            + ["-" if sh[k] is None else f"{sh[k] * 100:.1f}" for k in keys])


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    lines = heading("Training step, full (as train() does it) vs bare network step", meta, markdown)
    lines += render(COLUMNS, [table_cells(r) for r in result["rows"]], set(range(2, 12)) | {14, 15}, markdown)
    comp_rows = [comp_cells(r) for r in result["rows"] if r.get("components_ms")]
    if comp_rows:
        lines += subheading("Parts of the overhead, each timed on its own per optimizer step (all micro-batches), "
                            "% of the bare step", markdown)
        lines += render(COMP_COLUMNS, comp_rows, set(range(1, 12)), markdown)
    lines.append("")
    lines.append(f"overhead = (full - bare) / bare, target <= {OVERHEAD_TARGET:.0%}; full = data + degrade_batch "
                 f"+ fwd + L1 + bwd per micro-batch, (clip,) Adam, zero_grad, EMA every step, loss read-back (train_step); "
                 f"bare = fwd + L1 + bwd on the same degraded batches, (clip,) Adam, zero_grad; stepwise = full "
                 f"with D applied step by step. Medians; full/bare/stepwise interleaved. "
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

    def error_row(spec: RowSpec, problem: str) -> Dict[str, Any]:
        row = {"preset": spec.preset, "size": 0, "C": 0, "T": "-", "batch": 0, "grad_accum": 0, "params": 0,
               "notes": []}
        try:
            cfg = get_preset(spec.preset)
            row.update(size=cfg.data.image_size, C=cfg.data.channels, batch=cfg.train.batch_size,
                       grad_accum=cfg.train.grad_accum)
        except Exception:
            pass
        return row

    rows = run_rows(specs, lambda spec: bench_row(spec, opts, progress), error_row, lambda spec: f"{spec.preset:<16}",
                    opts.device, progress)
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
    return overhead_result(meta, rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "only the three CPU presets, few steps (< 60 s)",
                "float32, or bfloat16 = autocast mixed precision as train.precision=bf16 (default float32)")
    p.add_argument("--presets", help="comma-separated rows: " + ", ".join(s.preset for s in ROWS))
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps of each kind for the small presets (default 30, quick 6; CUDA 30, quick 10)")
    p.add_argument("--seed", type=int, default=0)
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    device = device_of(args, "benchmarks.training")
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

"""Sampling benchmark: what Algorithm 2 adds to the T network calls it makes.

For the degradations of the ``mnist5k-blur`` (28 px, 1 channel, T=20), ``mnist5k-inpaint``
(28 px, Gaussian masks with random centres, T=50), ``cifar10-blur`` (32 px, 3 channels,
T=50) and ``celeba-blur`` (128 px, 3 channels, T=200) presets (their exact degradation
settings, from ``colddiff.presets.PRESETS``), with a SMALL restoration network so that a CPU
run takes seconds (the ``mnist-cpu`` U-Net: dim 16, 1-2-2, one res block, attention only in
the middle, 0.3M parameters; at 128 px scaled to dim 8, 1-2-2-2, 0.1M parameters, so that
the middle attention sits at 16x16 as in the paper's networks), this measures

* BARE: T calls of the network on the batch, ``R(x_T, s)`` for s = T..1 (no degradation);
* ALG. 2: ``colddiff.samplers.algorithm2(R, D, x_T, T, ctx)``, the library's sampler, whose
  every step is ``x0_hat = R(x_s, s)``, ``x_{s-1} = x_s - D(x0_hat, s) + D(x0_hat, s-1)``
  with the closed form ``D(x0, t)``;
* STEPWISE ALG. 2: the same sampler with ``D(x0_hat, s)`` computed by ``s`` applications of
  the single-step operator (``apply_stepwise(D, ...)``), the authors' O(T^2) way;

overhead = (Alg. 2 - bare) / bare; target <= 10 % (PASS/FAIL per row).  The update of
Algorithm 2 (the two degradation calls and the arithmetic of every step, without the
network) is also timed on its own, closed form and step by step, and reported per step and
as a share of the bare time ("parts"), a check where run-to-run noise is larger than the
overhead.  The restorer is an untrained network: its cost does not depend on its weights.
``cifar10-snow`` (T=200, a costlier closed form) can be added with ``--presets``.

    python -m benchmarks.sampling [--quick] [--device cpu|cuda] [--dtype float32|bfloat16]
                                  [--out PATH] [--markdown] [--presets NAME,...] [--runs N]
                                  [--step-max S] [--threads N]

A small network is the hard case: the update's cost is fixed by the image size, so its share
shrinks as the network grows (the paper's networks have over 100x more parameters).

Timing: under ``torch.no_grad()``, after a short warm-up (network calls, a 2-step run of each
sampler: caches, allocator), the median of N timed runs of each kind (one stepwise run on the
CPU: its overhead is large), measured with ``time.perf_counter`` (``torch.cuda.synchronize()``
before each clock read on CUDA).  Bare, Alg. 2 and stepwise runs are interleaved, all orders
in turn, so that drifts in machine load hit them alike; on the CPU every Alg. 2 run also
clocks its own network calls, so its overhead is known from within the run too ("in-run",
robust to other work on the machine; a row whose two estimates differ by over 5 points says
"noisy timing").  Where one stepwise run would take longer than ``--step-max`` seconds (the
128 px row on a CPU), it is not run whole: its time is bare + the stepwise updates, timed on
every m-th step and scaled by m (the update's cost grows linearly with the step, so the
strided sum is unbiased), and the row says so (``~``).  ``--dtype bfloat16`` runs the network
under autocast (as ``train.precision=bf16``); images and degradations stay float32.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from benchmarks.common import autocast as autocast_of  # (autocast: the name of a context below)
from benchmarks.common import (BenchOptions, DTYPES, Stepwise, add_options, clean, device_of, finish, graphed_bare,
                               heading, machine_meta, ms, overhead_result, param_count, pct, pick_presets, render,
                               run_rows, subheading, timed)

import colddiff.degradations as deg
from colddiff.networks import unet
from colddiff.presets import preset as get_preset
from colddiff.degradations.base import bview
from colddiff.samplers import algorithm2

NAME = "sampling"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sampling.json"
OVERHEAD_TARGET = 0.10
BASE_NET = "mnist-cpu"


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RowSpec:
    preset: str                     # colddiff.config preset: image size, channels, degradation
    batch: int
    net: Dict[str, Any] = field(default_factory=dict)  # UNet settings changed from BASE_NET
    quick: bool = True              # part of the --quick run
    default: bool = True            # part of the default run (else only with --presets)


ROWS: List[RowSpec] = [
    RowSpec("mnist5k-blur", 32),
    RowSpec("mnist5k-inpaint", 32),
    RowSpec("cifar10-blur", 32, quick=False),
    RowSpec("celeba-blur", 4, net=dict(dim=8, dim_mults=(1, 2, 2, 2)), quick=False),
    RowSpec("cifar10-snow", 32, quick=False, default=False),
]


@dataclass
class Options(BenchOptions):
    rounds: int           # timed runs of each kind (median taken)
    rounds_big: int       # ... for rows whose bare run is long (> big_s)
    big_s: float
    part_reps: int        # repeats of the update-only loops (median taken)
    step_max_s: float     # longest stepwise run made whole; longer ones are estimated
    step_part_budget_s: float  # time budget of the strided stepwise update timing
    stepwise_runs: int    # whole stepwise runs (in the first rounds)
    graphs: bool = False  # CUDA: Alg. 2 replayed from CUDA graphs (colddiff.graphs) vs graphed bare calls


def network_settings(spec: RowSpec, channels: int) -> Dict[str, Any]:
    kw = dict(unet.PRESETS[BASE_NET])
    kw.pop("image_size", None)
    kw.update(spec.net, channels=channels)
    return kw


def network_label(kw: Dict[str, Any], spec: RowSpec) -> str:
    mults = "-".join(str(m) for m in kw["dim_mults"])
    changed = " scaled" if spec.net else ""
    return f"{BASE_NET}{changed} (dim {kw['dim']}, {mults}, {kw['num_res_blocks']} res block)"


# ---------------------------------------------------------------------------- timing
def update_loop(D, x_T: torch.Tensor, x0_hat: torch.Tensor, ctx: Any, steps) -> torch.Tensor:
    """Algorithm 2's update at each step in ``steps``, without the network (x0_hat fixed):
    what ``algorithm2`` does around its ``R`` call, as it does it (all samples active)."""
    x = x_T
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for s in steps:
        bool(active.all())  # the sampler's check, once per step
        x = torch.where(bview(active, x), x - D(x0_hat, s, ctx) + D(x0_hat, s - 1, ctx), x)
    return x


# ---------------------------------------------------------------------------- one row
def bench_row(spec: RowSpec, opts: Options, progress: bool = True) -> Dict[str, Any]:
    dev, dt = opts.device, opts.dtype
    cfg = get_preset(spec.preset)
    H, C = cfg.data.image_size, cfg.data.channels
    B = spec.batch
    D = cfg.build_degradation()
    T = D.T
    notes: List[str] = []
    gen = torch.Generator().manual_seed(opts.seed)
    x0 = (torch.rand(B, C, H, H, generator=gen) * 2 - 1).to(dev)
    ctx = D.context(x0, gen)
    x_T = D(x0, T, ctx)
    kw = network_settings(spec, C)
    torch.manual_seed(opts.seed)
    net = unet.build(kw).to(dev).eval()
    n_params = sum(p.numel() for p in net.parameters())
    autocast = autocast_of(dev, dt)

    def R(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with autocast:
            return net(x, t).float()

    SD = Stepwise(D)
    row: Dict[str, Any] = {
        "preset": spec.preset, "degradation": deg.describe(D), "family": D.name, "size": H, "C": C, "T": T,
        "batch": B, "network": network_label(kw, spec), "network_settings": clean(dict(kw)),
        "params": n_params, "data": "random images in [-1, 1], x_T = D(x0, T)", "status": "ok",
        "notes": notes,
    }

    def bare() -> None:
        for s in range(T, 0, -1):
            R(x_T, torch.full((B,), s, dtype=torch.long, device=dev))

    # On the CPU the Alg. 2 runs also clock their own R calls: the time outside them is the
    # sampler's overhead measured within the same run, immune to drifts in machine load.  (On
    # CUDA that would need a synchronisation per call, which changes what is timed: not done.)
    split_R = dev.type == "cpu"
    acc = [0.0]

    def R_clocked(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = R(x, t)
        acc[0] += time.perf_counter() - t0
        return out

    kinds: Dict[str, Callable[[], Any]] = {
        "bare": bare,
        "alg2": lambda: algorithm2(R_clocked if split_R else R, D, x_T, T, ctx),
        "stepwise": lambda: algorithm2(R, SD, x_T, T, ctx),
    }
    if opts.graphs and dev.type == "cuda":
        # the sampler's loop replayed from CUDA graphs, against T network calls replayed from one graph
        from colddiff.graphs import GraphedRestorer

        G = GraphedRestorer(R)
        x_bare = x_T.clone()
        kinds["bare"] = graphed_bare(R, x_bare, T, T)
        kinds["alg2"] = lambda: algorithm2(G, D, x_T, T, ctx)
        algorithm2(G, D, x_T, T, ctx)  # first call: eager pass, capture, check
        row["graphs"] = True
        notes.append("CUDA graphs: Alg. 2 replayed (colddiff.graphs) vs bare calls replayed from one graph")

    # -- warm-up: network, both samplers on 2 steps (degradation caches, allocator)
    for _ in range(2):
        R(x_T, torch.full((B,), T, dtype=torch.long, device=dev))
    algorithm2(R, D, x_T, min(2, T), ctx)
    algorithm2(R, SD, x_T, min(2, T), ctx)
    x0_hat = R(x_T, torch.full((B,), T, dtype=torch.long, device=dev))
    first_update_s = timed(lambda: update_loop(D, x_T, x0_hat, ctx, range(T, 0, -1)), dev)[0]

    # -- the update alone (no network): closed form, all T steps, median of part_reps (3 if slow)
    reps = opts.part_reps if first_update_s < 0.5 else min(opts.part_reps, 3)
    upd = [timed(lambda: update_loop(D, x_T, x0_hat, ctx, range(T, 0, -1)), dev)[0] for _ in range(reps)]
    update_ms = statistics.median(upd) * 1e3

    # -- stepwise update: one step costs ~ (2s - 1) single steps; whole T-step loop ~ T^2 of them
    one_step_s = statistics.median(timed(lambda: deg.apply_stepwise(D, x0_hat, 1, ctx), dev)[0] for _ in range(3))
    step_est_s = T * T * one_step_s
    stepwise_whole = step_est_s <= opts.step_max_s
    if stepwise_whole:
        m = 1
    else:  # every m-th step (m strides through the T steps, offset to the middle of each stride)
        m = max(2, min(T, int(step_est_s // max(opts.step_part_budget_s, 1e-3)) + 1))
    sampled = list(range(T - m // 2, 0, -m)) if m > 1 else list(range(T, 0, -1))
    step_update_s = timed(lambda: update_loop(SD, x_T, x0_hat, ctx, sampled), dev)[0]  # once: it is slow
    step_update_ms = step_update_s * 1e3 * (T / len(sampled))
    if not stepwise_whole:
        notes.append(f"stepwise ~ bare + stepwise updates timed on {len(sampled)} of {T} steps "
                     f"x {T / len(sampled):.1f} (a whole run would take ~{step_est_s:.0f} s + bare)")

    # -- the timed runs, interleaved, all orders in turn; the (slow) stepwise runs in the first rounds
    orders2 = list(itertools.permutations(["bare", "alg2"]))
    orders3 = list(itertools.permutations(["bare", "alg2", "stepwise"]))
    bare_guess = timed(lambda: R(x_T, torch.full((B,), T, dtype=torch.long, device=dev)), dev)[0] * T
    n_rounds = opts.rounds_big if bare_guess > opts.big_s else opts.rounds
    n_step = min(n_rounds, opts.stepwise_runs) if stepwise_whole else 0
    names = ["bare", "alg2"] + (["stepwise"] if n_step else [])
    times: Dict[str, List[float]] = {k: [] for k in names}
    in_R: List[float] = []  # seconds spent inside R during each Alg. 2 run (CPU only)
    outs: Dict[str, torch.Tensor] = {}
    t_row = time.perf_counter()
    for r in range(n_rounds):
        order = orders3[r % len(orders3)] if r < n_step else orders2[r % len(orders2)]
        for kind in order:
            if kind == "alg2" and split_R:
                acc[0] = 0.0
            sec, out = timed(kinds[kind], dev)
            times[kind].append(sec)
            if kind == "alg2" and split_R:
                in_R.append(acc[0])
            if out is not None:
                outs[kind] = out
        if progress:
            print(f"    {spec.preset}: round {r + 1}/{n_rounds} {time.perf_counter() - t_row:6.1f} s",
                  file=sys.stderr, flush=True)

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    bare_ms, alg2_ms = med["bare"], med["alg2"]
    stepwise_ms = med["stepwise"] if stepwise_whole else bare_ms + step_update_ms
    pair = [(a - b) / b for a, b in zip(times["alg2"], times["bare"])]
    in_run = [(a - inside) / inside for a, inside in zip(times["alg2"], in_R)] if in_R else []
    overhead = (alg2_ms - bare_ms) / bare_ms
    row.update(
        bare_ms=bare_ms, alg2_ms=alg2_ms, stepwise_ms=stepwise_ms, stepwise_estimated=not stepwise_whole,
        overhead=overhead, overhead_paired_median=statistics.median(pair),
        overhead_in_run=statistics.median(in_run) if in_run else None,
        in_run_R_ms=[v * 1e3 for v in in_R],
        stepwise_overhead=(stepwise_ms - bare_ms) / bare_ms,
        target_met=bool(overhead <= OVERHEAD_TARGET),
        net_ms_per_call=bare_ms / T,
        update_ms=update_ms, update_ms_per_step=update_ms / T,
        stepwise_update_ms=step_update_ms, stepwise_update_ms_per_step=step_update_ms / T,
        overhead_from_parts=update_ms / bare_ms, stepwise_overhead_from_parts=step_update_ms / bare_ms,
        single_step_ms=one_step_s * 1e3,
        timed_rounds=n_rounds, stepwise_runs=len(times.get("stepwise", [])), part_reps=reps,
        stepwise_update_steps_timed=len(sampled),
        samples_ms={k: [v * 1e3 for v in vs] for k, vs in times.items()},
    )
    if "stepwise" in outs:
        row["max_diff_alg2_vs_stepwise"] = (outs["alg2"].float() - outs["stepwise"].float()).abs().max().item()
    row["target_met_in_run"] = (bool(row["overhead_in_run"] <= OVERHEAD_TARGET)
                                if row["overhead_in_run"] is not None else None)
    if row["overhead_in_run"] is not None and abs(overhead - row["overhead_in_run"]) > 0.05:
        notes.append(f"noisy timing: in-run overhead {row['overhead_in_run'] * 100:+.1f} %")
    sb = times["bare"]
    row["bare_spread"] = (max(sb) - min(sb)) / statistics.median(sb) if len(sb) > 1 else None
    if row["bare_spread"] is not None and row["bare_spread"] > 2 * OVERHEAD_TARGET:
        notes.append(f"bare runs vary by {row['bare_spread']:.0%}")
    return row


# ---------------------------------------------------------------------------- tables
COLUMNS = ["preset", "degradation", "size", "C", "T", "B", "network", "params", "bare ms", "Alg. 2 ms",
           "overhead %", "target", "stepwise Alg. 2 ms", "stepwise overhead %", "notes"]
PART_COLUMNS = ["preset", "net ms/call", "update ms/step", "stepwise update ms/step", "update % of bare",
                "stepwise update % of bare", "paired overhead %", "in-run overhead %",
                "max diff (Alg. 2 vs stepwise)"]


def _degradation(d: Dict[str, Any]) -> str:
    if not d:
        return "-"
    if d.get("name") == "blur":
        extra = (f"k{d['kernel_size']}, " + (f"sigma {d['sigma']:g}" if d["schedule"] == "constant" else d["schedule"])
                 + f", {d['padding']}")
    elif d.get("name") == "mask":
        extra = f"{d['position']} centre"
    elif d.get("name") == "snow":
        extra = f"level {d['level']}"
    else:
        extra = ""
    return f"{d.get('name')} ({extra})" if extra else str(d.get("name"))


def _verdict(row: Dict[str, Any]) -> str:
    """PASS/FAIL of the overhead (medians of runs); the in-run verdict too where it differs."""
    v = "PASS" if row["target_met"] else "FAIL"
    alt = row.get("target_met_in_run")
    if alt is not None and alt != row["target_met"]:
        v += f" (in-run {'PASS' if alt else 'FAIL'})"
    return v


def table_cells(row: Dict[str, Any]) -> List[str]:
    ok = row.get("bare_ms") is not None
    est = "~" if row.get("stepwise_estimated") else ""
    notes = list(row.get("notes", []))
    if ok:
        n, ns = row["timed_rounds"], row.get("stepwise_runs", 0)
        notes.insert(0, f"median of {n} run{'s' if n != 1 else ''}"
                     + (f" ({ns} stepwise)" if ns and ns != n else ""))
    if row["status"] != "ok":
        notes.append(f"[{row['status']}] {row.get('problem', '')}")
    return [
        row["preset"], _degradation(row.get("degradation") or {}), f"{row['size']}x{row['size']}", str(row["C"]),
        str(row.get("T", "-")), str(row["batch"]), row.get("network", "-"),
        param_count(row["params"]) if row.get("params") else "-",
        ms(row.get("bare_ms")), ms(row.get("alg2_ms")), pct(row.get("overhead")),
        _verdict(row) if ok else "-",
        (est + ms(row.get("stepwise_ms"))) if ok else "-", (est + pct(row.get("stepwise_overhead"))) if ok else "-",
        "; ".join(notes),
    ]


def part_cells(row: Dict[str, Any]) -> List[str]:
    est = "~" if row.get("stepwise_estimated") else ""
    md = row.get("max_diff_alg2_vs_stepwise")
    return [row["preset"], ms(row["net_ms_per_call"]), ms(row["update_ms_per_step"]),
            est + ms(row["stepwise_update_ms_per_step"]), f"{row['overhead_from_parts'] * 100:.1f}",
            est + f"{row['stepwise_overhead_from_parts'] * 100:.1f}", pct(row["overhead_paired_median"]),
            pct(row.get("overhead_in_run")), "-" if md is None else f"{md:.1e}"]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    lines = heading("Sampling, Algorithm 2 vs T bare network calls", meta, markdown)
    lines += render(COLUMNS, [table_cells(r) for r in result["rows"]], {2, 3, 4, 5, 7, 8, 9, 10, 12, 13},
                     markdown)
    part_rows = [part_cells(r) for r in result["rows"] if r.get("bare_ms") is not None]
    if part_rows:
        lines += subheading("Parts: Algorithm 2's update (two degradation calls and the arithmetic of a step) "
                            "timed on its own, without the network", markdown)
        lines += render(PART_COLUMNS, part_rows, set(range(1, 9)), markdown)
    lines.append("")
    lines.append(f"overhead = (Alg. 2 - bare) / bare, target <= {OVERHEAD_TARGET:.0%} (PASS/FAIL); bare = T network "
                 f"calls on the batch; Alg. 2 = colddiff.samplers.algorithm2 with the closed form D(x0, t); stepwise "
                 f"= the same sampler with D(x0_hat, s) computed by s single steps (apply_stepwise). Medians of "
                 f"interleaved runs; ~ = bare + stepwise updates timed on every m-th step x m. update % of bare = "
                 f"the update loop alone / bare: the overhead expected from its parts. paired overhead = median of "
                 f"per-round (Alg. 2 - bare) / bare; in-run overhead = (Alg. 2 run - its own R calls) / its R calls "
                 f"(CPU only): both sides from the same run. Untrained networks (cost does not depend on the "
                 f"weights).")
    lines.append(f"Total runtime {meta['total_runtime_s']:.1f} s.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run
def run(opts: Options, presets: Optional[List[str]] = None, progress: bool = True) -> Dict[str, Any]:
    start = time.perf_counter()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if presets:
        specs = [s for s in ROWS if s.preset in presets]
    else:
        specs = [s for s in ROWS if s.default and (s.quick or not opts.quick)]

    def error_row(spec: RowSpec, problem: str) -> Dict[str, Any]:
        row = {"preset": spec.preset, "size": 0, "C": 0, "T": "-", "batch": spec.batch, "params": 0, "notes": []}
        try:
            cfg = get_preset(spec.preset)
            row.update(size=cfg.data.image_size, C=cfg.data.channels, T=cfg.degradation.T)
        except Exception:
            pass
        return row

    with torch.no_grad():
        rows = run_rows(specs, lambda spec: bench_row(spec, opts, progress), error_row,
                        lambda spec: f"{spec.preset:<16}", opts.device, progress)
    meta = {
        **machine_meta(NAME, opts.device, opts.dtype, date),
        "precision": "fp32" if opts.dtype == torch.float32 else "bf16 autocast on the network; images float32",
        "quick": opts.quick,
        "seed": opts.seed,
        "presets": [s.preset for s in specs],
        "rows": [asdict(s) for s in specs],
        "timing": {"rounds": opts.rounds, "rounds_big": opts.rounds_big, "big_bare_s": opts.big_s,
                   "stepwise_runs": opts.stepwise_runs,
                   "part_reps": opts.part_reps, "stepwise_max_single_run_s": opts.step_max_s,
                   "stepwise_part_budget_s": opts.step_part_budget_s, "statistic": "median",
                   "interleaved": "bare, alg2 (, stepwise); all orders in turn, one per round"},
        "overhead_target": OVERHEAD_TARGET,
        "total_runtime_s": time.perf_counter() - start,
    }
    return overhead_result(meta, rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sampling", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "only the 28 px rows, fewer runs (~30 s on 2 idle CPU cores)",
                "float32, or bfloat16 = the network under autocast (default float32)")
    p.add_argument("--presets", help="comma-separated rows (default: all but cifar10-snow): "
                   + ", ".join(s.preset for s in ROWS))
    p.add_argument("--runs", type=int, default=None,
                   help="timed runs of each kind (default 3, quick 2; CUDA 10, quick 3); rows whose bare "
                        "run takes over 10 s get at most 2 on the CPU")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own); 1 is steadier on a machine shared with "
                        "other work")
    p.add_argument("--step-max", type=float, default=None,
                   help="a stepwise run estimated to take longer than this many seconds is estimated from "
                        "every m-th step, marked '~' (default 20, quick 5)")
    p.add_argument("--graphs", action="store_true",
                   help="CUDA: replay Alg. 2 from CUDA graphs (colddiff.graphs) and the bare calls from one graph")
    p.add_argument("--seed", type=int, default=0)
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    device = device_of(args, "benchmarks.sampling")
    q, cuda = args.quick, device.type == "cuda"
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("benchmarks.sampling: --threads must be at least 1")
        torch.set_num_threads(args.threads)
    rounds = args.runs if args.runs is not None else ((3 if q else 10) if cuda else (2 if q else 3))
    if rounds < 1:
        raise SystemExit("benchmarks.sampling: --runs must be at least 1")
    return Options(
        device=device, dtype=DTYPES[args.dtype], quick=q, seed=args.seed,
        rounds=rounds, rounds_big=rounds if cuda else min(rounds, 2), big_s=10.0,
        part_reps=5 if q else 7,
        step_max_s=args.step_max if args.step_max is not None else (5.0 if q else 20.0),
        step_part_budget_s=3.0 if q else 8.0, stepwise_runs=rounds if cuda else 1, graphs=args.graphs)


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

"""Degradation benchmark: the closed form D(x0, t) against the authors' step-by-step way.

For every registered degradation family, at the image sizes of the Cold Diffusion paper,
this measures

* the wall time of one closed-form call ``D(x0, t)`` at ``t = 1`` and at ``t = T``; the
  closed form is meant to cost the same at every ``t`` (target: ``D(t=T) <= 1.5 x D(t=1)``);
* the time of applying the single-step operator ``T`` times (``apply_stepwise(D, ...)``, what the
  authors' code does), and the speed-up of the closed form over it;
* the one-off build time of the cached operators (first call on a fresh instance minus a
  warm call);

and checks that the closed form and the step-by-step result agree (max abs difference).

    python -m benchmarks.degradations [--quick] [--device cpu|cuda] [--dtype float32|bfloat16]
                                      [--out PATH] [--markdown]

Timing: under ``torch.no_grad()``, after warm-up calls (so caches are built), the median of
several repeats measured with ``time.perf_counter`` (``torch.cuda.synchronize()`` around each
on CUDA).  Very fast calls are timed in loops of several calls per sample.  Step-by-step runs
are slow, so they get fewer repeats (as many as fit in ``--step-budget``, at least one full
run); where even one full run would take longer than ``--step-max`` seconds, the time of
``k < T`` steps is measured and scaled to ``T`` steps, and the row says so
(``--full-stepwise`` forces full runs instead).  Nothing is
skipped silently: a family that cannot run at a setting gets a row that says why.

The exit status is 1 if a closed form and its step-by-step result disagree or a row fails.
A disagreement that disappears without the family's output post-processing (the mask's
8-bit rounding, which can round a value on a level boundary either way) is reported as a
``rounding`` warning with both differences, not as a failure.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from benchmarks.common import (add_options, device_of, finish, heading, machine_meta, ms, render, run_rows, sync,
                               timed)

import colddiff.degradations as deg
from colddiff.degradations.base import Degradation
from colddiff.errors import ConfigError

NAME = "degradations"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "degradations.json"


# ---------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One of the paper's data-set settings: image size, channels, steps, batch, blur kernel."""

    name: str
    dataset: str
    size: int
    channels: int
    T: int
    batch: int
    blur: Dict[str, Any] = field(default_factory=dict)
    quick: bool = True  # part of the --quick run


SETTINGS: List[Setting] = [
    Setting("mnist-T20", "MNIST", 28, 1, 20, 32,
            dict(kernel_size=11, sigma=7.0, schedule="constant")),
    Setting("mnist-T40", "MNIST", 28, 1, 40, 32,
            dict(kernel_size=11, sigma=7.0, schedule="constant")),
    Setting("cifar10-T50", "CIFAR-10", 32, 3, 50, 32,
            dict(kernel_size=11, schedule="cifar10", padding="reflect")),
    Setting("celeba-T200", "CelebA", 128, 3, 200, 8,
            dict(kernel_size=15, sigma=1.0, rate=0.01, schedule="exponential", padding="reflect"),
            quick=False),
    Setting("celeba-T300-k27", "CelebA", 128, 3, 300, 8,
            dict(kernel_size=27, sigma=1.0, rate=0.01, schedule="exponential", padding="circular"),
            quick=False),
]

# Families whose number of steps is fixed by what they do: the paper's own T at each size.
PAPER_RESOLUTION_T = {28: 3, 32: 3, 128: 4}
# Snow level of the paper: 3 for CIFAR-10, 4 for CelebA (MNIST has no snow experiment: use 3).
SNOW_LEVEL = {28: 3, 32: 3, 128: 4}
N_PARTNERS = 16  # animorph partner images (random, same size as x0)

TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6}
TOLERANCE_RULE = ("float32: 1e-3; 16-bit: (steps + 1) x half an ulp below 1 (eps/4), i.e. one rounding "
                  "of the image per step and one for the closed form")
RATIO_TARGET = 1.5
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}


@dataclass
class Options:
    device: torch.device
    dtype: torch.dtype
    quick: bool
    repeats: int            # closed-form samples per t (median taken)
    min_repeats: int        # ... at least this many even for slow calls
    min_sample_s: float     # fast calls are looped until one sample takes this long
    closed_budget_s: float  # soft time budget of the closed-form timing of one row
    step_repeats: int       # step-by-step runs (median taken)
    step_budget_s: float    # time budget of the step-by-step repeats of one row
    step_max_s: float       # longest single full step-by-step run; longer ones are scaled from fewer steps
    full_stepwise: bool     # never extrapolate step-by-step times
    seed: int


def tolerance(dtype: torch.dtype, steps: int) -> float:
    """Largest max-abs difference accepted between closed form and ``steps`` single steps.

    In 16-bit every step rounds the image (values in [-1, 1]) once, by up to half an ulp
    below 1 (eps/4), so the step-by-step result may drift by that much per step.
    """
    if dtype in TOLERANCE:
        return TOLERANCE[dtype]
    return max(1e-3, (steps + 1) * torch.finfo(dtype).eps / 4)


def family_config(family: str, st: Setting) -> Tuple[int, int, Dict[str, Any], List[str]]:
    """(channels, T, create() keywords, notes) of ``family`` at setting ``st``."""
    C, T, params, notes = st.channels, st.T, {}, []
    if family == "blur":
        params = dict(st.blur)
    elif family == "resolution":
        T = PAPER_RESOLUTION_T.get(st.size, int(math.log2(st.size)))
        notes.append(f"T={T} fixed by the family (paper's halvings at {st.size} px)")
    elif family == "desaturate":
        if C != 3:
            C = 3
            notes.append("C=3 (needs colour images)")
    elif family == "snow":
        params = {"level": SNOW_LEVEL.get(st.size, 3)}
        notes.append(f"level {params['level']}")
    elif family == "mask":
        notes.append("random centre")
    elif family == "animorph":
        notes.append(f"{N_PARTNERS} random partners")
    return C, T, params, notes


# ---------------------------------------------------------------------------- timing
def sample(fn: Callable[[], Any], n: int, device: torch.device) -> float:
    """Mean seconds per call over a loop of ``n`` calls."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n


def warm_device(device: torch.device, dtype: torch.dtype) -> None:
    """Run the kinds of kernels the degradations use once, so the first row pays no lazy init."""
    import torch.nn.functional as F

    x = torch.rand(2, 3, 32, 32, device=device).to(dtype)
    xf = x.float()
    for _ in range(2):
        torch.matmul(torch.rand(2, 1, 32, 32, device=device), xf)
        F.conv2d(F.pad(xf, (2, 2, 2, 2), mode="reflect"), torch.rand(3, 1, 5, 5, device=device), groups=3)
        F.interpolate(F.adaptive_avg_pool2d(xf, (8, 8)), size=(32, 32), mode="nearest")
        torch.where(xf > 0, xf, 1 - xf).exp().to(dtype)
    sync(device)


# ---------------------------------------------------------------------------- one row
def bench_row(family: str, st: Setting, opts: Options) -> Dict[str, Any]:
    C, T, params, notes = family_config(family, st)
    B, H = st.batch, st.size
    row: Dict[str, Any] = {
        "family": family, "setting": st.name, "dataset": st.dataset, "size": H, "C": C, "T": T,
        "B": B, "status": "ok", "notes": notes,
        "d_t1_ms": None, "d_tT_ms": None, "ratio": None, "stepwise_ms": None, "speedup": None,
        "build_ms": None, "first_call_ms": None, "target_met": None, "max_diff": None,
        "agree": None, "tolerance": None,
    }
    dev, dt = opts.device, opts.dtype
    gen = torch.Generator().manual_seed(opts.seed)
    x0 = (torch.rand(B, C, H, H, generator=gen) * 2 - 1).to(device=dev, dtype=dt)
    if family == "animorph":
        params["partners"] = (torch.rand(N_PARTNERS, C, H, H, generator=gen) * 2 - 1).to(device=dev, dtype=dt)
    try:
        D = deg.create(family, T=T, image_size=H, channels=C, **params)
    except ConfigError as e:
        row["status"] = "skipped"
        row["notes"] = notes + [f"not valid here: {e}"]
        return row
    row["params"] = {k: v for k, v in deg.describe(D).items() if k != "partners"}
    ctx = D.context(x0, gen)

    # -- closed form: first call on the fresh instance builds the caches
    first_s, _ = timed(lambda: D(x0, T, ctx), dev)
    w1, _ = timed(lambda: D(x0, 1, ctx), dev)            # warm-up + calibration
    wT, closed_T = timed(lambda: D(x0, T, ctx), dev)
    n_inner = max(1, min(1000, math.ceil(opts.min_sample_s / max(w1, 1e-7))))
    per_pair = n_inner * (w1 + wT)
    repeats = opts.repeats
    if per_pair * repeats > opts.closed_budget_s:
        repeats = max(opts.min_repeats, int(opts.closed_budget_s // per_pair))
    s1, sT = [], []
    for _ in range(repeats):  # interleaved, so that drifts in machine load hit both alike
        s1.append(sample(lambda: D(x0, 1, ctx), n_inner, dev))
        sT.append(sample(lambda: D(x0, T, ctx), n_inner, dev))
    t1, tT = statistics.median(s1), statistics.median(sT)
    row.update(d_t1_ms=t1 * 1e3, d_tT_ms=tT * 1e3, ratio=tT / t1, target_met=bool(tT / t1 <= RATIO_TARGET),
               first_call_ms=first_s * 1e3, build_ms=max(0.0, first_s - tT) * 1e3,
               closed_repeats=repeats, closed_calls_per_sample=n_inner,
               d_t1_samples_ms=[v * 1e3 for v in s1], d_tT_samples_ms=[v * 1e3 for v in sT])

    # -- step by step (the authors' way); a family with only a closed form (the authors' snow) has none
    if type(D).step is Degradation.step:
        notes.append("no single-step operator: closed form only, as in the authors' code")
        return row
    one_s, one_out = timed(lambda: deg.apply_stepwise(D, x0, 1, ctx), dev)  # warm-up + cost per step
    if T == 1 or (not opts.full_stepwise and one_s * T > opts.step_max_s):
        k = T if T == 1 else max(1, min(T - 1, int(opts.step_max_s // one_s)))
        if k == 1:
            k_s, step_out = one_s, one_out
        else:
            k_s, step_out = timed(lambda: deg.apply_stepwise(D, x0, k, ctx), dev)
        runs = [k_s * T / k]
        if k < T:
            notes.append(f"stepwise time scaled from {k} of {T} steps (1 run; a full run would take "
                         f"~{_duration(one_s * T)})")
            ref = D(x0, k, ctx)
        else:
            ref = closed_T
    else:
        k = T
        spent = 0.0
        runs = []
        step_out = None
        while True:  # one full run always; more while they fit in the budget
            s, out = timed(lambda: deg.apply_stepwise(D, x0, T, ctx), dev)
            spent += s
            runs.append(s)
            if step_out is None:
                step_out = out
            if len(runs) >= opts.step_repeats or spent + s > opts.step_budget_s:
                break
        if len(runs) == 1:
            notes.append("stepwise: 1 run")
        ref = closed_T
    step_ms = statistics.median(runs) * 1e3
    diff = (ref.float() - step_out.float()).abs().max().item()
    row["tolerance"] = tolerance(dt, k)
    finite = bool(torch.isfinite(ref.float()).all() and torch.isfinite(step_out.float()).all())
    row.update(stepwise_ms=step_ms, speedup=step_ms / (tT * 1e3), stepwise_runs=len(runs),
               stepwise_steps_measured=k, stepwise_extrapolated=k < T, check_t=k,
               max_diff=diff if math.isfinite(diff) else None,
               agree=bool(finite and diff < row["tolerance"]))
    if not row["agree"] and finite and type(D).finalize is not deg.Degradation.finalize:
        # The family post-processes its output (mask: 8-bit rounding).  Two float paths that
        # agree to ~1e-7 can still round a pixel sitting on a level boundary differently, so
        # see whether the disagreement survives without the post-processing.
        d = (ref.float() - step_out.float()).abs()
        n_bad = int((d >= row["tolerance"]).sum())
        D.finalize = lambda x, t: x  # this instance only
        raw_ref = D(x0, k, ctx)
        raw_step = deg.apply_stepwise(D, x0, k, ctx)
        raw_diff = (raw_ref.float() - raw_step.float()).abs().max().item()
        del D.finalize  # back to the family's own
        row.update(max_diff_before_finalize=raw_diff, pixels_over_tolerance=n_bad,
                   pixels_total=d.numel())
        if raw_diff < row["tolerance"]:
            row["status"] = "rounding"
            row["problem"] = (f"closed form and stepwise differ by up to {diff:.3g} on {n_bad} of "
                              f"{d.numel()} values after {type(D).__name__}.finalize (8-bit rounding); "
                              f"before it they agree to {raw_diff:.1e}")
            notes.append(f"{n_bad}/{d.numel()} values differ by {diff:.3g} after 8-bit rounding; "
                         f"before rounding max diff {raw_diff:.1e}")
    if not row["agree"] and finite and row["status"] != "rounding" and dt not in TOLERANCE:
        # 16-bit: the step-by-step path rounds the image T times (and steps that amplify earlier
        # errors, e.g. snow's a_s / a_{s-1} > 1, make it worse).  Compare the 16-bit closed form
        # with the step-by-step result computed in float32 to see which side drifted.
        step32 = deg.apply_stepwise(D, x0.float(), k, ctx)
        d32 = (ref.float() - step32.float()).abs().max().item()
        tol32 = torch.finfo(dt).eps  # one ulp at 1: the closed form's own rounding, with margin
        row.update(max_diff_vs_float32_stepwise=d32)
        if d32 < tol32:
            row["status"] = "precision"
            row["problem"] = (f"the {str(dt).replace('torch.', '')} step-by-step result drifts "
                              f"{diff:.3g} from the closed form over {k} steps; the closed form agrees with the "
                              f"float32 step-by-step result to {d32:.1e}")
            notes.append(f"16-bit stepwise drifts {diff:.2g} over {k} steps; closed form vs float32 "
                         f"stepwise {d32:.1e}")
    if not row["agree"] and row["status"] not in ("rounding", "precision"):
        row["status"] = "mismatch"
        row["problem"] = (f"closed form and stepwise DISAGREE at t={k}: max diff {diff:.3g}"
                          + ("" if finite else " (non-finite values)"))
        notes.append(row["problem"])
    if k < T:
        notes.append(f"agreement checked at t={k}")
    return row


# ---------------------------------------------------------------------------- tables
COLUMNS = ["family", "setting", "size", "C", "T", "B", "D(t=1) ms", "D(t=T) ms", "ratio T/1",
           "stepwise(t=T) ms", "speed-up", "build ms", "target met", "max diff", "notes"]


def _duration(s: float) -> str:
    if s >= 120:
        return f"{s / 60:.0f} min"
    if s >= 1:
        return f"{s:.0f} s"
    return f"{s * 1e3:.0f} ms"


def table_cells(row: Dict[str, Any]) -> List[str]:
    ok = row["d_t1_ms"] is not None
    step = ms(row["stepwise_ms"])
    if row.get("stepwise_extrapolated"):
        step = "~" + step
    if row["speedup"] is None:
        speed = "-"
    else:
        speed = ("~" if row.get("stepwise_extrapolated") else "") + (
            f"{row['speedup']:,.0f}x" if row["speedup"] >= 10 else f"{row['speedup']:.1f}x")
    return [
        row["family"], row["setting"], f"{row['size']}x{row['size']}", str(row["C"]), str(row["T"]),
        str(row["B"]), ms(row["d_t1_ms"]), ms(row["d_tT_ms"]),
        f"{row['ratio']:.2f}" if ok else "-", step, speed,
        ms(row["build_ms"]),
        ("yes" if row["target_met"] else "NO") if ok else "-",
        "-" if row["max_diff"] is None else f"{row['max_diff']:.1e}",
        "; ".join(row["notes"]) + ("" if row["status"] in ("ok", "mismatch", "rounding", "precision") else f" [{row['status']}]"),
    ]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    rows = [table_cells(r) for r in result["rows"]]
    meta = result["meta"]
    lines = heading("Degradations, closed form vs step by step", meta, markdown, autocast_note=False)
    lines += render(COLUMNS, rows, set(range(2, 14)), markdown)
    lines.append("")
    lines.append(f"ratio T/1 = D(t=T) / D(t=1), target <= {RATIO_TARGET}; speed-up = stepwise(t=T) / D(t=T); "
                 f"build = first call - warm call; max diff = |closed - stepwise| (tolerance "
                 f"{'(steps + 1) x eps/4' if DTYPES[meta['dtype']] not in TOLERANCE else TOLERANCE[DTYPES[meta['dtype']]]}); "
                 f"~ = scaled from fewer steps.")
    lines.append(f"Total runtime {meta['total_runtime_s']:.1f} s.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run
def run(opts: Options, families: Optional[List[str]] = None, settings: Optional[List[str]] = None,
        progress: bool = True) -> Dict[str, Any]:
    start = time.perf_counter()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fams = families or deg.names()
    sts = [s for s in SETTINGS if (s.quick or not opts.quick) and (not settings or s.name in settings)]

    def error_row(spec, problem: str) -> Dict[str, Any]:
        st, fam = spec
        C, T, _, notes = family_config(fam, st)
        return {"family": fam, "setting": st.name, "dataset": st.dataset, "size": st.size, "C": C, "T": T,
                "B": st.batch, "notes": notes + [problem], "d_t1_ms": None, "d_tT_ms": None,
                "ratio": None, "stepwise_ms": None, "speedup": None, "build_ms": None, "first_call_ms": None,
                "target_met": None, "max_diff": None, "agree": None}

    with torch.no_grad():
        warm_device(opts.device, opts.dtype)
        rows = run_rows([(st, fam) for st in sts for fam in fams], lambda spec: bench_row(spec[1], spec[0], opts),
                        error_row, lambda spec: f"{spec[1]:<11} {spec[0].name:<16}", opts.device, progress)
    meta = {
        **machine_meta(NAME, opts.device, opts.dtype, date),
        "quick": opts.quick,
        "seed": opts.seed,
        "families": fams,
        "settings": [asdict(s) for s in sts],
        "timing": {"closed_repeats": opts.repeats, "closed_min_repeats": opts.min_repeats,
                   "min_sample_s": opts.min_sample_s, "closed_budget_s": opts.closed_budget_s,
                   "stepwise_repeats": opts.step_repeats, "stepwise_budget_s": opts.step_budget_s,
                   "stepwise_max_single_run_s": opts.step_max_s,
                   "full_stepwise": opts.full_stepwise, "statistic": "median"},
        "ratio_target": RATIO_TARGET,
        "tolerance_rule": TOLERANCE_RULE,
        "total_runtime_s": time.perf_counter() - start,
    }
    failures = [r for r in rows if r["status"] in ("mismatch", "error")]
    return {"meta": meta, "rows": rows, "ok": not failures,
            "failures": [f"{r['family']} @ {r['setting']}: {r['problem']}" for r in failures],
            "warnings": [f"{r['family']} @ {r['setting']}: {r['problem']}" for r in rows
                         if r["status"] in ("rounding", "precision")],
            "target_missed": [f"{r['family']} @ {r['setting']}: ratio {r['ratio']:.2f}"
                              for r in rows if r.get("target_met") is False]}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.degradations",
                                description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "only the 28 and 32 px settings, fewer repeats", "image dtype (default float32)",
                dtypes=DTYPES)
    p.add_argument("--families", help="comma-separated families (default: all registered)")
    p.add_argument("--settings", help="comma-separated settings: " + ", ".join(s.name for s in SETTINGS))
    p.add_argument("--step-budget", type=float, default=None,
                   help="seconds per row for repeated step-by-step runs (default 20, quick 3); "
                        "one full run is always made")
    p.add_argument("--step-max", type=float, default=None,
                   help="a full step-by-step run estimated to take longer than this many seconds is "
                        "timed on fewer steps and scaled to T, marked '~' (default 180, quick 10)")
    p.add_argument("--full-stepwise", action="store_true",
                   help="always apply all T steps, however long it takes")
    p.add_argument("--seed", type=int, default=0)
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    device = device_of(args, "benchmarks.degradations")
    q = args.quick
    return Options(
        device=device, dtype=DTYPES[args.dtype], quick=q,
        repeats=5 if q else 7, min_repeats=3, min_sample_s=0.005 if q else 0.02,
        closed_budget_s=4.0 if q else 40.0, step_repeats=2 if q else 3,
        step_budget_s=args.step_budget if args.step_budget is not None else (3.0 if q else 20.0),
        step_max_s=args.step_max if args.step_max is not None else (10.0 if q else 180.0),
        full_stepwise=args.full_stepwise, seed=args.seed)


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run, print the table(s), write the JSON; return the result."""
    args = parser().parse_args(argv)
    opts = options_from_args(args)
    fams = [f.strip() for f in args.families.split(",")] if args.families else None
    if fams:
        unknown = [f for f in fams if f not in deg.names()]
        if unknown:
            raise SystemExit(f"unknown families {unknown}; known: {', '.join(deg.names())}")
    sts = [s.strip() for s in args.settings.split(",")] if args.settings else None
    if sts:
        unknown = [s for s in sts if s not in {x.name for x in SETTINGS}]
        if unknown:
            raise SystemExit(f"unknown settings {unknown}; known: {', '.join(s.name for s in SETTINGS)}")
    result = run(opts, fams, sts)
    return finish(result, format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

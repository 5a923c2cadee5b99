"""Steps benchmark: quality against the number of sampling steps (``--sample-steps``), per sampler and spacing.

For trained runs (T >= 20), sweep the number of network calls K = T, T/2, T/4, ... 1 and measure, one line
per sampler and spacing (``linear``: evenly in t; ``quadratic``: t·(k/K)^2, dense near t = 0):

* restoration (``--restore RUN``): N held-out test images degraded to t = T and restored by Algorithm 1 and
  Algorithm 2 over the schedule (direct reconstruction, one call, as the reference): RMSE and SSIM (per image,
  on [0, 1], as ``colddiff evaluate``), FID on the offline classifier's features against the clean images,
  and "class kept" (the classifier assigns the restoration to the clean image's label);
* generation (``--generate RUN``): N images generated from t = T by Algorithm 2 with the run's start state
  (``colddiff generate``'s defaults): class entropy, classes present (>= 3% of the images), mean classifier
  confidence and classifier FID against the held-out test images;

with the wall time per image of the sampler alone.  Target (issue 28): with a quarter of the steps
(K = T/4), Algorithm 2's metrics within 5% of the full schedule's, at a quarter of the time (judged as
at most 0.25 x 1.1 of it: timing noise); each line says where it holds and where not.

The runs are given (``colddiff train`` them first; their folders stay out of git), e.g.

    colddiff train --preset mnist5k-blur --set train.steps=2000 --out runs/mnist5k-blur
    colddiff train --preset mnist5k-blur --set data.name=fashion-mnist train.steps=2000 --out runs/fashion-blur
    python -m benchmarks.steps --restore runs/mnist5k-blur,runs/fashion-blur --generate runs/mnist5k-blur-gen \\
        --figure docs/steps.png

``--quick`` trains a tiny network for a few steps in a temporary folder and sweeps a few images: it checks
that every line runs; its numbers mean nothing and no target is judged.

    python -m benchmarks.steps [--quick] [--restore RUN,...] [--generate RUN,...] [--n N] [--seed S]
                               [--figure PNG] [--markdown] [--out PATH]
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from colddiff.tables import markdown_table, text_table

from .common import add_options, finish, machine_meta

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "steps.json"
SPACINGS = ("linear", "quadratic")
RESTORE_SAMPLERS = ("algorithm1", "algorithm2")
GENERATE_SAMPLERS = ("algorithm2",)
TOLERANCE = 0.05       # the "within 5%"
TIME_SLACK = 1.1       # "a quarter of the time", with 10% for timing noise on a shared machine
# (key, what is better) of the metrics judged against the full schedule
RESTORE_METRICS = (("rmse", "lower"), ("ssim", "higher"), ("fid", "lower"), ("class_kept", "higher"))
GENERATE_METRICS = (("entropy", "higher"), ("classes", "higher"), ("confidence", "higher"), ("fid", "lower"))


def counts(T: int) -> List[int]:
    """T, T/2, T/4, ... 1 (whole numbers, each once)."""
    out, k = [], int(T)
    while k >= 1:
        if k not in out:
            out.append(k)
        k //= 2
    return out


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _classifier(run):
    from colddiff.classifier import get_classifier

    c = run.cfg.data
    return get_classifier(c.name, c.image_size, c.channels, root=c.root or None, progress=False)


def restoration_case(run, n: int, seed: int, batch_size: int = 100) -> Dict[str, Any]:
    """Every (sampler, spacing, K) restoration of N held-out images from t = T, measured."""
    from colddiff import metrics
    from colddiff.evaluation import held_out

    clf = _classifier(run)
    x0, labels, split = held_out(run, n, "colddiff")
    ctx = run.D.context(x0, torch.Generator().manual_seed(seed))
    T = run.T
    x_t = run.degrade(x0, T, ctx, batch_size=batch_size)
    ref = clf.features(x0)

    def measure(y: torch.Tensor) -> Dict[str, float]:
        return {"rmse": float(metrics.rmse(y, x0).mean()), "ssim": float(metrics.ssim(y, x0).mean()),
                "fid": float(metrics.fid(clf.features(y), ref, clf.name, accuracy=clf.accuracy).value),
                "class_kept": float((clf.predict(y) == labels).float().mean())}

    rows = []
    run.sample(x_t[:2], T, ctx=_part(ctx, 2, len(x0)), sampler="algorithm2", schedule=2)   # warm-up: not timed
    sec, y = _timed(lambda: run.sample(x_t, T, ctx, sampler="direct", batch_size=batch_size))
    rows.append({"sampler": "direct", "spacing": "-", "calls": 1, "steps": [T, 0], **measure(y),
                 "ms_per_image": 1000 * sec / len(x0)})
    for sampler in RESTORE_SAMPLERS:
        for spacing in SPACINGS:
            for k in counts(T):
                if k == T and spacing != SPACINGS[0]:   # every step: the same for both spacings
                    continue
                schedule = f"{k}:{spacing}"
                sec, y = _timed(lambda: run.sample(x_t, T, ctx, sampler=sampler, batch_size=batch_size,
                                                   schedule=schedule))
                rows.append({"sampler": sampler, "spacing": spacing, "calls": k, **measure(y),
                             "steps": _steps(schedule, T), "ms_per_image": 1000 * sec / len(x0)})
    return {"task": "restoration", "n": int(x0.shape[0]), "split": split, "t": T, "rows": rows,
            "classifier_accuracy": clf.accuracy}


def generation_case(run, n: int, seed: int, batch_size: int = 256) -> Dict[str, Any]:
    """Every (sampler, spacing, K) generation of N images from t = T (the run's start state), measured."""
    from colddiff import metrics
    from colddiff.evaluation import held_out
    from colddiff.generation import generate, generation_defaults, generation_stats

    clf = _classifier(run)
    x_ref, _, split = held_out(run, n, "colddiff")
    ref = clf.features(x_ref)
    st = generation_defaults(run)
    T = run.T
    rows = []
    generate(run, 2, noise=st["noise"], k=st["k"], seed=seed, progress=False, schedule=1)  # warm-up, GMM fit: not timed
    for sampler in GENERATE_SAMPLERS:
        for spacing in SPACINGS:
            for k in counts(T):
                if k == T and spacing != SPACINGS[0]:
                    continue
                schedule = f"{k}:{spacing}"
                sec, images = _timed(lambda: generate(run, n, sampler=sampler, noise=st["noise"], k=st["k"],
                                                      seed=seed, batch_size=batch_size, progress=False,
                                                      schedule=schedule))
                stats = generation_stats(clf.predict_proba(images), images)
                rows.append({"sampler": sampler, "spacing": spacing, "calls": k, "steps": _steps(schedule, T),
                             "entropy": stats["entropy"], "classes": stats["classes_covered_3pct"],
                             "confidence": stats["mean_confidence"], "near_blank": stats["near_blank_share"],
                             "fid": float(metrics.fid(clf.features(images), ref, clf.name,
                                                      accuracy=clf.accuracy).value),
                             "ms_per_image": 1000 * sec / n})
    return {"task": "generation", "n": n, "split": split, "t": T, "rows": rows, "noise": st["noise"],
            "k": st["k"], "classifier_accuracy": clf.accuracy}


def _part(ctx, m: int, n: int):
    from colddiff.degradations import context_slice

    return context_slice(ctx, 0, m, n)


def _steps(schedule: str, T: int) -> List[int]:
    from colddiff.samplers import parse_schedule

    return parse_schedule(schedule).for_t(T, T)


def judge(case: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The issue's target for each Algorithm 2 line: at K = T/4, every metric within 5% of K = T, in <= 1/4 the time."""
    T = case["T"]
    quarter = max(1, T // 4)
    keys = RESTORE_METRICS if case["task"] == "restoration" else GENERATE_METRICS
    rows = case["rows"]
    full = next(r for r in rows if r["sampler"] == "algorithm2" and r["calls"] == T)
    out = []
    for spacing in SPACINGS:
        r = next((r for r in rows if r["sampler"] == "algorithm2" and r["spacing"] == spacing
                  and r["calls"] == quarter), None)
        if r is None:
            continue
        misses = []
        for key, better in keys:
            a, b = r[key], full[key]
            worse = (a - b) if better == "lower" else (b - a)   # > 0: the quarter schedule is worse
            if worse > TOLERANCE * abs(b) + 1e-12:
                misses.append(f"{key} {_fmt(key, a)} vs {_fmt(key, b)} ({100 * worse / abs(b) if b else math.inf:+.1f}%)")
        ratio = r["ms_per_image"] / full["ms_per_image"] if full["ms_per_image"] else float("nan")
        if not ratio <= 0.25 * TIME_SLACK:
            misses.append(f"time {ratio:.2f} of the full schedule's")
        out.append({"case": case["key"], "spacing": spacing, "calls": quarter, "time_ratio": ratio,
                    "ok": not misses, "misses": misses})
    return out


def _fmt(key: str, v) -> str:
    if v is None:
        return "–"
    if key in ("class_kept", "near_blank"):
        return f"{100 * v:.1f}%"
    if key == "classes":
        return str(int(v))
    if key == "fid":
        return f"{v:.2f}"
    return f"{v:.4f}" if key in ("rmse", "ssim") else f"{v:.3f}"


def _train_quick(folder: Path) -> Path:
    from colddiff.presets import preset
    from colddiff.training import train

    cfg = preset("mnist5k-blur").override(["train.steps=3", "model.dim=8", "model.dim_mults=1,2",
                                           "train.ema_start=0", "train.checkpoint_every=1000000",
                                           "train.sample_every=1000000", "train.log_every=1000000"])
    train(cfg, folder, progress=False)
    return folder


def run(restore: List[str], generate: List[str], n: int, seed: int, quick: bool) -> Dict[str, Any]:
    from colddiff.runs import load_run

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta = machine_meta("steps", torch.device("cpu"), torch.float32, date)
    try:
        meta["load_average"] = [round(v, 2) for v in __import__("os").getloadavg()]
    except OSError:
        pass
    cases, tmp = [], None
    if quick:
        tmp = tempfile.TemporaryDirectory(prefix="colddiff-steps-")
        folder = _train_quick(Path(tmp.name) / "run")
        restore, generate, n = [str(folder)], [str(folder)], min(n, 8)
    try:
        for task, folders in (("restoration", restore), ("generation", generate)):
            for f in folders:
                r = load_run(f, device="cpu")
                print(f"steps: {task} on {r.name} ({f}, step {r.step}, T={r.T}), {n} images", flush=True)
                t0 = time.perf_counter()
                case = restoration_case(r, n, seed) if task == "restoration" else generation_case(r, n, seed)
                case.update(key=f"{r.name} {task}", run=str(f), name=r.name, step=r.step, T=r.T,
                            data=r.cfg.data.name, degradation=repr(r.D), seconds=round(time.perf_counter() - t0, 1))
                cases.append(case)
    finally:
        if tmp is not None:
            tmp.cleanup()
    verdicts = [] if quick else [v for c in cases for v in judge(c)]
    missed = [f"{v['case']}, Algorithm 2 {v['spacing']} at {v['calls']} steps: " + "; ".join(v["misses"])
              for v in verdicts if not v["ok"]]
    held = [f"{v['case']}, Algorithm 2 {v['spacing']} at {v['calls']} steps: within 5% at "
            f"{v['time_ratio']:.2f} of the time" for v in verdicts if v["ok"]]
    return {"meta": meta, "quick": quick, "n": n, "seed": seed, "cases": cases, "verdicts": verdicts,
            "target_missed": missed, "target_met": held, "ok": True,
            "summary": f"{len(held)} of {len(verdicts)} quarter-step lines within 5%" if verdicts else "quick run"}


HEADERS = {"restoration": ["line", "steps", "RMSE ↓", "SSIM ↑", "FID (classifier) ↓", "class kept ↑", "ms/image"],
           "generation": ["line", "steps", "class entropy ↑", "classes ≥3% ↑", "confidence ↑", "FID (classifier) ↓",
                          "ms/image"]}


def _line(r: Dict[str, Any]) -> str:
    from colddiff.samplers import get_sampler

    label = get_sampler(r["sampler"]).label
    return label if r["spacing"] == "-" else f"{label}, {r['spacing']}"


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    """One table per case (run and task), then the target lines."""
    out = []
    m = result.get("meta", {})
    for c in result["cases"]:
        keys = ("rmse", "ssim", "fid", "class_kept") if c["task"] == "restoration" else \
            ("entropy", "classes", "confidence", "fid")
        rows = [[_line(r), str(r["calls"])] + [_fmt(k, r.get(k)) for k in keys] + [f"{r['ms_per_image']:.1f}"]
                for r in c["rows"]]
        what = (f"restoration of {c['n']} {c['split']} images from t=T" if c["task"] == "restoration" else
                f"{c['n']} images generated from t=T (measured against {c['n']} {c['split']} images)")
        title = (f"{c['name']} ({c['data']}, step {c['step']:,}, T={c['T']}): {what}; steps = network calls; "
                 f"{m.get('date', '')[:10]}, {m.get('device_name', '')}, "
                 f"load {m.get('load_average', '?')}: times under contention, comparable within a table only")
        table = markdown_table(HEADERS[c["task"]], rows) if markdown else text_table(HEADERS[c["task"]], rows)
        out += [title, "", table.rstrip(), ""]
    for line in result.get("target_met") or []:
        out.append(f"target met: {line}" + ("  " if markdown else ""))
    return "\n".join(out).rstrip() + "\n"


def figure(result: Dict[str, Any], path: Path) -> Path:
    """Quality against steps: one panel per (case, metric), one line per sampler and spacing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = result["cases"]
    panels = [(c, k) for c in cases for k in (("rmse", "class_kept", "fid") if c["task"] == "restoration"
                                              else ("entropy", "confidence", "fid"))]
    cols = 3
    fig, axes = plt.subplots(len(cases), cols, figsize=(4 * cols, 2.9 * len(cases)), squeeze=False)
    names = {"rmse": "RMSE ↓", "class_kept": "class kept ↑", "fid": "FID (classifier) ↓", "entropy": "class entropy ↑",
             "confidence": "confidence ↑"}
    for i, (c, key) in enumerate(panels):
        ax = axes[i // cols][i % cols]
        lines: Dict[str, List] = {}
        for r in c["rows"]:
            if r["sampler"] == "direct":
                ax.axhline(r[key], color="grey", ls=":", lw=1, label="Direct (1 call)")
                continue
            lines.setdefault(_line(r), []).append((r["calls"], r[key]))
        full = [r for r in c["rows"] if r["calls"] == c["T"] and r["sampler"] != "direct"]
        for label, pts in lines.items():
            sampler = label.split(",")[0]
            pts = sorted(pts + [(c["T"], r[key]) for r in full if _line(r).split(",")[0] == sampler
                                and (c["T"], r[key]) not in pts])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                    ls="-" if "linear" in label else "--", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts(c["T"]), [str(k) for k in counts(c["T"])])
        ax.minorticks_off()
        ax.set_xlabel("sampling steps (network calls)")
        ax.set_title(f"{c['name']} {c['task']}: {names[key]}", fontsize=9)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "a tiny run trained for 3 steps: checks every line runs",
                "float32 only (the runs' own precision)", dtypes=("float32",))
    p.add_argument("--restore", default="runs/mnist5k-blur,runs/fashion-blur",
                   help="comma-separated trained runs for the restoration sweep")
    p.add_argument("--generate", default="runs/mnist5k-blur-gen", help="comma-separated trained runs for generation")
    p.add_argument("--n", type=int, default=200, help="images per line (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation's randomness and the start states")
    p.add_argument("--figure", type=Path, default=None, help="also draw quality against steps into this PNG")
    return p


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parser().parse_args(argv)
    if args.device != "cpu":
        print("benchmarks.steps: the runs are CPU runs; sweeping on the CPU")
    split = lambda s: [v.strip() for v in s.split(",") if v.strip()]  # noqa: E731
    if not args.quick:
        missing = [f for f in split(args.restore) + split(args.generate) if not Path(f).exists()]
        if missing:  # nothing to measure: said in one line, the other benchmarks go on
            line = f"no trained run at {', '.join(missing)}; train them first (python -m benchmarks.steps --help)"
            print(f"benchmarks.steps: {line}")
            return {"ok": False, "failures": [line]}
    result = run(split(args.restore), split(args.generate), args.n, args.seed, args.quick)
    if args.figure is not None:
        print(f"wrote {figure(result, args.figure)}")
    return finish(result, format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

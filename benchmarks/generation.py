"""Generation benchmark: the paper's start states, the known fixes and the hot baseline, side by side.

On the embedded digits (mnist-5k), every row trains the same network (``mnist-cpu``, 0.3M
parameters) for the same number of steps (the quickstart's), generates ``--n`` digits from
t = T and measures them with the offline classifier:

* blur + GMM of the channel means, Algorithm 2, no start noise (the paper's "perfect symmetry");
* the same run with start noise 0.002 (the paper's broken symmetry);
* blur + GMM trained with Inverse Heat Dissipation's input noise σ and sampled with the
  stochastic sampler (per-step noise δ; Rissanen et al., ICLR 2023);
* super-resolution + a Gaussian mixture over the whole 4x4 end state (16 numbers);
* unmasking from random solid colours (the paper's mask generation);
* hot diffusion: Gaussian noise, sampled with DDIM.

Columns: classifier FID against the held-out test digits, class entropy, classes holding at
least 3% of the images, near-blank share, mean classifier confidence, sampling time.  The
quickstart's row is checked against the generation targets (entropy >= 0.90, >= 9 of 10
classes at >= 3%, near-blank <= 2%, confidence >= 0.85, FID <= the hot baseline's).

``--quick`` trains a tiny network for a few steps per row and generates a few images: it
checks that every row runs, its figures mean nothing and no target is judged.

    python -m benchmarks.generation [--quick] [--steps N] [--n N] [--keep DIR] [--markdown] [--out PATH]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

import colddiff.degradations as deg
from colddiff.tables import markdown_table, text_table

from .common import finish, machine_meta

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "generation.json"
TARGETS = {"entropy": 0.90, "classes_3pct": 9, "near_blank": 0.02, "confidence": 0.85}


@dataclass
class Row:
    key: str
    label: str
    preset: str
    sampler: str
    noise: float = 0.0
    delta: Optional[float] = None   # None: the preset's own [generation] delta
    hot: bool = False


ROWS = [
    Row("blur", "blur + GMM (paper), no noise", "mnist5k-blur-gen", "algorithm2"),
    Row("blur-noise", "blur + GMM (paper), start noise 0.002", "mnist5k-blur-gen", "algorithm2", noise=0.002),
    Row("blur-ihd", "blur + GMM, IHD noise, stochastic sampler", "mnist5k-blur-ihd", "stochastic"),
    Row("sr", "super-resolution + GMM over the 4x4 end state", "mnist5k-sr", "algorithm2"),
    Row("mask", "unmasking from solid colours", "mnist5k-mask-gen", "algorithm2"),
    Row("noise-ddim", "hot: Gaussian noise + DDIM", "mnist5k-noise", "ddim", hot=True),
]


def quickstart_row() -> str:
    """The row whose preset the quickstart trains (the best cold row)."""
    from colddiff.quickstart import PRESET

    return next(r.key for r in ROWS if r.preset == PRESET and not r.hot)


def _config(name: str, steps: int, quick: bool):
    from colddiff.presets import preset

    cfg = preset(name)
    sets = [f"train.steps={steps}", "train.log_every=1000000"]
    if quick:  # a tiny network and short schedules, a pipeline check
        sets += ["model.dim=8", "model.dim_mults=1,2", "train.ema_start=0", "train.checkpoint_every=1000000",
                 "train.sample_every=0", "train.batch_size=8", f"degradation.T={min(cfg.degradation.T, 4)}"]
    return cfg.override(sets)


def _trained(name: str, steps: int, quick: bool, folder: Path, echo) -> Dict[str, Any]:
    """Train (or resume, or reuse) preset ``name`` in ``folder``; return its training time."""
    from colddiff.checkpoint import find_latest, read_meta
    from colddiff.training import train

    cfg = _config(name, steps, quick)
    latest = find_latest(folder / "checkpoints")
    t0 = time.perf_counter()
    if latest is None:
        echo(f"training {name} for {steps} steps -> {folder}")
        train(cfg, folder, progress=False)
    else:
        config, state = read_meta(latest)
        if config.get("preset") != name:
            raise SystemExit(f"{folder} holds a {config.get('preset')!r} run, not {name}")
        if int(state.get("step", 0)) < steps:
            echo(f"resuming {name} at step {state.get('step')} of {steps}")
            train(cfg, folder, resume=True, progress=False)
        else:
            echo(f"reusing {folder} ({state.get('step')} steps)")
            return {"train_s": None}
    return {"train_s": time.perf_counter() - t0}


def run(steps: Optional[int], n: Optional[int], quick: bool, keep: Optional[Path], echo=print,
        rows: Optional[List[str]] = None) -> Dict[str, Any]:
    from colddiff.generation import generation_defaults
    from colddiff.generation_eval import evaluate_generation
    from colddiff.quickstart import STEPS
    from colddiff.runs import load_run

    steps = steps or (8 if quick else STEPS)
    n = n or (8 if quick else 200)
    chosen = [r for r in ROWS if rows is None or r.key in rows]
    base = Path(tempfile.mkdtemp(prefix="colddiff-generation-")) if keep is None else Path(keep)
    start = time.perf_counter()
    out_rows, train_s, reference = [], {}, None
    try:
        for r in chosen:
            folder = base / r.preset
            if r.preset not in train_s:
                train_s[r.preset] = _trained(r.preset, steps, quick, folder, echo)["train_s"]
            run_ = load_run(folder, device="cpu")
            st = generation_defaults(run_, r.sampler, r.noise, r.delta if r.sampler == "stochastic" else 0.0)
            setting = {"setting": r.label, "sampler": st["sampler"], "noise": st["noise"], "delta": st["delta"],
                       "folder": f"bench-{r.key}"}
            ev = evaluate_generation(run_, n=n, fid="classifier", progress=False, settings=[setting])
            row = dict(ev.rows[0])
            row.update(key=r.key, preset=r.preset, hot=r.hot, k=st["k"], T=run_.T,
                       degradation=deg.describe(run_.D), input_noise=run_.cfg.degradation.input_noise,
                       train_s=train_s[r.preset], grid=str(Path(row["folder"]) / "grid.png") if keep else None)
            row.pop("blank_definition", None)
            out_rows.append(row)
            if reference is None:
                reference = dict(ev.rows[-1])
                reference.pop("blank_definition", None)
            echo(f"{r.key}: FID {row['fid']:.2f}, entropy {row['entropy']:.3f}, "
                 f"{row['classes_covered_3pct']} classes >= 3%, blank {100 * row['near_blank_share']:.1f}%, "
                 f"confidence {row['mean_confidence']:.3f}, {row['sample_seconds']:.1f} s")
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    result = {
        **machine_meta("generation", torch.device("cpu"), torch.float32,
                       datetime.now(timezone.utc).strftime("%Y-%m-%d")),
        "quick": quick, "steps": steps, "n": n, "network": "mnist-cpu (dim 16, 1-2-2)" if not quick else "tiny (dim 8)",
        "rows": out_rows, "reference": reference, "wall_s": time.perf_counter() - start,
        "targets": TARGETS,
    }
    result.update(judge(result))
    return result


def judge(result: Dict[str, Any]) -> Dict[str, Any]:
    """The quickstart row against the generation targets (never judged in --quick mode)."""
    rows = {r["key"]: r for r in result["rows"]}
    try:
        key = quickstart_row()
    except StopIteration:
        key = None
    hot = next((r for r in result["rows"] if r["hot"]), None)
    if result["quick"] or key not in rows:
        return {"ok": True, "quickstart_row": key, "summary": f"pipeline check: {len(rows)} rows ran"}
    q = rows[key]
    checks = {
        "entropy": (q["entropy"], q["entropy"] >= TARGETS["entropy"], f">= {TARGETS['entropy']:.2f}"),
        "classes_3pct": (q["classes_covered_3pct"], q["classes_covered_3pct"] >= TARGETS["classes_3pct"],
                         f">= {TARGETS['classes_3pct']} of 10"),
        "near_blank": (q["near_blank_share"], q["near_blank_share"] <= TARGETS["near_blank"],
                       f"<= {100 * TARGETS['near_blank']:.0f}%"),
        "confidence": (q["mean_confidence"], q["mean_confidence"] >= TARGETS["confidence"],
                       f">= {TARGETS['confidence']:.2f}"),
    }
    if hot is not None:
        checks["fid_vs_hot"] = (q["fid"], q["fid"] <= hot["fid"], f"<= hot baseline {hot['fid']:.2f}")
    missed = [f"{k}: {v[0]:.3g} (target {v[2]})" for k, v in checks.items() if not v[1]]
    return {"ok": not missed, "quickstart_row": key, "target_missed": missed,
            "checks": {k: {"value": v[0], "met": v[1], "target": v[2]} for k, v in checks.items()},
            "summary": f"quickstart row {key}: " + ("every target met" if not missed else
                                                    f"{len(missed)} target(s) missed")}


def format_table(r: Dict[str, Any], markdown: bool = False) -> str:
    head = ["row (same network, %d steps, %d images)" % (r["steps"], r["n"]), "FID (classifier) ↓",
            "class entropy ↑", "classes ≥3% ↑", "near-blank ↓", "confidence ↑", "sampling s"]
    rows: List[List[str]] = []
    for x in r["rows"]:
        label = x["setting"] + (" ← quickstart" if x["key"] == r.get("quickstart_row") else "")
        rows.append([label, f"{x['fid']:.2f}", f"{x['entropy']:.3f}", f"{x['classes_covered_3pct']} of 10",
                     f"{100 * x['near_blank_share']:.1f}%", f"{x['mean_confidence']:.3f}", f"{x['sample_seconds']:.1f}"])
    ref = r.get("reference")
    if ref:
        rows.append([ref["setting"], "–", f"{ref['entropy']:.3f}", f"{ref['classes_covered_3pct']} of 10",
                     f"{100 * ref['near_blank_share']:.1f}%", f"{ref['mean_confidence']:.3f}", ""])
    return markdown_table(head, rows) if markdown else text_table(head, rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.generation", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a tiny network, a few steps: checks that every row runs")
    p.add_argument("--device", default="cpu", help="accepted for symmetry; this CPU benchmark runs on the CPU")
    p.add_argument("--dtype", default="float32", help="ignored (float32)")
    p.add_argument("--steps", type=int, default=None, help="training steps per row (default: the quickstart's)")
    p.add_argument("--n", type=int, default=None, help="images generated per row (default 200; --quick 8)")
    p.add_argument("--rows", default=None, help="comma-separated row keys (default all: "
                   + ", ".join(r.key for r in ROWS) + ")")
    p.add_argument("--keep", type=Path, default=None, help="train into (and reuse runs from) this folder; grids are "
                   "left in DIR/PRESET/generation/bench-ROW/")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    p.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    return p


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parser().parse_args(argv)
    rows = [s.strip() for s in args.rows.split(",")] if args.rows else None
    if rows:
        unknown = [k for k in rows if k not in {r.key for r in ROWS}]
        if unknown:
            raise SystemExit(f"unknown rows {unknown}; known: {', '.join(r.key for r in ROWS)}")
    out = args.out
    if args.quick and out == DEFAULT_OUT:
        out = out.with_name("generation-quick.json")  # a pipeline check never overwrites the real figures
    result = run(args.steps, args.n, args.quick, args.keep, rows=rows)
    return finish(result, format_table, args.markdown, out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Quickstart quality benchmark: the whole ``colddiff quickstart`` run, timed, with its targets.

Runs ``colddiff.quickstart.quickstart`` in a fresh folder (training on the embedded MNIST
digits, evaluation of 500 held-out digits from the quickstart's t, generation, report) and
records the wall time of each stage, the restoration table and the two restoration targets:

* direct reconstruction RMSE <= 0.6 x the degraded RMSE;
* Algorithm 2 restorations keep the digit (classifier) >= 80 %;

and the generation figures (class entropy, classes holding >= 3%, near-blank share,
confidence) with the quickstart's generation targets (see ``colddiff.quickstart``).  ``--quick`` trains 100 steps only, to check the pipeline: its
quality figures mean nothing and it never reports the targets as met or missed.

    python -m benchmarks.quickstart [--quick] [--device cpu|cuda] [--markdown] [--out PATH]
"""
from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from colddiff.tables import markdown_table, text_table

from .common import device_name, finish

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "quickstart.json"
BUDGET_S = 600.0


def run(steps: Optional[int], quick: bool, keep: Optional[Path]) -> Dict[str, Any]:
    from colddiff.quickstart import STEPS, quickstart

    steps = steps or (100 if quick else STEPS)
    folder = Path(tempfile.mkdtemp(prefix="colddiff-quickstart-")) if keep is None else keep
    start = time.perf_counter()
    try:
        res = quickstart(folder / "run" if keep is None else folder, steps=steps, progress=False,
                         n=100 if quick else 500, gen_n=50 if quick else 200, echo=lambda *a: None)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    wall = time.perf_counter() - start
    ev = {r["method"]: r for r in res["evaluation"]["rows"]}
    gen = res["generation"]["rows"]
    out = {
        "benchmark": "quickstart", "quick": quick, "steps": steps, "t": res["t"],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "device": device_name(torch.device("cpu")),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "wall_s": wall, "stage_s": res["seconds"], "budget_s": BUDGET_S,
        "rows": res["evaluation"]["rows"], "targets": res["targets"],
        "classifier_accuracy": res["evaluation"]["classifier_accuracy"],
        "generation": [{k: r.get(k) for k in ("setting", "entropy", "classes_covered_1pct", "classes_covered_3pct",
                                             "near_blank_share", "mean_confidence", "fid", "histogram")} for r in gen],
        "generation_targets": res["targets"].get("generation"),
        "n": res["evaluation"]["n"],
    }
    tg = res["targets"]
    out["within_budget"] = wall <= BUDGET_S
    g = tg.get("generation") or {}
    gen_ok = all(g.get(k, True) for k in ("entropy_ok", "classes_ok", "near_blank_ok", "confidence_ok"))
    out["ok"] = True if quick else bool(tg["rmse_ok"] and tg["class_ok"] and out["within_budget"] and gen_ok)
    out["summary"] = (f"degraded RMSE {ev['degraded']['rmse']:.3f}, direct {ev['direct']['rmse']:.3f} "
                      f"({tg['rmse_ratio']:.2f}x); class kept Alg. 2 {100 * (tg['class_kept_algorithm2'] or 0):.1f}% "
                      f"vs degraded {100 * (tg['class_kept_degraded'] or 0):.1f}%")
    return out


def format_table(r: Dict[str, Any], markdown: bool = False) -> str:
    tg = r["targets"]
    rows: List[List[str]] = [
        ["wall time (train+evaluate+generate+report)", f"{r['wall_s'] / 60:.1f} min", f"<= {r['budget_s'] / 60:.0f} min",
         "-" if r["quick"] else ("met" if r["within_budget"] else "MISSED")],
        ["direct RMSE / degraded RMSE (t=%d)" % r["t"], f"{tg['rmse_ratio']:.2f}", f"<= {tg['rmse_ratio_target']}",
         "-" if r["quick"] else ("met" if tg["rmse_ok"] else "MISSED")],
        ["Alg. 2 restorations with the right digit", f"{100 * (tg['class_kept_algorithm2'] or 0):.1f}%",
         f">= {100 * tg['class_kept_target']:.0f}%", "-" if r["quick"] else ("met" if tg["class_ok"] else "MISSED")],
        ["degraded inputs with the right digit", f"{100 * (tg['class_kept_degraded'] or 0):.1f}%", "(chance 10%)", ""],
    ]
    for g in r["generation"]:
        rows.append([f"generation, {g['setting']}: class entropy / classes ≥3% / near-blank / confidence",
                     f"{g['entropy']:.2f} / {g.get('classes_covered_3pct')} / {100 * g['near_blank_share']:.0f}% / "
                     f"{g['mean_confidence']:.2f}", ">= 0.90 / >= 9 / <= 2% / >= 0.85", ""])
    head = ["quickstart (%d steps, %d digits)" % (r["steps"], r["n"]), "measured", "target", ""]
    return markdown_table(head, rows) if markdown else text_table(head, rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quickstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100 training steps: checks the pipeline, not the targets")
    p.add_argument("--device", default="cpu", help="accepted for symmetry with the other modules; the quickstart "
                   "is a CPU benchmark and runs on the CPU")
    p.add_argument("--dtype", default="float32", help="ignored (the quickstart trains in float32)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the quickstart's)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run in this folder instead of a temporary one")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    p.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    return p


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parser().parse_args(argv)
    if args.device != "cpu":
        print("benchmarks.quickstart: the quickstart is a CPU benchmark; running it on the CPU")
    out = args.out
    if args.quick and out == DEFAULT_OUT:
        out = out.with_name("quickstart-quick.json")  # a pipeline check never overwrites the real figures
    result = run(args.steps, args.quick, args.keep)
    return finish(result, format_table, args.markdown, out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

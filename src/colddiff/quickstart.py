"""``colddiff quickstart``: train, evaluate, generate and report on the embedded MNIST digits.

One model, a few minutes on two CPU cores.  The quickstart trains ``mnist5k-sr``, the best
cold row of the generation benchmark (``python -m benchmarks.generation``): ×2 downsampling
three times, 28 -> 14 -> 7 -> 4 px.  The same network *restores* (from t = 2, a 7×7 digit)
and *generates*: its end state is a 4×4 image, 16 numbers, so a Gaussian mixture fitted to
the whole end state of the training digits draws a start that already fixes a digit's rough
layout, and Algorithm 2 restores it.  (The paper's blur start, a constant grey image, leaves
a deterministic restorer one number to work from; the benchmark shows its images side by side.)

The targets printed at the end, on the 500 held-out digits:

* direct reconstruction RMSE at most 0.6x the RMSE of the degraded input, and
* the classifier recognises the right digit in at least 80% of Algorithm 2 restorations;

and on the generated digits (``gen_n``, 200 by default): class entropy >= 0.90, at least 9 of
10 classes holding >= 3% of the images, near-blank <= 2%, mean classifier confidence >= 0.85.
(Its FID against the hot baseline at the same budget is measured by the benchmark.)
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict

from .errors import ConfigError, StoppedError
from .validate import whole

log = logging.getLogger("colddiff.quickstart")

PRESET = "mnist5k-sr"
STEPS = 1000            # ~3.5 minutes of training on 2 idle cores (the preset itself: 3,000 steps)
RESTORE_T = 2           # t = 2 of 3: a 7x7 digit
TARGET_RMSE_RATIO = 0.6
TARGET_CLASS_KEPT = 0.80
GENERATION_TARGETS = {"entropy": 0.90, "classes_3pct": 9, "near_blank": 0.02, "confidence": 0.85}


def targets(ev, gev=None) -> Dict[str, Any]:
    """The quickstart's targets, measured on an evaluation table (and on its generation table's first row)."""
    rows = {r["method"]: r for r in ev.rows}
    ratio = rows["direct"]["rmse"] / rows["degraded"]["rmse"]
    kept = rows["algorithm2"].get("accuracy")
    out = {
        "rmse_ratio": ratio, "rmse_ratio_target": TARGET_RMSE_RATIO, "rmse_ok": ratio <= TARGET_RMSE_RATIO,
        "class_kept_algorithm2": kept, "class_kept_degraded": rows["degraded"].get("accuracy"),
        "class_kept_target": TARGET_CLASS_KEPT, "class_ok": kept is not None and kept >= TARGET_CLASS_KEPT,
    }
    if gev is not None:
        g, tg = gev.rows[0], GENERATION_TARGETS
        out["generation"] = {
            "setting": g["setting"], "targets": tg,
            "entropy": g["entropy"], "entropy_ok": g["entropy"] >= tg["entropy"],
            "classes_3pct": g["classes_covered_3pct"], "classes_ok": g["classes_covered_3pct"] >= tg["classes_3pct"],
            "near_blank": g["near_blank_share"], "near_blank_ok": g["near_blank_share"] <= tg["near_blank"],
            "confidence": g["mean_confidence"], "confidence_ok": g["mean_confidence"] >= tg["confidence"],
            "fid": g.get("fid"),
        }
    return out


def quickstart(out="runs/quickstart", steps: int = STEPS, t: int = RESTORE_T, n: int = 500, gen_n: int = 200,
               noise: float = 0.0, progress: bool = True, echo=print, schedule=None) -> Dict[str, Any]:
    """Train (or resume, or reuse) the quickstart run, evaluate it, generate from it, write the report.
    ``schedule``: the steps the samplers visit in the evaluation and the generation (every step by default)."""
    # imported when the quickstart runs: `colddiff --help` reads STEPS and RESTORE_T without loading torch
    from .checkpoint import find_latest, read_meta
    from .evaluation import evaluate, write_evaluation
    from .figures import write_figures
    from .generation import generate, generation_defaults, write_generation
    from .generation_eval import evaluate_generation, setting_name, write_generation_evaluation
    from .presets import preset
    from .report import generation_section, write_report
    from .runs import check_t, load_run
    from .samplers import check_schedule
    from .training import train

    start = time.perf_counter()
    out = Path(out)
    cfg = preset(PRESET).override([f"train.steps={steps}"])
    t = check_t(t, cfg.degradation.T)
    for what, v in (("--n", n), ("--gen-n", gen_n)):  # checked before minutes of training, not after
        whole(v, what, 1)
    schedule = check_schedule("algorithm2", schedule, cfg.degradation.T, t)
    latest = find_latest(out / "checkpoints")
    timings: Dict[str, float] = {}

    # 1. train (resume an interrupted quickstart; reuse a finished one)
    t0 = time.perf_counter()
    if latest is None:
        echo(f"[1/4] training {PRESET} for {steps} steps on the embedded MNIST digits -> {out}")
        summary = train(cfg, out, progress=progress)
    else:
        config, state = read_meta(latest)
        done_step = int(state.get("step", 0))
        if config.get("preset") != PRESET:
            raise ConfigError(f"{out} holds a {config.get('preset')!r} run, not a quickstart; "
                              "choose another --out")
        if done_step < steps:
            echo(f"[1/4] resuming the quickstart run in {out} at step {done_step} of {steps}")
            summary = train(cfg.override([f"train.steps={steps}"]), out, resume=True, progress=progress)
        else:
            echo(f"[1/4] {out} is already trained ({done_step} steps); reusing it (delete the folder to retrain)")
            summary = {"stopped_early": False, "step": done_step}
    timings["train"] = time.perf_counter() - t0
    if summary.get("stopped_early"):
        raise StoppedError(f"training was interrupted at step {summary['step']}; run `colddiff quickstart` again "
                           "to continue where it stopped")

    run = load_run(out)
    # 2. Table 1 layout at the restoration severity
    t0 = time.perf_counter()
    echo(f"[2/4] evaluating: {n} held-out digits restored from t={t} of T={run.T}")
    ev = evaluate(run, n=n, t=t, fid="classifier", progress=progress, schedule=schedule)
    write_evaluation(ev, run.folder / "evaluation")
    timings["evaluate"] = time.perf_counter() - t0

    # 3. generation from scratch (t = T) with the run's own start state and sampler: a grid, and the measurements
    t0 = time.perf_counter()
    st = generation_defaults(run, noise=noise)
    own = {"setting": f"{setting_name(st['sampler'], st['noise'], st['delta'])}, GMM k={st['k']}", **st}
    echo(f"[3/4] generating {gen_n} digits from t=T={run.T} ({own['setting']})")
    grid = generate(run, 64, progress=progress, schedule=schedule, **st)
    write_generation(grid, run.folder / "generation" / "quickstart", {**st, "seed": 0, "run": str(run.folder),
                                                                      "sample_steps": str(schedule)})
    gev = evaluate_generation(run, n=gen_n, fid="classifier", progress=progress, settings=[own], schedule=schedule)
    write_generation_evaluation(gev, run.folder / "evaluation")
    timings["generate"] = time.perf_counter() - t0

    # 4. figures and report
    t0 = time.perf_counter()
    echo("[4/4] writing figures and the HTML report")
    figs = write_figures(run, progress=progress, t=t)
    report = write_report(run, figs, [ev], extra_sections=generation_section(run.folder), fig_t=t)
    timings["report"] = time.perf_counter() - t0

    result = {
        "run": str(run.folder), "report": str(report), "preset": PRESET, "steps": run.step, "t": t,
        "sample_steps": str(schedule),
        "evaluation": ev.to_dict(), "generation": gev.to_dict(), "targets": targets(ev, gev),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    with open(run.folder / "quickstart.json", "w") as f:
        json.dump(result, f, indent=2)
    return result


def summary_text(result: Dict[str, Any]) -> str:
    from .evaluation import Evaluation
    from .generation_eval import GenerationEvaluation

    ev = Evaluation.from_dict(result["evaluation"])
    gev = GenerationEvaluation.from_dict(result["generation"])
    tg = result["targets"]
    mark = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    lines = [
        "", ev.text(), "",
        f"target: direct RMSE <= {tg['rmse_ratio_target']:.1f}x degraded RMSE: {tg['rmse_ratio']:.2f}x "
        f"({mark(tg['rmse_ok'])})",
        f"target: Algorithm 2 keeps the digit >= {100 * tg['class_kept_target']:.0f}%: "
        f"{100 * (tg['class_kept_algorithm2'] or 0):.1f}% (degraded inputs: {100 * (tg['class_kept_degraded'] or 0):.1f}%,"
        f" chance 10%) ({mark(tg['class_ok'])})",
        "", gev.text(), "",
    ]
    g = tg.get("generation")
    if g:
        gt = g["targets"]
        lines += [
            f"target: generated digits, class entropy >= {gt['entropy']:.2f}: {g['entropy']:.3f} ({mark(g['entropy_ok'])})",
            f"target: >= {gt['classes_3pct']} of 10 classes with >= 3% of the images: {g['classes_3pct']} "
            f"({mark(g['classes_ok'])})",
            f"target: near-blank <= {100 * gt['near_blank']:.0f}%: {100 * g['near_blank']:.1f}% ({mark(g['near_blank_ok'])})",
            f"target: mean classifier confidence >= {gt['confidence']:.2f}: {g['confidence']:.3f} "
            f"({mark(g['confidence_ok'])})",
            "",
        ]
    lines += [
        f"done in {result['total_seconds'] / 60:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items()) + ")",
        f"report: {result['report']}  (open it in a browser; no server needed)",
    ]
    return "\n".join(lines)

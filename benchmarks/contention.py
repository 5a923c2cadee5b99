"""Contention benchmark: one training alone against three at once, with torch's default threads and
with colddiff's thread policy (``colddiff.threads``).

Each training is a fresh ``python -m colddiff train --preset mnist5k-sr --set train.steps=N`` into its
own temporary folder.  For each mode the benchmark times one run alone, then three started together
(the wall time until the last ends).  The fair share of three runs is three times one lone run with
torch's default (what three runs one after the other would take).  Modes:

* ``default``: ``COLDDIFF_THREADS`` set to every core: each process takes every core and OpenMP's
  spinning wait policy, as colddiff did before the thread policy;
* ``policy``: nothing set: colddiff measures the machine at start and while it trains.

Targets (on an otherwise idle machine): three concurrent runs under the policy within 1.3x the fair
share; a lone run under the policy within 5% of the default's.  Anything else running on the machine
(an editor, a browser, other jobs) is part of what is measured: run it alone.

    python -m benchmarks.contention [--quick] [--steps N] [--modes default,policy] [--markdown] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from benchmarks.common import add_options, finish, machine_meta, render
from colddiff.threads import cores

NAME = "contention"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "contention.json"
PRESET = "mnist5k-sr"
CONCURRENT = 3
TARGET_SHARE = 1.3   # three concurrent runs: wall time / fair share
TARGET_LONE = 1.05   # a lone run under the policy / a lone run with torch's default
MODES = ("default", "policy")
# settings a user may have in the shell; each mode sets its own
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "COLDDIFF_THREADS", "GOMP_SPINCOUNT")


def env_for(mode: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)   # the package measured here
    if mode == "default":
        env["COLDDIFF_THREADS"] = str(cores())
    return env


def start(out: Path, steps: int, env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "colddiff", "train", "--preset", PRESET, "--set",
                             f"train.steps={steps}", "--out", str(out), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wall(n: int, steps: int, mode: str, root: Path) -> Dict[str, Any]:
    """Start ``n`` trainings together; the wall time until the last ends, and each one's."""
    env = env_for(mode)
    t0 = time.perf_counter()
    procs = [start(root / f"{mode}-{n}-{i}-{time.time_ns()}", steps, env) for i in range(n)]
    each = []
    for p in procs:
        _, err = p.communicate()
        each.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"a training exited {p.returncode}: {err.strip()[-400:]}")
    return {"runs": n, "wall_s": max(each), "each_s": each}


def run(steps: int, modes: List[str], quick: bool) -> Dict[str, Any]:
    begin = time.perf_counter()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="colddiff-contention-") as tmp:
        root = Path(tmp)
        wall(1, max(5, steps // 10), "default", root)   # warm-up: file caches, the data set's first read
        for mode in modes:
            lone = wall(1, steps, mode, root)
            together = wall(CONCURRENT, steps, mode, root)
            rows.append({"mode": mode, "lone_s": lone["wall_s"], "concurrent_s": together["wall_s"],
                         "concurrent_each_s": together["each_s"]})
    base = next((r["lone_s"] for r in rows if r["mode"] == "default"), None)
    for r in rows:
        r["fair_share_s"] = CONCURRENT * base if base else None
        r["vs_fair_share"] = r["concurrent_s"] / r["fair_share_s"] if base else None
        r["lone_vs_default"] = r["lone_s"] / base if base else None
    pol = next((r for r in rows if r["mode"] == "policy"), None)
    missed = []
    if pol and base and not quick:
        if pol["vs_fair_share"] > TARGET_SHARE:
            missed.append(f"3 concurrent runs took {pol['vs_fair_share']:.2f}x the fair share (target <= {TARGET_SHARE})")
        if pol["lone_vs_default"] > TARGET_LONE:
            missed.append(f"a lone run took {pol['lone_vs_default']:.2f}x torch's default (target <= {TARGET_LONE})")
    meta = {**machine_meta(NAME, torch.device("cpu"), torch.float32, date), "quick": quick, "steps": steps,
            "preset": PRESET, "concurrent": CONCURRENT, "cores": cores(),
            "load_average_before_1_5_15": list(load_before) if load_before else None,
            "total_runtime_s": time.perf_counter() - begin}
    meta.pop("dtype")
    meta.pop("threads")
    summary = "; ".join(f"{r['mode']}: lone {r['lone_s']:.0f} s, 3 at once {r['concurrent_s']:.0f} s"
                        + (f" ({r['vs_fair_share']:.2f}x fair share)" if r["vs_fair_share"] else "") for r in rows)
    return {"meta": meta, "rows": rows, "ok": not missed, "summary": summary, "target_missed": missed}


COLUMNS = ["threads", "1 alone s", "3 at once s", "fair share s", "vs fair share", "alone vs default"]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    load = meta.get("load_average_before_1_5_15")
    head = (f"Contention: {meta['concurrent']} x `colddiff train --preset {meta['preset']} --set "
            f"train.steps={meta['steps']}` at once vs one alone; {meta['device_name']}, {meta['cores']} cores"
            + (f", load before {load[0]:.1f}" if load else "") + f", torch {meta['torch']}, {meta['date']}"
            + (" [quick]" if meta["quick"] else ""))
    label = {"default": "torch default (every core, spinning waits)", "policy": "colddiff policy"}
    cells = [[label.get(r["mode"], r["mode"]), f"{r['lone_s']:.1f}", f"{r['concurrent_s']:.1f}",
              "-" if r["fair_share_s"] is None else f"{r['fair_share_s']:.1f}",
              "-" if r["vs_fair_share"] is None else f"{r['vs_fair_share']:.2f}x",
              "-" if r["lone_vs_default"] is None else f"{r['lone_vs_default']:.2f}x"] for r in result["rows"]]
    lines = [f"**{head}**", ""] if markdown else [head]
    lines += render(COLUMNS, cells, set(range(1, 6)), markdown)
    lines.append("")
    lines.append(f"fair share = {meta['concurrent']} x one run alone with torch's default threads. Targets: the policy's "
                 f"3 concurrent runs <= {TARGET_SHARE}x the fair share, its lone run <= {TARGET_LONE}x the default's "
                 "(not judged with --quick). Wall times include each process's start-up.")
    lines.append(f"Total runtime {meta['total_runtime_s']:.0f} s.")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.contention", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "30 training steps, no target judged",
                "ignored: the trainings run on the CPU (taken so that python -m benchmarks can pass it on)")
    p.add_argument("--steps", type=int, default=None, help="training steps of each run (default 150, quick 30)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: default,policy")
    return p


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run, print the table, write the JSON; return the result."""
    args = parser().parse_args(argv)
    steps = args.steps if args.steps is not None else (30 if args.quick else 150)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if steps < 1 or bad or not modes:
        raise SystemExit(f"benchmarks.contention: --steps must be >= 1 and --modes a list of {', '.join(MODES)}")
    return finish(run(steps, modes, args.quick), format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Start-up benchmark: how long ``colddiff --version`` and ``colddiff --help`` take before doing anything.

Each command runs N times, each time in a fresh subprocess (``python -m colddiff ...`` with this
interpreter, so the package on ``sys.path`` is the one measured), interleaved with the same
number of runs of the baseline ``python -c pass``: Python's own start-up.  The table gives the
median wall time of each and the median minus the baseline's median: what the package adds.
Two reference rows say where that time goes: ``python -c "import colddiff"`` (the package's
top level) and ``python -c "import torch"``.  One further run of ``colddiff --help`` under
``python -X importtime`` names the top-level modules whose import took longest.

Target: ``--version`` and ``--help`` add under 1 s to Python's start-up on an idle machine.
A loaded machine inflates every row (the baseline too); ``--quick`` (3 runs) checks that the
benchmark runs and judges no target.

    python -m benchmarks.startup [--quick] [--runs N] [--markdown] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.common import add_options, finish, machine_meta, ms, render

NAME = "startup"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "startup.json"
TARGET_S = 1.0  # what --version / --help may add to Python's start-up

# (label, arguments after the interpreter, judged against the target)
COMMANDS: List[Tuple[str, List[str], bool]] = [
    ("python -c pass (baseline)", ["-c", "pass"], False),
    ("colddiff --version", ["-m", "colddiff", "--version"], True),
    ("colddiff --help", ["-m", "colddiff", "--help"], True),
    ('python -c "import colddiff"', ["-c", "import colddiff"], False),
    ('python -c "import torch"', ["-c", "import torch"], False),
]


def run_once(args: List[str], env: Dict[str, str]) -> float:
    """Wall seconds of one fresh ``python ARGS`` (its output discarded); a failure is an error."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    sec = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return sec


def heaviest_imports(args: List[str], env: Dict[str, str], n: int = 8) -> List[Dict[str, Any]]:
    """The ``n`` modules imported at the top two levels with the largest cumulative import time
    under ``-X importtime`` (a module the command imports, and what that one imports)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    found = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # importtime indents each level by two spaces
        if name.strip() and depth <= 1 and cumulative.strip().isdigit():
            found.append({"module": name.strip(), "cumulative_ms": int(cumulative) / 1e3})
    return sorted(found, key=lambda r: -r["cumulative_ms"])[:n]


def run(runs: int, quick: bool) -> Dict[str, Any]:
    start = time.perf_counter()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the package measured here
    times: Dict[str, List[float]] = {label: [] for label, _, _ in COMMANDS}
    for label, args, _ in COMMANDS:  # one warm-up run each: file-system caches
        run_once(args, env)
    for _ in range(runs):  # interleaved, so that changes in machine load hit every row alike
        for label, args, _ in COMMANDS:
            times[label].append(run_once(args, env))
    base = statistics.median(times[COMMANDS[0][0]])
    rows = []
    for label, args, judged in COMMANDS:
        med = statistics.median(times[label])
        row = {"command": label, "argv": args, "runs": runs, "median_s": med, "min_s": min(times[label]),
               "max_s": max(times[label]), "added_s": med - base, "samples_s": times[label],
               "target_met": bool(med - base < TARGET_S) if judged and not quick else None}
        rows.append(row)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta = {**machine_meta(NAME, torch.device("cpu"), torch.float32, date), "quick": quick, "runs": runs,
            "target_added_s": TARGET_S, "load_average_1_5_15": list(load) if load else None,
            "interpreter": sys.executable, "total_runtime_s": time.perf_counter() - start}
    meta.pop("dtype")
    meta.pop("threads")
    return {"meta": meta, "rows": rows, "heaviest_imports_help": heaviest_imports(COMMANDS[2][1], env),
            "ok": True, "summary": "; ".join(f"{r['command']} +{r['added_s']:.2f} s" for r in rows[1:3]),
            "target_missed": [f"{r['command']}: adds {r['added_s']:.2f} s (target < {TARGET_S:g} s)"
                              for r in rows if r["target_met"] is False]}


COLUMNS = ["command", "median ms", "min ms", "max ms", "added to python ms", "target met"]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    load = meta.get("load_average_1_5_15")
    head = (f"Start-up, fresh subprocesses: {meta['device_name']} ({meta['cpu_count']} cores"
            + (f", load {load[0]:.1f}" if load else "") + f"), Python {meta['python']}, torch {meta['torch']}, "
            f"median of {meta['runs']} runs, {meta['date']}" + (" [quick]" if meta["quick"] else ""))
    cells = [[r["command"], ms(r["median_s"] * 1e3), ms(r["min_s"] * 1e3), ms(r["max_s"] * 1e3),
              ("-" if r["added_s"] < 0 else "+") + ms(abs(r["added_s"]) * 1e3) if r is not result["rows"][0] else "-",
              "-" if r["target_met"] is None else ("yes" if r["target_met"] else "NO")] for r in result["rows"]]
    lines = [f"**{head}**", ""] if markdown else [head]
    lines += render(COLUMNS, cells, set(range(1, 5)), markdown)
    heavy = result.get("heaviest_imports_help") or []
    lines.append("")
    lines.append("Slowest imports of `colddiff --help`, two levels deep (python -X importtime, cumulative): "
                 + (", ".join(f"{h['module']} {h['cumulative_ms']:,.0f} ms" for h in heavy) or "-"))
    lines.append(f"added = median - median of `python -c pass`; target: --version and --help add < {TARGET_S:g} s "
                 "on an idle machine (not judged with --quick). Every run is a fresh `python -m colddiff ...`.")
    lines.append(f"Total runtime {meta['total_runtime_s']:.1f} s.")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "3 runs of each command, no target judged",
                "ignored: start-up runs on the CPU (taken so that python -m benchmarks can pass it on)")
    p.add_argument("--runs", type=int, default=None, help="runs of each command (default 10, quick 3)")
    return p


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run, print the table, write the JSON; return the result."""
    args = parser().parse_args(argv)
    runs = args.runs if args.runs is not None else (3 if args.quick else 10)
    if runs < 1:
        raise SystemExit("benchmarks.startup: --runs must be at least 1")
    return finish(run(runs, args.quick), format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

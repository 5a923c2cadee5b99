"""Run every benchmark and merge their results into ``benchmarks/results.json``.

    python -m benchmarks [--quick] [--device cpu|cuda] [--dtype float32|bfloat16]
                         [--markdown] [--out PATH] [--only NAME,...]

Each module in ``MODULES`` is ``benchmarks.<name>`` and provides ``run_cli(argv) -> dict``
(parse the options, run, print its table, write its own JSON, return the result with an
``ok`` flag).  The merged file maps each module's name to its latest result; results of
modules not run this time are kept.  Exit status 1 if any benchmark reported a failure.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

MODULES = ["degradations", "training", "sampling", "throughput", "quickstart", "generation", "networks", "startup",
           "contention", "steps"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small, fast settings only")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", help="float32 or bfloat16 (default float32)")
    p.add_argument("--markdown", action="store_true", help="also print each table in Markdown")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"merged JSON (default {DEFAULT_OUT})")
    p.add_argument("--only", help="comma-separated benchmark names (default: all of " + ", ".join(MODULES) + ")")
    args = p.parse_args(argv)

    names = [n.strip() for n in args.only.split(",")] if args.only else list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")

    forwarded = ["--device", args.device, "--dtype", args.dtype]
    if args.quick:
        forwarded.append("--quick")
    if args.markdown:
        forwarded.append("--markdown")

    merged: Dict[str, Any] = {}
    if args.out.exists():
        try:
            with open(args.out) as f:
                old = json.load(f)
            if isinstance(old, dict):
                merged = old
        except (OSError, ValueError):
            print(f"benchmarks: {args.out} is unreadable; starting a new one", file=sys.stderr)

    ok = True
    for name in names:
        print(f"== benchmark: {name} ==", flush=True)
        mod = importlib.import_module(f"benchmarks.{name}")
        result = mod.run_cli(forwarded)
        merged[name] = result
        ok = ok and bool(result.get("ok", True))
        print()

    print("== summary ==")
    for name in names:
        r = merged[name]
        status = "ok" if r.get("ok", True) else "TARGET MISSED / FAILED"
        extra = r.get("summary") or "; ".join(r.get("target_missed", []) or r.get("failures", []) or [])
        print(f"{name:<13} {status:<22} {extra}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(merged, f, indent=2)
        f.write("\n")
    print(f"merged results of {', '.join(names)} into {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

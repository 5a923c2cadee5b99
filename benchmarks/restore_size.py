"""Native-size restoration of large images: seconds per megapixel.

The ``folder-blur`` preset's network (dim 16, levels 1-2-2, one res block, no attention above the
lowest level; untrained: its cost does not depend on its weights) and degradation (blur, T = 10)
restore one square grey-noise image of each size with ``colddiff.restoration.restore_image``, the
function ``colddiff restore`` calls.  Images above the whole-image budget (192x192 for this network)
go in 192-px tiles with the default 32-px overlap, in batches of 64 tiles.  Rows: direct
reconstruction (one network call per tile) and Algorithm 2 from t = 5 (five calls per tile).
Each row is timed once, after one warm-up call, and reports seconds, megapixels and seconds per
megapixel.  The machine's load average is recorded beside the numbers: on a shared machine they
are upper bounds, not quiet-machine times.

    python -m benchmarks.restore_size [--quick] [--device cpu|cuda] [--sizes 512,1024] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from benchmarks.common import add_options, device_of, finish, heading, machine_meta, render, timed

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "restore_size.json"
SIZES, QUICK_SIZES = (512, 1024), (256,)
ROWS = (("direct", 10), ("algorithm2", 5))   # (sampler, t)


def _run(device: torch.device):
    """A Run of the folder-blur preset with an untrained network, in memory."""
    from colddiff.presets import preset
    from colddiff.runs import Run

    cfg = preset("folder-blur")
    cfg.data.channels = 1
    torch.manual_seed(0)
    model = cfg.build_model().to(device).eval().requires_grad_(False)
    return Run(folder=Path("."), checkpoint=Path("untrained"), cfg=cfg, step=0, model=model,
               D=cfg.build_degradation(), device=device)


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.restore_size", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "one 256-px image only", "network precision (float32 only)", dtypes=("float32",))
    p.add_argument("--sizes", default=None, help="comma-separated image sides (default 512,1024)")
    args = p.parse_args(argv)
    device = device_of(args, p.prog)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    from colddiff.restoration import restore_image

    run = _run(device)
    meta = {**machine_meta("restore_size", device, torch.float32, datetime.now(timezone.utc).strftime("%Y-%m-%d")),
            "quick": args.quick, "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    g = torch.Generator().manual_seed(0)
    restore_image(run, torch.rand(1, 1, 64, 64, generator=g) * 2 - 1, 1, "direct")   # warm-up
    rows = []
    for side in sizes:
        y = torch.rand(1, 1, side, side, generator=g) * 2 - 1
        for sampler, t in ROWS:
            seconds, _ = timed(lambda: restore_image(run, y, t, sampler), device)
            mp = side * side / 1e6
            rows.append({"side": side, "sampler": sampler, "t": t, "seconds": seconds, "megapixels": mp,
                         "s_per_mp": seconds / mp})
            print(f"  {side}x{side} {sampler} t={t}: {seconds:.1f} s", file=sys.stderr)
    meta["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return finish({"meta": meta, "rows": rows, "ok": True}, format_table, args.markdown, args.out)


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    load = meta.get("load_average")
    lines = heading("restore at native size, folder-blur network"
                    + (f", load average {load[0]:.1f} on {meta['cpu_count']} cores" if load else ""), meta, markdown)
    rows = [[f"{r['side']}x{r['side']}", r["sampler"], str(r["t"]), f"{r['megapixels']:.2f}", f"{r['seconds']:.1f}",
             f"{r['s_per_mp']:.1f}"] for r in result["rows"]]
    return "\n".join(lines + render(["image", "sampler", "t", "MP", "seconds", "s / MP"], rows,
                                    numeric=[2, 3, 4, 5], markdown=markdown))


if __name__ == "__main__":
    sys.exit(0 if run_cli().get("ok") else 1)

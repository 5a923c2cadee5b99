"""Helpers shared by the benchmark modules: device names, synchronisation, JSON output."""
from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any, Dict

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def write_json(result: Dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(clean(result), f, indent=2, allow_nan=False)
        f.write("\n")


def pick_presets(text, rows) -> "list | None":
    """The comma-separated preset names of a ``--presets`` option (None: all), checked against ``rows``."""
    if not text:
        return None
    names = [s.strip() for s in text.split(",")]
    known = [r.preset for r in rows]
    unknown = [s for s in names if s not in known]
    if unknown:
        raise SystemExit(f"unknown presets {unknown}; known: {', '.join(known)}")
    return names


# Result lists every module may report, and how each is printed after its table.
NOTES = (("target_missed", "target missed: "), ("warnings", "WARNING: "), ("failures", "FAILED: "))


def finish(result: Dict[str, Any], format_table, markdown: bool, out: Path) -> Dict[str, Any]:
    """Print the table (and its Markdown), the missed targets, warnings and failures; write the JSON."""
    print(format_table(result))
    if markdown:
        print()
        print(format_table(result, markdown=True))
    for key, prefix in NOTES:
        for line in result.get(key) or []:
            print(f"{prefix}{line}")
    write_json(result, out)
    print(f"wrote {out}")
    return clean(result)


def machine_meta(name: str, device: torch.device, dtype: torch.dtype, date: str) -> Dict[str, Any]:
    """What every result records about where and how it was measured."""
    import os

    return {
        "benchmark": name,
        "date": date,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "dtype": str(dtype).replace("torch.", ""),
    }


def graphed_bare(R, x: torch.Tensor, T: int, steps: int):
    """T bare network calls replayed from one CUDA graph (t a static tensor): the floor for graphs mode."""
    static_t = torch.full((x.shape[0],), T, dtype=torch.long, device=x.device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        R(x, static_t)
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        R(x, static_t)

    def run():
        for k in range(steps):
            static_t.fill_(T - k)
            g.replay()
    return run

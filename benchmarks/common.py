"""Helpers shared by the benchmark modules: options, timing, the training step's parts, number
formats, tables (``colddiff.tables``), device names and JSON output."""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

import colddiff.degradations as deg
from colddiff import devices, speed
from colddiff.objective import l1_loss
from colddiff.tables import markdown_table, text_table
from colddiff.training import BatchStream, StepParts, train_step

# --dtype of the benchmarks that time the network: the autocast precision of train.precision / a run
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16"}


def autocast(device: torch.device, dtype: torch.dtype):
    """The network's autocast for ``--dtype``: ``colddiff.devices.autocast`` of that precision."""
    return devices.autocast(device, PRECISION[dtype])


# ---------------------------------------------------------------------------- options
@dataclass
class BenchOptions:
    """What every network benchmark's options start with; each module's ``Options`` adds its own."""

    device: torch.device
    dtype: torch.dtype
    quick: bool
    seed: int


def add_options(p: argparse.ArgumentParser, default_out: Optional[Path], quick_help: str, dtype_help: str,
                dtypes: Sequence[str] = tuple(DTYPES), out_help: Optional[str] = None) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick --device --dtype --out --markdown."""
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=sorted(dtypes), help=dtype_help)
    p.add_argument("--out", type=Path, default=default_out, help=out_help or f"JSON output (default {default_out})")
    p.add_argument("--markdown", action="store_true", help="also print the table(s) in Markdown")
    return p


def device_of(args: argparse.Namespace, prog: str) -> torch.device:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"{prog}: --device cuda but CUDA is not available")
    return device


# ---------------------------------------------------------------------------- timing
def timed(fn: Callable[[], Any], device: torch.device) -> Tuple[float, Any]:
    """Seconds of one call of ``fn`` (synchronised on CUDA), and its result."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


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


def run_rows(specs: Sequence[Any], bench: Callable[[Any], Dict[str, Any]],
             error_row: Callable[[Any, str], Dict[str, Any]], label: Callable[[Any], str], device: torch.device,
             progress: bool = True) -> List[Dict[str, Any]]:
    """``bench(spec)`` for each spec, timed; a row that raises becomes ``error_row(spec, problem)`` with the
    problem and traceback, and the others still run."""
    rows = []
    for i, spec in enumerate(specs):
        t0 = time.perf_counter()
        try:
            row = bench(spec)
        except Exception as e:  # a broken row says so; the others still run
            problem = f"ERROR {type(e).__name__}: {e}"
            row = {**error_row(spec, problem), "status": "error", "problem": problem,
                   "traceback": traceback.format_exc()}
        row["row_seconds"] = time.perf_counter() - t0
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if progress:
            print(f"[{i + 1}/{len(specs)}] {label(spec)} {row['status']:<8} {row['row_seconds']:6.1f} s",
                  file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------- the training step
class SyntheticImages:
    """Random images in [-1, 1] shaped like the data set's, held as one tensor like TensorImages."""

    def __init__(self, n: int, C: int, H: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, C, H, H, generator=g) * 2 - 1

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], -1


class Stepwise:
    """``D`` with ``D(x0, t, ctx)`` computed by ``t`` single steps (``apply_stepwise``), the
    authors' way; everything else (T, context, as_t, deterministic, ...) is ``D``'s own."""

    def __init__(self, D):
        self.D = D

    def __getattr__(self, name: str) -> Any:
        return getattr(self.D, name)

    def __call__(self, x0: torch.Tensor, t, ctx: Any = None) -> torch.Tensor:
        return deg.apply_stepwise(self.D, x0, t, ctx)

    def observe(self, x0: torch.Tensor, t, ctx: Any = None, t_in_range: bool = False) -> torch.Tensor:
        return self.D.observe(x0, t, ctx, stepwise=True, t_in_range=t_in_range)  # training inputs, step by step too


def step_parts(cfg, base: torch.nn.Module, ds, D, device: torch.device, seed: int) -> StepParts:
    """A fresh model / EMA / optimizer / data stream / generator for ``colddiff.training.train_step``,
    set up as ``train()`` sets them up from ``cfg.train`` (channels_last, fused Adam, compile,
    precision with its autocast, fp16's GradScaler), the weights copied from ``base``."""
    tr = cfg.train
    model = copy.deepcopy(base).to(device).train()
    ema = copy.deepcopy(base).to(device)
    ema.requires_grad_(False).eval()
    if tr.channels_last:  # before the optimizer exists, as in train()
        model.to(memory_format=torch.channels_last)
        ema.to(memory_format=torch.channels_last)
    opt = speed.make_adam(model.parameters(), tr.lr, device, tr.fused_adam)
    loss_fn = speed.compiled(l1_loss(model, devices.autocast(device, tr.precision), tr.channels_last), tr.compile)
    return StepParts(model, ema, opt, loss_fn, BatchStream(ds, tr.batch_size, seed, device=device), D,
                     torch.Generator(device=device).manual_seed(seed * 7919 + 17),
                     scaler=torch.amp.GradScaler("cuda") if tr.precision == "fp16" else None)


def full_step(cfg, step: int, parts: StepParts, acc: speed.LossAccumulator):
    """``train_step`` as ``train()`` calls it: the step, its loss added on the device, and read back
    (the NaN check) at every step on a CPU only; returns the loss (a float on the CPU, else the tensor)."""
    loss = train_step(cfg, step, parts)
    acc.add(loss, step + 1)
    if parts.gen.device.type == "cuda":
        return loss
    value = float(loss)
    if not math.isfinite(value):
        raise RuntimeError(f"non-finite loss {value} at benchmark step {step + 1}")
    return value


# ---------------------------------------------------------------------------- number formats and tables
def ms(v: Optional[float]) -> str:
    """Milliseconds with 3-4 significant digits ("-" for none)."""
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{v * 100:+.1f}"


def rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def param_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def heading(title: str, meta: Dict[str, Any], markdown: bool, autocast_note: bool = True) -> List[str]:
    """The first lines of a table: what, where (device, threads, dtype), torch, date, [quick]."""
    head = (f"{title}: {meta['device_name']} ({meta['device']}, {meta['threads']} threads), {meta['dtype']}"
            + (" (autocast)" if autocast_note and meta["dtype"] != "float32" else "")
            + f", torch {meta['torch']}, {meta['date']}" + (" [quick]" if meta["quick"] else ""))
    return [f"**{head}**", ""] if markdown else [head]


def subheading(text: str, markdown: bool) -> List[str]:
    """A second table's title, after a blank line."""
    return ["", f"**{text}**", ""] if markdown else ["", text]


def render(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric, markdown: bool) -> List[str]:
    """The lines of a table (``colddiff.tables``): Markdown or aligned text, the ``numeric`` columns right-aligned."""
    return (markdown_table if markdown else text_table)(columns, rows, right=numeric).splitlines()


def overhead_result(meta: Dict[str, Any], rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The result of a benchmark of per-preset overheads: failed rows and missed targets listed."""
    failures = [r for r in rows if r["status"] == "error"]
    return {"meta": meta, "rows": rows, "ok": not failures,
            "failures": [f"{r['preset']}: {r['problem']}" for r in failures],
            "target_missed": [f"{r['preset']}: overhead {r['overhead'] * 100:.1f} %"
                              for r in rows if r.get("target_met") is False]}

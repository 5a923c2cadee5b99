"""Throughput benchmark: images per second of training and of sampling with the paper's networks.

For the ``cifar10-blur`` (32 px, T=50, the DDPM-style 128-channel U-Net) and ``celeba-blur``
(128 px, T=200, dim 64, 1-2-4-8) presets, with their real networks (``cfg.build_model()``)
and degradations (``cfg.build_degradation()``), on SYNTHETIC data (random images in [-1, 1]
of the preset's shape: the cost does not depend on the pixels), this measures

* TRAINING: images/s = (batch_size x grad_accum) / median time of one full optimizer step as
  ``train()`` does it: for each micro-batch the next batch of a ``BatchStream``,
  ``degrade_batch`` (closed form), forward (bf16 autocast with ``--dtype bfloat16``), L1 loss,
  backward; loss read-back, (gradient clipping,) the Adam step, ``zero_grad`` and the EMA
  update (every step).  The step is ``benchmarks.training.full_step``, the same code the
  training-step benchmark times;
* SAMPLING: images/s = B / wall time of the whole ``colddiff.samplers.algorithm2`` loop from
  ``x_T = D(x0, T)`` (all T steps: T network calls and T updates), with the EMA network in
  eval mode under ``torch.no_grad()``; and the time of one network call alone (``R(x_T, s)``
  at the same batch), in ms.

On CUDA the training batch is the preset's (32 x 2 for both) and sampling uses 64 (cifar10)
and 16 (celeba) images.  On a CPU the full-size networks are slow: a tiny batch and few
steps are used, the table labels the device and the batches, and with ``--quick`` the
sampling loop is timed over a few of its T steps and scaled to T (the blur's closed form
costs the same at every step, so the scaling is exact up to noise; marked ``~``).

    python -m benchmarks.throughput [--quick] [--device cpu|cuda] [--dtype float32|bfloat16]
                                    [--out PATH] [--markdown] [--presets NAME,...]

Timing: warm-up first (not timed: cuDNN/allocator, Adam state, degradation caches), then
``time.perf_counter`` with ``torch.cuda.synchronize()`` before each clock read on CUDA
(``benchmarks.common.sync``); medians of the timed repeats.  Sampling runs and bare
network-call loops are interleaved.  On the CPU the network calls are also clocked inside
the Alg. 2 run (no synchronisation is needed there), so no separate loop is run.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.common import device_name, finish, machine_meta, pick_presets, sync
from benchmarks.sampling import timed as timed_with_result
from benchmarks.training import (SyntheticImages, Trainer, _ms, _params, _rate, _render, full_step,
                                 make_autocast, timed)

from colddiff.config import preset as get_preset
from colddiff.samplers import algorithm2

NAME = "throughput"
RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RowSpec:
    preset: str
    sample_batch_cuda: int
    cpu_train_batch: int           # micro-batch on the CPU (grad_accum 1 there)
    cpu_sample_batch: int


ROWS: List[RowSpec] = [
    RowSpec("cifar10-blur", sample_batch_cuda=64, cpu_train_batch=2, cpu_sample_batch=2),
    RowSpec("celeba-blur", sample_batch_cuda=16, cpu_train_batch=1, cpu_sample_batch=2),
]


@dataclass
class Options:
    device: torch.device
    dtype: torch.dtype
    quick: bool
    seed: int
    train_warmup: int
    train_timed: int
    sample_rounds: int             # timed Alg. 2 runs (and bare loops on CUDA), median taken
    sample_steps: Optional[int]    # steps of the timed Alg. 2 loop (None: all T)


def train_steps(cfg, base: torch.nn.Module, ds, D, opts: Options, say) -> Tuple[List[float], torch.nn.Module]:
    """Seconds of each timed full optimizer step, and the EMA network (eval) for sampling.

    The model, optimizer and gradients are dropped on return; only the EMA copy is kept.
    """
    torch.manual_seed(opts.seed + 1)  # dropout
    trainer = Trainer(cfg, base, ds, opts.device, opts.seed)
    step_s: List[float] = []
    n = opts.train_warmup + opts.train_timed
    for i in range(n):
        sec = timed(lambda: full_step(trainer, D, opts.dtype, stepwise=False), opts.device)
        if i >= opts.train_warmup:
            step_s.append(sec)
        say(f"train step {i + 1}/{n} ({'warm-up' if i < opts.train_warmup else 'timed'})")
    return step_s, trainer.ema.eval()


# ---------------------------------------------------------------------------- one row
def bench_row(spec: RowSpec, opts: Options, progress: bool = True) -> Dict[str, Any]:
    dev, dt = opts.device, opts.dtype
    cuda = dev.type == "cuda"
    cfg = get_preset(spec.preset)
    tr = cfg.train
    preset_B, preset_A = tr.batch_size, tr.grad_accum
    notes: List[str] = []
    if not cuda:
        tr.batch_size, tr.grad_accum = spec.cpu_train_batch, 1
        notes.append(f"CPU: train batch {tr.batch_size} x 1 (preset {preset_B} x {preset_A})")
    B, A = tr.batch_size, tr.grad_accum
    H, C = cfg.data.image_size, cfg.data.channels
    D = cfg.build_degradation()
    T = D.T
    torch.manual_seed(opts.seed)
    base = cfg.build_model()
    n_params = sum(p.numel() for p in base.parameters())
    ds = SyntheticImages(max(B * A * 4, 16), C, H, opts.seed)
    row: Dict[str, Any] = {
        "preset": spec.preset, "size": H, "C": C, "T": T, "params": n_params,
        "network": cfg.model_kwargs(), "degradation": D.describe(),
        "data": "synthetic: random images in [-1, 1] of the preset's shape",
        "train_batch": B, "grad_accum": A, "images_per_step": B * A,
        "preset_train_batch": preset_B, "preset_grad_accum": preset_A,
        "grad_clip": tr.grad_clip, "ema": "every step (reset=False)", "status": "ok", "notes": notes,
    }
    t_row = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"    {spec.preset}: {msg} {time.perf_counter() - t_row:6.1f} s", file=sys.stderr, flush=True)

    # -- training: full optimizer steps (benchmarks.training.full_step), median of the timed ones
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    step_s, net = train_steps(cfg, base, ds, D, opts, say)
    del base
    step_ms = statistics.median(step_s) * 1e3
    row.update(train_step_ms=step_ms, train_images_per_s=B * A / (step_ms / 1e3),
               train_warmup_steps=opts.train_warmup, train_timed_steps=opts.train_timed,
               train_samples_ms=[v * 1e3 for v in step_s])
    if cuda:
        row["train_peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30

    # -- sampling with the EMA network (eval, no_grad), Alg. 2 from x_T = D(x0, T)
    if cuda:
        torch.cuda.empty_cache()
    SB = spec.sample_batch_cuda if cuda else spec.cpu_sample_batch
    steps = T if opts.sample_steps is None else max(1, min(T, opts.sample_steps))
    gen = torch.Generator().manual_seed(opts.seed + 2)
    x0 = (torch.rand(SB, C, H, H, generator=gen) * 2 - 1).to(dev)
    autocast = make_autocast(dev, dt)
    clock_R = not cuda  # CPU: clock the network calls inside the Alg. 2 run
    inside = [0.0]

    def R(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if clock_R:
            t0 = time.perf_counter()
        with autocast:
            out = net(x, t).float()
        if clock_R:
            inside[0] += time.perf_counter() - t0
        return out

    alg_s: List[float] = []
    net_s: List[float] = []
    with torch.no_grad():
        ctx = D.context(x0, gen)
        x_T = D(x0, T, ctx)
        # the whole loop from t=T; or (CPU --quick) ``steps`` steps, from t=steps, scaled to T below
        x_start = x_T if steps == T else D(x0, steps, ctx)

        def bare():
            for k in range(steps):
                R(x_T, torch.full((SB,), T - k, dtype=torch.long, device=dev))

        # warm-up (degradation caches, allocator, cuDNN): on CUDA 3 network calls and a 2-step
        # Alg. 2 run; on the CPU (slow, no kernel selection) a 1-step Alg. 2 run
        w = 2 if cuda else 1
        for _ in range(3 if cuda else 0):
            R(x_T, torch.full((SB,), T, dtype=torch.long, device=dev))
        algorithm2(R, D, D(x0, min(w, T), ctx), min(w, T), ctx)
        sync(dev)
        say("sampling warm-up")
        for r in range(opts.sample_rounds):
            order = ("alg2", "bare") if r % 2 == 0 else ("bare", "alg2")
            for kind in order:
                if kind == "alg2":
                    inside[0] = 0.0
                    sec, _ = timed_with_result(lambda: algorithm2(R, D, x_start, steps, ctx), dev)
                    alg_s.append(sec)
                    if clock_R:
                        net_s.append(inside[0])
                elif cuda:
                    sec, _ = timed_with_result(bare, dev)
                    net_s.append(sec)
            say(f"sampling round {r + 1}/{opts.sample_rounds}")
    scale = T / steps
    alg_ms = statistics.median(alg_s) * 1e3 * scale   # the whole T-step loop
    net_call_ms = statistics.median(net_s) * 1e3 / steps
    row.update(
        sample_batch=SB, sample_steps_timed=steps, sample_estimated=steps != T,
        sample_loop_ms=alg_ms, sample_images_per_s=SB / (alg_ms / 1e3),
        sample_ms_per_step=alg_ms / T, net_ms_per_call=net_call_ms,
        net_share_of_loop=net_call_ms * T / alg_ms,
        net_call_timing="clocked inside the Alg. 2 runs" if clock_R else "separate loops of T network calls",
        sample_rounds=opts.sample_rounds, sample_samples_ms=[v * 1e3 for v in alg_s],
    )
    if steps != T:
        notes.append(f"~ sampling timed on {steps} of {T} steps, x {scale:g}")
    if not cuda:
        notes.append(f"CPU: sample batch {SB}")
    return row


# ---------------------------------------------------------------------------- table
def _rate3(v: float) -> str:
    """Images/s with 3 significant digits below 100 (CPU rates can be far below 1)."""
    return _rate(v) if v >= 100 else f"{v:.3g}"


COLUMNS = ["preset", "image", "network params", "precision", "train batch", "train img/s", "sample batch",
           "T", "sample img/s (Alg. 2, T steps)", "ms per network call in sampling", "notes"]


def table_cells(row: Dict[str, Any], meta: Dict[str, Any]) -> List[str]:
    ok = row.get("sample_images_per_s") is not None
    done_train = row.get("train_images_per_s") is not None
    est = "~" if row.get("sample_estimated") else ""
    notes = list(row.get("notes", []))
    if done_train:
        notes.append(f"train: median of {row['train_timed_steps']} step{'s' if row['train_timed_steps'] != 1 else ''}")
    if ok:
        notes.append(f"sampling: median of {row['sample_rounds']} run{'s' if row['sample_rounds'] != 1 else ''}")
    if row["status"] != "ok":
        notes.append(f"[{row['status']}] {row.get('problem', '')}")
    return [
        row["preset"], f"{row['size']}x{row['size']}x{row['C']}",
        _params(row["params"]) if row.get("params") else "-", meta["precision_short"],
        f"{row['train_batch']} x {row['grad_accum']}" if row.get("train_batch") else "-",
        _rate3(row["train_images_per_s"]) if done_train else "-",
        str(row["sample_batch"]) if ok else "-", str(row.get("T", "-")),
        (est + _rate3(row["sample_images_per_s"])) if ok else "-",
        _ms(row["net_ms_per_call"]) if ok else "-", "; ".join(notes),
    ]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    head = (f"Throughput, training and sampling (Algorithm 2): {meta['device_name']} ({meta['device']}"
            + (f", {meta['threads']} threads" if meta["device"] == "cpu" else "")
            + f"), {meta['precision_short']}, torch {meta['torch']}, {meta['date']}"
            + (" [quick]" if meta["quick"] else ""))
    lines = [f"**{head}**", ""] if markdown else [head]
    lines += _render(COLUMNS, [table_cells(r, meta) for r in result["rows"]], {2, 5, 6, 7, 8, 9}, markdown)
    lines.append("")
    lines.append("Synthetic data (random images of the preset's shape); the presets' own networks "
                 "(cfg.build_model()) and degradations. train img/s = batch x accum / median full optimizer step "
                 "(data, degrade_batch, forward, L1, backward, Adam, EMA every step). sample img/s = batch / wall "
                 "time of the whole Algorithm 2 loop from t=T (T network calls + T updates; ~ = timed on fewer "
                 "steps and scaled to T); ms per network call = one forward of the EMA network at the sample "
                 "batch." + (" CPU numbers: tiny batches, few steps." if meta["device"] == "cpu" else ""))
    lines.append(f"Total runtime {meta['total_runtime_s']:.1f} s.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run
def run(opts: Options, presets: Optional[List[str]] = None, progress: bool = True) -> Dict[str, Any]:
    start = time.perf_counter()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    specs = [s for s in ROWS if not presets or s.preset in presets]
    if opts.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as train() sets them on CUDA
        torch.backends.cudnn.allow_tf32 = True
    rows = []
    for i, spec in enumerate(specs):
        t0 = time.perf_counter()
        try:
            row = bench_row(spec, opts, progress)
        except Exception as e:  # a broken row says so; the others still run
            row = {"preset": spec.preset, "size": 0, "C": 0, "T": "-", "params": 0, "status": "error",
                   "notes": [], "problem": f"ERROR {type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            try:
                cfg = get_preset(spec.preset)
                row.update(size=cfg.data.image_size, C=cfg.data.channels, T=cfg.degradation.T)
            except Exception:
                pass
        row["row_seconds"] = time.perf_counter() - t0
        rows.append(row)
        if opts.device.type == "cuda":
            torch.cuda.empty_cache()
        if progress:
            print(f"[{i + 1}/{len(specs)}] {spec.preset:<16} {row['status']:<6} {row['row_seconds']:6.1f} s",
                  file=sys.stderr, flush=True)
    bf16 = opts.dtype != torch.float32
    meta = {
        **machine_meta(NAME, opts.device, opts.dtype, date),
        "precision": "bf16 autocast on the network (train.precision=bf16); images, loss, degradations float32"
                     if bf16 else "fp32",
        "precision_short": "bf16 autocast" if bf16 else "fp32",
        "quick": opts.quick,
        "seed": opts.seed,
        "data": "synthetic",
        "presets": [s.preset for s in specs],
        "rows": [asdict(s) for s in specs],
        "timing": {"train_warmup_steps": opts.train_warmup, "train_timed_steps": opts.train_timed,
                   "sample_rounds": opts.sample_rounds,
                   "sample_steps": opts.sample_steps if opts.sample_steps is not None else "T",
                   "statistic": "median", "clock": "time.perf_counter, torch.cuda.synchronize() on CUDA"},
        "total_runtime_s": time.perf_counter() - start,
    }
    failures = [r for r in rows if r["status"] == "error"]
    return {"meta": meta, "rows": rows, "ok": not failures,
            "failures": [f"{r['preset']}: {r['problem']}" for r in failures]}


def default_out(device: torch.device, dtype: str) -> Path:
    """results/throughput.json on the CPU; results/throughput-<gpu>-<dtype>.json on CUDA (e.g. -h100-bfloat16)."""
    if device.type != "cuda":
        return RESULTS / "throughput.json"
    m = re.search(r"\b([A-Z]{1,2}\d{2,4})\b", device_name(device))
    return RESULTS / f"throughput-{m.group(1).lower() if m else 'cuda'}-{dtype}.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer steps (CUDA: 5 timed steps, 2 runs; CPU: 1-2 steps, sampling scaled from 2 steps)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                   help="float32, or bfloat16 = autocast mixed precision as train.precision=bf16 (default float32)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default results/throughput.json; on CUDA results/throughput-<gpu>-<dtype>.json)")
    p.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    p.add_argument("--presets", help="comma-separated rows: " + ", ".join(s.preset for s in ROWS))
    p.add_argument("--sample-steps", type=int, default=None,
                   help="time the Alg. 2 loop on this many steps and scale to T (default: all T; CPU quick 2)")
    p.add_argument("--seed", type=int, default=0)
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.throughput: --device cuda but CUDA is not available")
    q, cuda = args.quick, device.type == "cuda"
    if cuda:
        warm, n_timed, rounds = (3, 5, 2) if q else (5, 15, 3)
        steps = args.sample_steps
    else:
        warm, n_timed, rounds = (1, 1, 1) if q else (1, 3, 1)
        steps = args.sample_steps if args.sample_steps is not None else (2 if q else None)
    if steps is not None and steps < 1:
        raise SystemExit("benchmarks.throughput: --sample-steps must be at least 1")
    return Options(device=device, dtype=DTYPES[args.dtype], quick=q, seed=args.seed, train_warmup=warm,
                   train_timed=n_timed, sample_rounds=rounds, sample_steps=steps)


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run, print the table, write the JSON; return the result."""
    args = parser().parse_args(argv)
    opts = options_from_args(args)
    result = run(opts, pick_presets(args.presets, ROWS))
    out = args.out if args.out is not None else default_out(opts.device, args.dtype)
    return finish(result, format_table, args.markdown, out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

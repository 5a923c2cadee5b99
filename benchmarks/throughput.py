"""Throughput benchmark: images per second of training and of sampling with the paper's networks.

For the ``cifar10-blur`` (32 px, T=50, the DDPM-style 128-channel U-Net) and ``celeba-blur``
(128 px, T=200, dim 64, 1-2-4-8) presets, with their real networks (``cfg.build_model()``)
and degradations (``cfg.build_degradation()``), on SYNTHETIC data (random images in [-1, 1]
of the preset's shape: the cost does not depend on the pixels), this measures

* TRAINING: images/s = (batch_size x grad_accum) / median time of one full optimizer step as
  ``train()`` does it: for each micro-batch the next batch of a ``BatchStream``,
  ``degrade_batch`` (closed form), forward (bf16 autocast with ``--dtype bfloat16``), L1 loss,
  backward; (gradient clipping,) the Adam step, ``zero_grad`` and the EMA update (every
  step); the loss stays on the device.  The step is ``colddiff.training.train_step``, the
  function ``train()`` calls and the training-step benchmark times;
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
                                    [--train-modes eager,compiled,max-autotune]
                                    [--sample-modes eager,graphs,compiled] [--[no-]max-batch] [--no-loader]

Each preset is measured in every asked MODE (training: eager; compiled = train.compile=default +
train.channels_last; max-autotune; sampling: eager; graphs = colddiff.graphs' CUDA-graph replay;
compiled = torch.compile of the network), at the preset's batch and (CUDA, ``--max-batch``) at the
largest power-of-two multiple of it that fits.  Every row reports the model FLOPs per image
(``benchmarks.flops``, torch.utils.flop_counter), the achieved TFLOP/s and the fraction of the
device's dense peak (a table of peaks per device name; "unknown device" otherwise), the hours one
paper run (700k steps x 64 images) takes at the measured rate, and, beside training, the images/s
of the data path on a folder of PNGs of the preset's size: decoded per item (auto workers) and
from ``colddiff data prepare``'s memory-mapped array.  ``mnist5k-blur-gen`` is the quickstart's
network and batch: on a CPU, ``--train-modes eager,compiled --presets mnist5k-blur-gen`` measures
whether compiling pays there.

Timing: warm-up first (not timed: cuDNN/allocator, Adam state, degradation caches), then
``time.perf_counter`` with ``torch.cuda.synchronize()`` before each clock read on CUDA
(``benchmarks.common.sync``); medians of the timed repeats.  Sampling runs and bare
network-call loops are interleaved.  On the CPU the network calls are also clocked inside
the Alg. 2 run (no synchronisation is needed there), so no separate loop is run.
"""
from __future__ import annotations

import argparse
import copy
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.common import autocast as autocast_of  # (autocast: the name of a context below)
from benchmarks.common import (BenchOptions, DTYPES, PRECISION, SyntheticImages, add_options, device_name, device_of,
                               finish, full_step, graphed_bare, machine_meta, ms, param_count, pick_presets, rate,
                               render, run_rows, step_parts, sync, timed)
from benchmarks.flops import flops_per_image, mfu_fields, peak_flops

import colddiff.degradations as deg
from colddiff import speed
from colddiff.presets import preset as get_preset
from colddiff.samplers import algorithm2

NAME = "throughput"
RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RowSpec:
    preset: str
    sample_batch_cuda: int
    cpu_train_batch: int           # micro-batch on the CPU (grad_accum 1 there)
    cpu_sample_batch: int
    cpu_full: bool = False         # a small network: the preset's own batch and accumulation on the CPU too


ROWS: List[RowSpec] = [
    RowSpec("cifar10-blur", sample_batch_cuda=64, cpu_train_batch=2, cpu_sample_batch=2),
    RowSpec("celeba-blur", sample_batch_cuda=16, cpu_train_batch=1, cpu_sample_batch=2),
    # the quickstart's network and batch: where "compile must not slow the CPU down" is measured
    RowSpec("mnist5k-blur-gen", sample_batch_cuda=256, cpu_train_batch=32, cpu_sample_batch=32, cpu_full=True),
]

# Training modes (train.* settings, as `colddiff train --set` takes them) and sampling modes.
TRAIN_MODES = {
    "eager": dict(compile="off", channels_last=False),
    "compiled": dict(compile="default", channels_last=True),
    "compile-only": dict(compile="default", channels_last=False),
    "channels-last": dict(compile="off", channels_last=True),
    "max-autotune": dict(compile="max-autotune", channels_last=True),
}
SAMPLE_MODES = ("eager", "graphs", "compiled")


@dataclass
class Options(BenchOptions):
    train_warmup: int
    train_timed: int
    sample_rounds: int             # timed Alg. 2 runs (and bare loops on CUDA), median taken
    sample_steps: Optional[int]    # steps of the timed Alg. 2 loop (None: all T)
    train_modes: Tuple[str, ...] = ("eager",)
    sample_modes: Tuple[str, ...] = ("eager",)
    max_batch: bool = False        # also at the largest batch that fits (CUDA)
    loader: bool = True            # loader images/s: decoded PNG folder vs prepared array


def _dtype_name(dt: torch.dtype) -> str:
    return "bfloat16" if dt == torch.bfloat16 else "float32"


def train_steps(cfg, base: torch.nn.Module, ds, D, opts: Options, say, warm_s: Optional[list] = None) -> List[float]:
    """Seconds of each timed full optimizer step (``colddiff.training.train_step``, as train() calls it);
    the warm-up steps' seconds (compilation included) go to ``warm_s``."""
    torch.manual_seed(opts.seed + 1)  # dropout
    cfg = cfg.copy()
    cfg.train.precision = PRECISION[opts.dtype]
    cfg.train.ema_every, cfg.train.ema_start = 1, 0  # an EMA update (lerp) at every step: the conservative case
    parts = step_parts(cfg, base, ds, D, opts.device, opts.seed)
    acc = speed.LossAccumulator(opts.device)
    step_s: List[float] = []
    n = opts.train_warmup + opts.train_timed
    for i in range(n):
        sec = timed(lambda: full_step(cfg, i, parts, acc), opts.device)[0]
        if i >= opts.train_warmup:
            step_s.append(sec)
        elif warm_s is not None:
            warm_s.append(sec)
        say(f"train step {i + 1}/{n} ({'warm-up' if i < opts.train_warmup else 'timed'}) {sec:.3f} s")
    float(acc.read()[0])  # the loss is read back once, as train() does at a log step
    return step_s


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def largest_batch(try_batch, start: int, cap: int, say) -> int:
    """The largest power-of-two multiple of ``start`` (<= cap) for which ``try_batch(B)`` runs (CUDA)."""
    best, B = start, start
    while B * 2 <= cap:
        B *= 2
        try:
            try_batch(B)
            best = B
        except Exception as e:  # noqa: BLE001 - out of memory ends the search; anything else too
            torch.cuda.empty_cache()
            say(f"batch {B}: {'out of memory' if _is_oom(e) else type(e).__name__}")
            break
        torch.cuda.empty_cache()
    return best


def bench_train(spec: RowSpec, cfg, base, D, opts: Options, say, peak, flops_img) -> List[Dict[str, Any]]:
    cuda = opts.device.type == "cuda"
    tr = cfg.train
    B0, A = tr.batch_size, tr.grad_accum
    out = []
    batches = [B0]
    if opts.max_batch and cuda:  # searched once, eagerly (a compiled step would recompile per batch)
        def attempt(B):
            c = cfg.copy()
            c.train.batch_size = B
            o = Options(**{**asdict(opts), "train_warmup": 1, "train_timed": 1, "device": opts.device,
                           "dtype": opts.dtype})
            train_steps(c, base, SyntheticImages(B * A * 2, cfg.data.channels, cfg.data.image_size, 0), D, o,
                        lambda m: None)
        big = largest_batch(attempt, B0, 1024, say)
        if big != B0:
            batches.append(big)
    for mode in opts.train_modes:
        # a compiled step recompiles for every new batch: compiled modes run at the preset's batch only
        for B in (batches if TRAIN_MODES[mode]["compile"] == "off" else batches[:1]):
            c = cfg.copy()
            c.train.batch_size = B
            for k, v in TRAIN_MODES[mode].items():
                setattr(c.train, k, v)
            rec: Dict[str, Any] = {"mode": mode, "settings": dict(TRAIN_MODES[mode], fused_adam=tr.fused_adam),
                                   "batch": B, "grad_accum": A, "largest": B != B0}
            try:
                if cuda:
                    torch.cuda.reset_peak_memory_stats(opts.device)
                ds = SyntheticImages(max(B * A * 4, 16), cfg.data.channels, cfg.data.image_size, opts.seed)
                warm: List[float] = []
                step_s = train_steps(c, base, ds, D, opts, lambda m: say(f"{mode} B={B}: {m}"), warm)
                rec["warmup_s"] = warm  # the first includes torch.compile's compilation
                ms = statistics.median(step_s) * 1e3
                rate = B * A / (ms / 1e3)
                rec.update(step_ms=ms, images_per_s=rate, samples_ms=[v * 1e3 for v in step_s],
                           hours_per_paper_run=PAPER_IMAGES / rate / 3600, **mfu_fields("train", flops_img, rate, peak))
                if cuda:
                    rec["peak_mem_gib"] = torch.cuda.max_memory_allocated(opts.device) / 2**30
            except Exception as e:  # noqa: BLE001 - a failing mode says so; the others still run
                rec.update(status="error", problem=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            out.append(rec)
            if cuda:
                torch.cuda.empty_cache()
    return out


def _sampler_R(net, mode: str, autocast, clock):
    """The restorer of a sampling mode: the network (compiled for ``compiled``), clocked on the CPU."""
    fn = net
    if mode == "compiled":
        fn = torch.compile(net, dynamic=False)

    def R(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter() if clock is not None else 0.0
        with autocast:
            y = fn(x, t).float()
        if clock is not None:
            clock[0] += time.perf_counter() - t0
        return y

    return R


def bench_sample(spec: RowSpec, cfg, base, D, opts: Options, say, peak, flops_img) -> List[Dict[str, Any]]:
    from colddiff.graphs import GraphedRestorer

    dev = opts.device
    cuda = dev.type == "cuda"
    C, H, T = cfg.data.channels, cfg.data.image_size, D.T
    net = copy.deepcopy(base).to(dev).eval().requires_grad_(False)
    autocast = autocast_of(dev, opts.dtype)
    steps = T if opts.sample_steps is None else max(1, min(T, opts.sample_steps))
    out = []
    B0 = spec.sample_batch_cuda if cuda else spec.cpu_sample_batch
    for mode in opts.sample_modes:
        batches = [B0]
        if opts.max_batch and cuda and mode != "compiled":  # compiled: the preset's batch only (no recompile)
            def attempt(B, mode=mode):
                x = torch.zeros(B, C, H, H, device=dev)
                with torch.no_grad():
                    _sampler_R(net, "eager", autocast, None)(x, torch.full((B,), T, dtype=torch.long, device=dev))
                    sync(dev)
            big = largest_batch(attempt, B0, 4096, say)
            if big != B0:
                batches.append(big)
        for SB in batches:
            rec: Dict[str, Any] = {"mode": mode, "batch": SB, "largest": SB != B0, "steps_timed": steps, "T": T}
            if mode in ("graphs",) and not cuda:
                rec.update(status="skipped", problem="CUDA graphs need a GPU (the samplers run eagerly on a CPU)")
                out.append(rec)
                continue
            try:
                clock = [0.0] if not cuda else None
                R = _sampler_R(net, mode, autocast, clock)
                if mode == "graphs":
                    R = GraphedRestorer(R)
                gen = torch.Generator().manual_seed(opts.seed + 2)
                x0 = (torch.rand(SB, C, H, H, generator=gen) * 2 - 1).to(dev)
                alg_s, net_s = [], []
                with torch.no_grad():
                    ctx = D.context(x0, gen)
                    x_start = D(x0, steps, ctx)
                    if cuda:
                        bare = (graphed_bare(R, x_start, T, steps) if mode == "graphs" else
                                (lambda: [R(x_start, torch.full((SB,), T - k, dtype=torch.long, device=dev))
                                          for k in range(steps)]))
                    # warm-up: compiles, caches, and (graphs) the eager pass + capture of this shape
                    algorithm2(R, D, x_start, steps, ctx)
                    if mode == "graphs":
                        algorithm2(R, D, x_start, steps, ctx)
                    sync(dev)
                    say(f"sampling {mode} B={SB}: warm-up done")
                    for r in range(opts.sample_rounds):
                        if clock is not None:
                            clock[0] = 0.0
                        sec, _ = timed(lambda: algorithm2(R, D, x_start, steps, ctx), dev)
                        alg_s.append(sec)
                        if clock is not None:
                            net_s.append(clock[0])
                        else:
                            net_s.append(timed(bare, dev)[0])
                scale = T / steps
                alg_ms = statistics.median(alg_s) * 1e3 * scale
                net_ms = statistics.median(net_s) * 1e3 / steps
                rate = SB / (alg_ms / 1e3)
                rec.update(loop_ms=alg_ms, images_per_s=rate, net_ms_per_call=net_ms,
                           update_overhead=alg_ms / (net_ms * T) - 1, estimated=steps != T,
                           bare="graphed network calls" if mode == "graphs" else
                                ("clocked inside the Alg. 2 run" if clock is not None else "separate loop"),
                           samples_ms=[v * 1e3 for v in alg_s],
                           **mfu_fields("sample", flops_img * T, rate, peak))
                if mode == "graphs":
                    rec["graph_stats"] = dict(R.stats)
            except Exception as e:  # noqa: BLE001
                rec.update(status="error", problem=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            out.append(rec)
            if cuda:
                torch.cuda.empty_cache()
    return out


def loader_rates(cfg, B: int, device: torch.device, seed: int, n_images: int) -> Dict[str, Any]:
    """Images/s of the training data path (BatchStream.next + copy to the device) on a folder of PNGs
    of the preset's size: decoded per item (data.num_workers=-1: auto) vs prepared (colddiff data prepare)."""
    import tempfile

    import numpy as np
    from PIL import Image

    from colddiff import data as data_mod
    from colddiff.data import prepare
    from colddiff.training import BatchStream

    C, H = cfg.data.channels, cfg.data.image_size
    out: Dict[str, Any] = {"images": n_images, "batch": B, "source": f"{n_images} random PNGs {H}x{H}x{C}"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imgs"
        folder.mkdir()
        rng = np.random.default_rng(seed)
        for i in range(n_images):
            a = rng.integers(0, 256, (H, H, C) if C == 3 else (H, H), dtype=np.uint8)
            Image.fromarray(a).save(folder / f"{i:05d}.png")
        name = f"folder:{folder}"
        for kind in ("decoded", "prepared"):
            if kind == "prepared":
                prepare(name, image_size=H, channels=C, progress=False)
            ds = data_mod.load(name, "train", image_size=H, channels=C)
            stream = BatchStream(ds, B, seed, num_workers=-1, device=device)
            n_batches = max(3, min(50, n_images // B))
            for _ in range(2):  # warm-up: workers start, files cached
                stream.next().to(device, non_blocking=True)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(n_batches):
                stream.next().to(device, non_blocking=True)
            sync(device)
            sec = time.perf_counter() - t0
            out[kind] = {"images_per_s": n_batches * B / sec, "workers": stream.num_workers,
                         "dataset": type(ds).__name__}
            del stream
    return out


# ---------------------------------------------------------------------------- one row
PAPER_IMAGES = 700_000 * 32 * 2  # the paper's blur runs: 700k steps at batch 32 x 2


def bench_row(spec: RowSpec, opts: Options, progress: bool = True) -> Dict[str, Any]:
    dev = opts.device
    cuda = dev.type == "cuda"
    cfg = get_preset(spec.preset)
    tr = cfg.train
    preset_B, preset_A = tr.batch_size, tr.grad_accum
    notes: List[str] = []
    if not cuda and not spec.cpu_full:
        tr.batch_size, tr.grad_accum = spec.cpu_train_batch, 1
        notes.append(f"CPU: train batch {tr.batch_size} x 1 (preset {preset_B} x {preset_A})")
    H, C = cfg.data.image_size, cfg.data.channels
    D = cfg.build_degradation()
    torch.manual_seed(opts.seed)
    base = cfg.build_model()
    n_params = sum(p.numel() for p in base.parameters())
    peak, peak_label = peak_flops(device_name(dev), _dtype_name(opts.dtype), dev.type)
    f_train = flops_per_image(base, C, H, train=True)
    f_sample = flops_per_image(base, C, H, train=False)
    row: Dict[str, Any] = {
        "preset": spec.preset, "size": H, "C": C, "T": D.T, "params": n_params,
        "network": cfg.model_kwargs(), "degradation": deg.describe(D),
        "data": "synthetic: random images in [-1, 1] of the preset's shape",
        "preset_train_batch": preset_B, "preset_grad_accum": preset_A,
        "flops_per_image_train": f_train, "flops_per_image_sample_call": f_sample,
        "peak_flops": peak, "peak": peak_label, "status": "ok", "notes": notes,
    }
    t_row = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"    {spec.preset}: {msg} {time.perf_counter() - t_row:6.1f} s", file=sys.stderr, flush=True)

    row["train"] = bench_train(spec, cfg, base, D, opts, say, peak, f_train)
    row["sample"] = bench_sample(spec, cfg, base, D, opts, say, peak, f_sample)
    if opts.loader:
        try:
            row["loader"] = loader_rates(cfg, tr.batch_size, dev, opts.seed, 64 if opts.quick else 256)
        except Exception as e:  # noqa: BLE001
            row["loader"] = {"status": "error", "problem": f"{type(e).__name__}: {e}"}
    # the summary fields of earlier versions of this benchmark (eager, the preset's batch)
    first = next((r for r in row["train"] if r["mode"] == "eager" and not r["largest"] and "images_per_s" in r), None)
    if first:
        row.update(train_batch=first["batch"], grad_accum=first["grad_accum"], train_step_ms=first["step_ms"],
                   train_images_per_s=first["images_per_s"])
    firsts = next((r for r in row["sample"] if r["mode"] == "eager" and not r["largest"] and "images_per_s" in r), None)
    if firsts:
        row.update(sample_batch=firsts["batch"], sample_images_per_s=firsts["images_per_s"],
                   net_ms_per_call=firsts["net_ms_per_call"], sample_estimated=firsts["estimated"])
    if any(r.get("status") == "error" for r in row["train"] + row["sample"]):
        row["status"] = "partial"
    return row


# ---------------------------------------------------------------------------- table
def _rate3(v: float) -> str:
    """Images/s with 3 significant digits below 100 (CPU rates can be far below 1)."""
    return rate(v) if v >= 100 else f"{v:.3g}"


def _mfu(v) -> str:
    return "unknown device" if v is None else f"{v * 100:.2f}%"


TRAIN_COLUMNS = ["preset", "params", "mode", "batch", "train img/s", "step ms", "GFLOP/img (fwd+bwd)",
                 "TFLOP/s", "of peak", "hours per paper run", "loader img/s (decoded / prepared)"]
SAMPLE_COLUMNS = ["preset", "mode", "batch", "T", "sample img/s (Alg. 2)", "ms per network call",
                  "Alg. 2 update overhead", "TFLOP/s", "of peak"]


def train_cells(row, r) -> List[str]:
    ld = row.get("loader") or {}
    loader = "-"
    if "decoded" in ld and "prepared" in ld:
        dec, pre = ld["decoded"], ld["prepared"]
        loader = f"{_rate3(dec['images_per_s'])} ({dec['workers']} w) / {_rate3(pre['images_per_s'])}"
    if r.get("status") == "error":
        return [row["preset"], param_count(row["params"]), r["mode"], f"{r['batch']} x {r['grad_accum']}",
                f"[error] {r['problem']}", "-", "-", "-", "-", "-", loader]
    return [row["preset"], param_count(row["params"]), r["mode"] + (" (largest batch)" if r["largest"] else ""),
            f"{r['batch']} x {r['grad_accum']}", _rate3(r["images_per_s"]), ms(r["step_ms"]),
            f"{row['flops_per_image_train'] / 1e9:.2f}", f"{r['train_tflops']:.3g}", _mfu(r["train_mfu"]),
            f"{r['hours_per_paper_run']:,.1f}", loader]


def sample_cells(row, r) -> List[str]:
    if r.get("status") in ("error", "skipped"):
        return [row["preset"], r["mode"], str(r["batch"]), str(r["T"]), f"[{r['status']}] {r['problem']}",
                "-", "-", "-", "-"]
    est = "~" if r.get("estimated") else ""
    return [row["preset"], r["mode"] + (" (largest batch)" if r["largest"] else ""), str(r["batch"]), str(r["T"]),
            est + _rate3(r["images_per_s"]), ms(r["net_ms_per_call"]), f"{r['update_overhead'] * 100:+.1f}%",
            f"{r['sample_tflops']:.3g}", _mfu(r["sample_mfu"])]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    head = (f"Throughput, training and sampling (Algorithm 2): {meta['device_name']} ({meta['device']}"
            + (f", {meta['threads']} threads" if meta["device"] == "cpu" else "")
            + f"), {meta['precision_short']}, torch {meta['torch']}, {meta['date']}"
            + (" [quick]" if meta["quick"] else ""))
    lines = [f"**{head}**", ""] if markdown else [head]
    rows = [r for r in result["rows"] if "train" in r]
    lines += render(TRAIN_COLUMNS, [train_cells(row, r) for row in rows for r in row["train"]],
                     {3, 4, 5, 6, 7, 8, 9}, markdown)
    lines.append("")
    lines += render(SAMPLE_COLUMNS, [sample_cells(row, r) for row in rows for r in row["sample"]],
                     {2, 3, 4, 5, 6, 7, 8}, markdown)
    for row in result["rows"]:
        if row.get("status") == "error":
            lines.append(f"{row['preset']}: [error] {row.get('problem', '')}")
    lines.append("")
    peaks = sorted({r.get("peak", "") for r in result["rows"] if r.get("peak")})
    lines.append("Synthetic data (random images of the preset's shape); the presets' own networks and degradations. "
                 "train img/s = batch x accum / median full optimizer step (data, degrade_batch, forward, L1, "
                 "backward, Adam, EMA every step; the loss stays on the device). Modes: eager; compiled = "
                 "train.compile=default + channels_last; max-autotune; Adam fused on CUDA in all. Sampling: the "
                 "whole Algorithm 2 loop from t=T (~ = timed on fewer steps and scaled to T); graphs = "
                 "colddiff.graphs replays, its overhead against T bare network calls replayed from a CUDA graph; "
                 "compiled = torch.compile(network). FLOPs: torch.utils.flop_counter (2 per multiply-add). "
                 "Peak: " + ("; ".join(peaks) or "-") + ". Hours per paper run: 700k steps x 64 images at this rate. "
                 "Loader: BatchStream.next + copy to the device on a folder of PNGs, decoded per item "
                 "(data.num_workers=-1 auto workers) / from `colddiff data prepare`'s array.")
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
    rows = run_rows(specs, lambda spec: bench_row(spec, opts, progress),
                    lambda spec, problem: {"preset": spec.preset, "size": 0, "C": 0, "T": "-", "params": 0, "notes": []},
                    lambda spec: f"{spec.preset:<16}", opts.device, progress)
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
        "train_modes": list(opts.train_modes), "sample_modes": list(opts.sample_modes), "max_batch": opts.max_batch,
        "timing": {"train_warmup_steps": opts.train_warmup, "train_timed_steps": opts.train_timed,
                   "sample_rounds": opts.sample_rounds,
                   "sample_steps": opts.sample_steps if opts.sample_steps is not None else "T",
                   "statistic": "median", "clock": "time.perf_counter, torch.cuda.synchronize() on CUDA"},
        "total_runtime_s": time.perf_counter() - start,
    }
    failures = [f"{r['preset']}: {r['problem']}" for r in rows if r["status"] == "error"]
    failures += [f"{r['preset']} {kind} {m['mode']} B={m['batch']}: {m['problem']}" for r in rows
                 for kind in ("train", "sample") for m in r.get(kind, []) if m.get("status") == "error"]
    return {"meta": meta, "rows": rows, "ok": not failures, "failures": failures}


def default_out(device: torch.device, dtype: str) -> Path:
    """results/throughput.json on the CPU; results/throughput-<gpu>-<dtype>.json on CUDA (e.g. -h100-bfloat16)."""
    if device.type != "cuda":
        return RESULTS / "throughput.json"
    m = re.search(r"\b([A-Z]{1,2}\d{2,4})\b", device_name(device))
    return RESULTS / f"throughput-{m.group(1).lower() if m else 'cuda'}-{dtype}.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    add_options(p, None, "fewer steps (CUDA: 5 timed steps, 2 runs; CPU: 1-2 steps, sampling scaled from 2 steps)",
                "float32, or bfloat16 = autocast mixed precision as train.precision=bf16 (default float32)",
                out_help="JSON output (default results/throughput.json; on CUDA results/throughput-<gpu>-<dtype>.json)")
    p.add_argument("--presets", help="comma-separated rows: " + ", ".join(s.preset for s in ROWS))
    p.add_argument("--sample-steps", type=int, default=None,
                   help="time the Alg. 2 loop on this many steps and scale to T (default: all T; CPU quick 2)")
    p.add_argument("--train-modes", default=None,
                   help="comma-separated training modes: " + ", ".join(TRAIN_MODES)
                        + " (default: CUDA eager,compiled; CPU eager)")
    p.add_argument("--sample-modes", default=None,
                   help="comma-separated sampling modes: " + ", ".join(SAMPLE_MODES)
                        + " (default: CUDA eager,graphs,compiled; CPU eager)")
    p.add_argument("--max-batch", action=argparse.BooleanOptionalAction, default=None,
                   help="also measure at the largest batch that fits (default: on CUDA)")
    p.add_argument("--no-loader", action="store_true", help="skip the data-loader rates")
    p.add_argument("--train-steps", type=int, default=None, help="timed training steps per mode (default: CUDA 15, "
                   "quick 5; CPU 3, quick 1)")
    p.add_argument("--seed", type=int, default=0)
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    device = device_of(args, "benchmarks.throughput")
    q, cuda = args.quick, device.type == "cuda"
    if cuda:
        warm, n_timed, rounds = (3, 5, 2) if q else (5, 15, 3)
        steps = args.sample_steps
    else:
        warm, n_timed, rounds = (1, 1, 1) if q else (1, 3, 1)
        steps = args.sample_steps if args.sample_steps is not None else (2 if q else None)
    if steps is not None and steps < 1:
        raise SystemExit("benchmarks.throughput: --sample-steps must be at least 1")
    if args.train_steps is not None:
        if args.train_steps < 1:
            raise SystemExit("benchmarks.throughput: --train-steps must be at least 1")
        n_timed = args.train_steps

    def modes(text, known, default):
        names = tuple(m.strip() for m in (text or default).split(",") if m.strip())
        bad = [m for m in names if m not in known]
        if bad:
            raise SystemExit(f"benchmarks.throughput: unknown mode(s) {', '.join(bad)}; known: {', '.join(known)}")
        return names

    return Options(device=device, dtype=DTYPES[args.dtype], quick=q, seed=args.seed, train_warmup=warm,
                   train_timed=n_timed, sample_rounds=rounds, sample_steps=steps,
                   train_modes=modes(args.train_modes, TRAIN_MODES, "eager,compiled" if cuda else "eager"),
                   sample_modes=modes(args.sample_modes, SAMPLE_MODES, "eager,graphs,compiled" if cuda else "eager"),
                   max_batch=cuda if args.max_batch is None else args.max_batch, loader=not args.no_loader)


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

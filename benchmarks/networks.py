"""Architectures at equal budget: which network should the CPU presets train?

Every architecture of ``colddiff.networks.ARCHS`` (``model.arch``) is trained the same way on the
CPU stand-in task: ``mnist5k-blur``'s data and degradation (embedded digits, 28 px, blur T=20),
its training recipe (Adam, warm-up, clipping, EMA) with batch 32 and lr 1e-3, for the same number
of optimizer steps (600 by default), each step ``colddiff.training.train_step`` set up as ``train()``
sets it up (``benchmarks.common.step_parts``), from the same data order and the same draws of t.
Widths are the narrow CPU ones: dim 16, multipliers 1-2-2 (colddiff's U-Net and the DDPM Model with
one residual block per level and attention only in the middle, as ``mnist5k-blur``; the ConvNeXt
U-Net has its fixed two blocks and linear attention per level).  An architecture registered under
a second name for the same network (the authors' ``UnetConvNext``, ``convnext-snow``) is not
trained twice: its row names it.

Reported per architecture: parameters; the median milliseconds of one training step (each step
timed with ``time.perf_counter``; the architectures run one after the other, so a busy machine
inflates them unevenly: read the load in the table's title); the final training loss (mean of the
last 50 steps); and the held-out RMSE (per image, on [0, 1] pixels, averaged) of direct
reconstruction ``x0_hat = R(D(x0, T), T)`` on the 500 test digits, with the trained weights and
with their EMA.

    python -m benchmarks.networks [--steps N] [--archs NAME,...] [--quick] [--markdown] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from benchmarks.common import add_options, finish, machine_meta, ms, param_count, render, run_rows, step_parts

from colddiff import data as data_mod
from colddiff import metrics, networks
from colddiff.presets import preset as get_preset
from colddiff.training import train_step

NAME = "networks"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "networks.json"
PRESET = "mnist5k-blur"
STEPS, BATCH, LR = 600, 32, 1e-3
# The narrow CPU widths per architecture (the settings an architecture does not read are ignored by it).
NARROW = dict(dim=16, dim_mults=[1, 2, 2], attn_levels=[], num_res_blocks=1, dropout=0.0)


def _config(arch: str, steps: int, quick: bool):
    cfg = get_preset(PRESET)
    for k, v in NARROW.items():
        setattr(cfg.model, k, v)
    cfg.model.arch = arch
    cfg.train.steps, cfg.train.batch_size, cfg.train.lr = steps, BATCH, LR
    if quick:
        cfg.model.dim, cfg.model.dim_mults, cfg.train.batch_size = 8, [1, 2], 8
    return cfg


def distinct_archs() -> Dict[str, List[str]]:
    """Each architecture to train -> the other registered names of the same network (same builder)."""
    out: Dict[str, List[str]] = {}
    for name, arch in networks.ARCHS.items():
        same = next((n for n in out if networks.ARCHS[n].build is arch.build), None)
        if same is None:
            out[name] = []
        else:
            out[same].append(name)
    return out


@torch.no_grad()
def held_out_rmse(model: torch.nn.Module, D, x0: torch.Tensor, batch: int = 100) -> float:
    """Mean per-image RMSE of direct reconstruction R(D(x0, T), T) (colddiff's protocol, [0, 1] pixels)."""
    model.eval()
    errs = []
    for i in range(0, x0.shape[0], batch):
        x = x0[i:i + batch]
        t = torch.full((x.shape[0],), D.T, dtype=torch.long)
        x_T = D(x, t, D.context(x, torch.Generator().manual_seed(i)))
        errs.append(metrics.rmse(model(x_T, t), x))
    return float(torch.cat(errs).mean())


def bench_arch(arch: str, aliases: List[str], steps: int, quick: bool, seed: int, test: torch.Tensor,
               train_set) -> Dict[str, Any]:
    cfg = _config(arch, steps, quick)
    torch.manual_seed(seed)
    base = cfg.build_model()
    D = cfg.build_degradation()
    parts = step_parts(cfg, base, train_set, D, torch.device("cpu"), seed)
    times, losses = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        loss = float(train_step(cfg, step, parts))
        times.append(time.perf_counter() - t0)
        losses.append(loss)
    return {"arch": arch, "aliases": aliases, "status": "ok", "params": networks.count_parameters(base),
            "settings": {k: getattr(cfg.model, k) for k in networks.ARCHS[arch].uses},
            "ms_per_step": statistics.median(times) * 1e3, "train_s": sum(times),
            "final_loss": statistics.fmean(losses[-50:]),
            "rmse": held_out_rmse(parts.model, D, test), "rmse_ema": held_out_rmse(parts.ema, D, test)}


def run(steps: int, archs: Optional[List[str]], quick: bool, seed: int = 0, note: str = "") -> Dict[str, Any]:
    cfg = _config(networks.DEFAULT, steps, quick)
    train_set = data_mod.load(cfg.data.name, "train", image_size=cfg.data.image_size, channels=cfg.data.channels)
    test_set = data_mod.load(cfg.data.name, "test", image_size=cfg.data.image_size, channels=cfg.data.channels)
    n_test = 64 if quick else len(test_set)
    test = torch.stack([test_set[i][0] for i in range(n_test)])
    todo = {a: al for a, al in distinct_archs().items() if archs is None or a in archs}
    t0 = time.perf_counter()
    rows = run_rows(list(todo), lambda a: bench_arch(a, todo[a], steps, quick, seed, test, train_set),
                    lambda a, problem: {"arch": a, "aliases": todo[a]}, str, torch.device("cpu"))
    meta = machine_meta(NAME, torch.device("cpu"), torch.float32, datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    meta.update(quick=quick, steps=steps, seed=seed, preset=PRESET, batch_size=cfg.train.batch_size, lr=LR,
                narrow=dict(NARROW) if not quick else dict(NARROW, dim=8, dim_mults=[1, 2]), n_test=n_test,
                load_average_1_5_15=list(os.getloadavg()), total_runtime_s=time.perf_counter() - t0, note=note)
    failures = [f"{r['arch']}: {r['problem']}" for r in rows if r["status"] == "error"]
    return {"meta": meta, "rows": rows, "ok": not failures, "failures": failures}


COLUMNS = ["architecture", "params", "ms / step", "final loss", "held-out RMSE", "RMSE (EMA)"]


def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    meta = result["meta"]
    load = meta.get("load_average_1_5_15")
    head = (f"Architectures at equal budget ({meta['preset']}'s data and blur, {meta['steps']} steps, batch "
            f"{meta['batch_size']}, lr {meta['lr']:g}, dim {meta['narrow']['dim']}, multipliers "
            f"{'-'.join(map(str, meta['narrow']['dim_mults']))}): {meta['device_name']} ({meta['cpu_count']} cores"
            + (f", load {load[0]:.1f}" if load else "") + f"), torch {meta['torch']}, {meta['date']}"
            + (" [quick]" if meta["quick"] else ""))
    cells = []
    for r in result["rows"]:
        label = r["arch"] + (f" (= {', '.join(r['aliases'])})" if r.get("aliases") else "")
        if r["status"] != "ok":
            cells.append([label, "-", "-", "-", r["problem"], "-"])
            continue
        cells.append([label, param_count(r["params"]), ms(r["ms_per_step"]), f"{r['final_loss']:.4f}",
                      f"{r['rmse']:.4f}", f"{r['rmse_ema']:.4f}"])
    lines = [f"**{head}**", ""] if markdown else [head]
    lines += render(COLUMNS, cells, {1, 2, 3, 4, 5}, markdown)
    lines.append("")
    lines.append(f"RMSE: direct reconstruction R(D(x0, T), T) of the {meta['n_test']} held-out digits, per image on "
                 "[0, 1] pixels, averaged. ms / step: median of every training step; the architectures ran one "
                 "after the other, so machine load (in the title) inflates their times unevenly. "
                 f"Total runtime {meta['total_runtime_s']:.0f} s." + (f" {meta['note']}" if meta.get("note") else ""))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.networks", description=__doc__.split("\n\n")[0])
    add_options(p, DEFAULT_OUT, "dim 8, multipliers 1-2, batch 8, 5 steps: every row runs (written to "
                "networks-quick.json)", "ignored: float32 on the CPU (taken so that python -m benchmarks can pass it on)")
    p.add_argument("--steps", type=int, default=None, help=f"training steps per architecture (default {STEPS})")
    p.add_argument("--archs", default=None, help="comma-separated architectures (default: every one)")
    p.add_argument("--seed", type=int, default=0, help="initial weights, data order and t (default 0)")
    p.add_argument("--note", default="", help="the conditions of the run, printed under the table (e.g. a busy machine)")
    return p


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run, print the table, write the JSON; return the result."""
    args = parser().parse_args(argv)
    archs = [a.strip() for a in args.archs.split(",")] if args.archs else None
    unknown = [a for a in archs or [] if a not in networks.ARCHS]
    if unknown:
        raise SystemExit(f"unknown architectures {unknown}; known: {', '.join(networks.ARCHS)}")
    out = args.out
    if args.quick and out == DEFAULT_OUT:
        out = out.with_name("networks-quick.json")  # a pipeline check never overwrites the real figures
    steps = args.steps or (5 if args.quick else STEPS)
    return finish(run(steps, archs, args.quick, args.seed, args.note), format_table, args.markdown, out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""``colddiff reproduce TABLE``: train (or resume) every preset of one of the paper's tables, evaluate it
the way the authors did, and print our numbers beside the paper's.

Two scales:

* ``paper``: the paper presets as they are (the authors' data, network sizes, step counts); a GPU job
  that resumes where it stopped and runs under ``torchrun`` (training is :func:`colddiff.training.train`,
  so resume and DDP are the ones ``colddiff train`` has; only rank 0 evaluates).
* ``cpu``: the same table in miniature, to check the paper's *patterns* on a laptop.  Each paper
  preset keeps its degradation (T, kernels, schedules, masks) and its augmentation; what changes is
  the data (the embedded 5,000 MNIST digits stand in for MNIST, Debian's Fashion-MNIST for CIFAR-10,
  both 28 px grey), the network (``NET_CPU``), the recipe (``CPU_TRAIN``, a higher learning rate
  without accumulation) and the number of steps.  Presets without a small stand-in (CelebA, AFHQ,
  colour-only degradations) are listed as skipped, with the reason.

The run folders are ``OUT/<preset>``; the table is written to ``OUT/<table>.md`` and ``.json``.
Table definitions live here; the presets themselves stay in the preset registry.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import ConfigError, InputError, StoppedError
from .tables import markdown_table, text_table, write_tables

SCALES = ("cpu", "paper")

# the CPU stand-ins: the network and recipe of the small mnist5k-* presets (~10 minutes on 2 cores per 3,000
# steps), and the step budget of one table column (see docs/reproduce.md for the measured times)
NET_CPU = dict(dim=16, dim_mults=[1, 2, 2], attn_levels=[], num_res_blocks=1, dropout=0.0)
CPU_TRAIN = dict(batch_size=32, grad_accum=1, lr=1e-3, warmup_steps=100, grad_clip=1.0, ema_decay=0.995,
                 ema_every=1, ema_start=500, checkpoint_every=500, sample_every=0, log_every=50)
CPU_STEPS = 2500
# test images per preset at cpu scale: None = the paper protocol's whole set (the test split but its first image:
# 499 embedded digits, 9,999 Fashion-MNIST images; T = 50 steps of Algorithm 2 over 9,999 images took ~20 minutes
# on the shared 2 cores, see docs/reproduce.md); --n cuts it for a quick look
CPU_EVAL_N = None
CPU_STANDIN = {"mnist": "mnist-5k", "cifar10": "fashion-mnist"}   # paper data set -> CPU stand-in (28 px, grey)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    presets: tuple          # the paper presets of the table, in the paper's column order
    kind: str = "restoration"   # restoration (degraded / sampled / direct rows) | generation
    source: str = ""        # where the paper reports it

    def describe(self) -> str:
        return f"{self.name}: {self.title} ({', '.join(self.presets)})"


TABLES: Dict[str, Table] = {t.name: t for t in [
    Table("table1", "deblurring", ("mnist-blur", "cifar10-blur", "celeba-blur"), source="Table 1"),
    Table("table2", "inpainting", ("mnist-inpaint", "cifar10-inpaint", "celeba-inpaint"), source="Table 2"),
    Table("table3", "super-resolution", ("mnist-sr", "cifar10-sr", "celeba-sr"), source="Table 3"),
    Table("table4", "desnowification and colourisation",
          ("cifar10-snow", "celeba-snow", "cifar10-desaturate", "celeba-desaturate"), source="Tables 4 and 5"),
    Table("generation", "unconditional generation",
          ("celeba-blur-gen", "afhq-blur-gen", "celeba-noise", "afhq-noise"), kind="generation",
          source="Table 6 (blur) and Sec. 5 (hot baseline)"),
]}


def get_table(name: str) -> Table:
    if name not in TABLES:
        raise ConfigError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
    return TABLES[name]


# ---------------------------------------------------------------------------- configurations
def cpu_skip_reason(preset_name: str) -> Optional[str]:
    """Why a paper preset has no CPU-scale stand-in (None when it has one)."""
    from .presets import preset

    cfg = preset(preset_name)
    if cfg.data.name not in CPU_STANDIN:
        return f"{cfg.data.name} at {cfg.data.image_size} px has no CPU-scale stand-in"
    if cfg.degradation.name == "desaturate":
        return "colourisation needs colour images; the CPU stand-ins are grey"
    return None


def scaled_config(preset_name: str, scale: str, steps: Optional[int] = None):
    """The RunConfig of ``preset_name`` at ``scale`` (None at cpu scale when it has no stand-in).

    ``steps`` overrides the step budget (tests run a table in a few steps)."""
    from .config import DataConfig, ModelConfig
    from .presets import preset

    if scale not in SCALES:
        raise ConfigError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    cfg = preset(preset_name)
    if scale == "cpu":
        if cpu_skip_reason(preset_name):
            return None
        standin = CPU_STANDIN[cfg.data.name]
        cfg.description = (f"CPU-scale stand-in of {preset_name}: its degradation and augmentation on {standin} "
                           f"(28 px), a small network; {cfg.description}")
        cfg.preset = f"{preset_name}-cpu"
        cfg.data = DataConfig(name=standin, image_size=28, channels=1, augment=cfg.data.augment)
        cfg.model = ModelConfig(**{k: list(v) if isinstance(v, list) else v for k, v in NET_CPU.items()})
        for k, v in CPU_TRAIN.items():
            setattr(cfg.train, k, v)
        cfg.train.steps = CPU_STEPS
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"--steps must be a positive whole number, got {steps!r}")
        cfg.train.steps = steps
        cfg.train.checkpoint_every = min(cfg.train.checkpoint_every, steps)
        cfg.train.ema_start = min(cfg.train.ema_start, steps // 2)
        cfg.train.warmup_steps = min(cfg.train.warmup_steps, steps // 2)
    return cfg.validate()


# ---------------------------------------------------------------------------- training
def train_or_resume(cfg, folder: Path, progress: bool = True) -> Dict[str, Any]:
    """Train ``cfg`` into ``folder``, continuing the run there if it has a checkpoint; a finished run is kept.

    Returns {"step", "steps", "status": trained | resumed | done, "elapsed_s"}."""
    from . import checkpoint as ckpt_io
    from .training import train

    latest = ckpt_io.find_latest(folder / "checkpoints")
    if latest is not None:
        _, state = ckpt_io.read_meta(latest)
        step = int(state.get("step", 0))
        if step >= cfg.train.steps:
            return {"step": step, "steps": cfg.train.steps, "status": "done",
                    "elapsed_s": float(state.get("elapsed", 0.0))}
    summary = train(cfg, folder, resume=latest is not None, progress=progress)
    if summary.get("stopped_early"):

        raise StoppedError(f"training of {cfg.preset} stopped at step {summary['step']} of {summary['steps']} "
                           f"(checkpoint saved); run the same `colddiff reproduce` command again to continue")
    return {"step": summary["step"], "steps": summary["steps"], "status": "resumed" if latest else "trained",
            "elapsed_s": summary["elapsed_s"]}


# ---------------------------------------------------------------------------- the table
METRICS = (("fid", "FID ↓"), ("ssim", "SSIM ↑"), ("rmse", "RMSE ↓"))


@dataclass
class Reproduction:
    """One table of the paper, reproduced: per preset our evaluation rows beside the paper's numbers."""

    table: str
    title: str
    scale: str
    protocol: str
    command: str
    columns: List[Dict[str, Any]] = field(default_factory=list)   # one per preset (see run_table)
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:

        return asdict(self)

    def body(self) -> List[List[str]]:
        out = []
        for col in self.columns:
            if col.get("skipped"):
                out.append([col["preset"], "skipped: " + col["skipped"]] + [""] * (3 * len(METRICS)))
                continue
            if not col.get("rows"):
                out.append([col["preset"], f"trained to step {col['step']:,}, not evaluated"
                            + (f" ({col['note']})" if col.get("note") else "")]
                           + [""] * (3 * len(METRICS)))
                continue
            for row in col["rows"]:
                paper_row = row.get("paper_row", "")
                cells = [col["preset"], col["labels"].get(row["method"], row["method"])
                         + (f" [paper: {paper_row}]" if paper_row else "")]
                for key, _ in METRICS:
                    mine = row.get(key)
                    theirs = col["paper"].get(paper_row, {}).get(key) if paper_row else None
                    # the paper's FID is on Inception features; a classifier FID is on another scale: no ratio
                    comparable = key != "fid" or col.get("fid_backend") == "inception"
                    cells += [_fmt(key, mine), _fmt(key, theirs),
                              f"{mine / theirs:.2f}" if mine is not None and theirs and comparable else ""]
                out.append(cells)
        return out

    def headers(self) -> List[str]:
        h = ["Preset", "Row"]
        for key, name in METRICS:
            h += [f"{name} ours", f"{name.split()[0]} paper", "ratio"]
        return h

    def notes(self) -> str:
        lines = [f"Protocol: `{self.protocol}`; scale: `{self.scale}`. Command: `{self.command}`.", ""]
        for col in self.columns:
            if col.get("skipped"):
                continue
            bits = [f"- **{col['preset']}**: {col.get('description', '')}"]
            if col.get("rows"):
                bits.append(f". Step {col['step']:,}; {col['n']:,} {col['split']} images"
                            + (" (enlarged 1.12x, centre-cropped)" if col.get("enlarged") else "")
                            + (f"; {col['fid_label']}" if col.get("fid_label") else "") + ".")
                if col.get("row_notes"):
                    bits.append(" " + col["row_notes"])
            lines.append("".join(bits))
        lines += ["", "Paper values: " + "; ".join(sorted({c['paper_source'] for c in self.columns
                                                           if c.get('paper_source')})) + ". Ratio = ours / paper"
                  + ("; no FID ratio where our FID is on classifier features (the paper's is on Inception "
                     "features, another scale)" if any(c.get("rows") and c.get("fid_backend") != "inception"
                                                         for c in self.columns) else "") + "."]
        return "\n".join(lines)

    def markdown(self) -> str:

        return (f"## {self.table}: {self.title} ({self.scale} scale, protocol {self.protocol})\n\n"
                + markdown_table(self.headers(), self.body()) + "\n\n" + self.notes() + "\n")

    def text(self) -> str:

        return text_table(self.headers(), self.body()) + "\n\n" + self.notes()


def _fmt(key: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.2f}" if key == "fid" else f"{v:.3f}"


def run_table(name: str, scale: str = "cpu", out="reproduce", steps: Optional[int] = None,
              n: Optional[int] = None, protocol: str = "paper", fid: str = "auto", train_only: bool = False,
              progress: bool = True, command: str = "", batch_size: int = 100) -> Reproduction:
    """Train or resume every preset of table ``name`` into ``out/<preset>``, evaluate each (unless
    ``train_only``) and write ``out/<name>.md`` and ``.json`` (rank 0 only under torchrun)."""
    from . import paper

    from .outputs import check_files

    table = get_table(name)
    out = Path(out)
    check_files(table_paths(name, out), "reproduce", legacy=_earlier_table)  # before hours of training
    if n is None and scale == "cpu":
        n = CPU_EVAL_N
    start = time.perf_counter()
    rank = int(os.environ.get("RANK", 0))
    rep = Reproduction(table=table.name, title=table.title, scale=scale, protocol=protocol,
                       command=command or f"colddiff reproduce {name} --scale {scale}")
    plan = []
    for p in table.presets:
        cfg = scaled_config(p, scale, steps)
        plan.append((p, cfg))
    for p, cfg in plan:
        col: Dict[str, Any] = {"preset": p}
        if cfg is None:
            col["skipped"] = cpu_skip_reason(p)
            rep.columns.append(col)
            continue
        folder = out / p
        t0 = time.perf_counter()
        col.update(train_or_resume(cfg, folder, progress=progress))
        col.update(run=str(folder), description=cfg.description, train_seconds=round(time.perf_counter() - t0, 1))
        res = paper.paper_results(p)
        if res is not None:
            col["paper"], col["paper_source"] = res.rows, res.source
        else:
            col["paper"], col["paper_source"] = {}, ""
        if table.kind == "generation":  # generated images are measured by `evaluate --generation`, not here
            col["note"] = f"measure the generated images with `colddiff evaluate {folder} --generation`"
        elif not train_only and rank == 0:
            col.update(evaluate_column(folder, table, n=n, protocol=protocol, fid=fid, progress=progress,
                                       batch_size=batch_size))
        rep.columns.append(col)
    rep.seconds = round(time.perf_counter() - start, 1)
    if rank == 0:
        write_reproduction(rep, out)
    return rep


def evaluate_column(folder: Path, table: Table, n: Optional[int], protocol: str, fid: str, progress: bool,
                    batch_size: int = 100) -> Dict[str, Any]:
    """The evaluation rows of one trained run (written to its own evaluation folder too)."""
    from .evaluation import evaluate, method_label, write_evaluation
    from .runs import load_run

    run = load_run(folder)
    ev = finished_evaluation(run, n, protocol, fid)
    if ev is None:
        ev = evaluate(run, n=n, fid=fid, classifier=fid != "none", progress=progress, protocol=protocol,
                      batch_size=batch_size)
        write_evaluation(ev, folder / "evaluation")
    labels = {r["method"]: method_label(r["method"]) for r in ev.rows}
    return {"rows": ev.rows, "labels": labels, "n": ev.n, "split": ev.split, "fid_label": ev.fid_label,
            "row_notes": ev.row_notes(), "step": ev.step, "enlarged": ev.enlarged, "eval_seconds": ev.seconds,
            "fid_backend": ev.fid_backend}


def finished_evaluation(run, n: Optional[int], protocol: str, fid: str):
    """The run's evaluation already written for this checkpoint, protocol, image count and FID back end
    (``colddiff evaluate RUN --protocol ...`` or an earlier ``reproduce``), or None: evaluation resumes too."""
    from .evaluation import eval_name, read_evaluation

    path = run.folder / "evaluation" / f"{eval_name(run.T, run.T, protocol)}.json"
    if not path.exists():
        return None
    try:
        ev = read_evaluation(path)
    except InputError:
        return None
    available = len(run.held_out()[0]) - (1 if protocol == "paper" else 0)   # the protocol's whole set
    same_n = ev.n == (available if n is None else min(n, available))
    same_fid = fid == "auto" or ev.fid_backend == fid
    if ev.step == run.step and ev.protocol == protocol and ev.t == ev.T and same_n and same_fid \
            and ev.checkpoint == run.checkpoint.name:
        return ev
    return None


def table_paths(name: str, out) -> List[Path]:
    """OUT/TABLE.md and OUT/TABLE.json."""
    return [Path(out) / f"{name}.{ext}" for ext in ("md", "json")]


def _earlier_table(path: Path) -> bool:
    """A table written by `colddiff reproduce` before manifests existed: its JSON is a reproduction record."""
    try:
        d = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and d.get("table") == path.stem and "columns" in d and "command" in d


def write_reproduction(rep: Reproduction, out) -> Dict[str, Path]:
    """OUT/TABLE.md and .json, never over a file colddiff did not write."""
    from .outputs import owned_files

    with owned_files(table_paths(rep.table, out), "reproduce", legacy=_earlier_table):
        return write_tables(out, rep.table, {"md": rep.markdown(), "json": json.dumps(rep.to_dict(), indent=2)})

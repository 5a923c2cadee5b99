"""``colddiff reproduce TABLE``: train (or resume) every preset of one of the paper's tables, evaluate it
the way the authors did, and print our numbers beside the paper's.

Two scales:

* ``paper``: the paper presets as they are (the authors' data, network sizes, step counts); a GPU job
  that resumes where it stopped and runs under ``torchrun`` (training is :func:`colddiff.training.train`,
  so resume and DDP are the ones ``colddiff train`` has; only rank 0 evaluates).
* ``cpu``: the same table in miniature, to check the paper's *patterns* on a laptop.  Each paper
  preset keeps its degradation (T, kernels, schedules, masks) and its augmentation; what changes is
  the data (the embedded 5,000 MNIST digits stand in for MNIST, Debian's Fashion-MNIST for CIFAR-10,
  both 28 px grey), the network's width (``CPU_NETS``: by default the preset's own architecture, the
  authors' network of that experiment, at a narrow width; ``net="colddiff"`` trains colddiff's U-Net instead),
  the recipe (``CPU_TRAIN``, a higher learning rate
  without accumulation) and the number of steps.  Presets without a small stand-in (CelebA and colour-only
  degradations in the restoration tables) are listed as skipped, with the reason.  Every stand-in row names
  its real data set (``cifar10-blur on fashion-mnist``), a ratio to the paper is given only where the data
  set is the paper's, and the table's footer states the CPU recipe.

The generation table trains its presets and then measures what they generate: FID of the preset's default
generation setting (:mod:`colddiff.presets`; the settings whose FIDs the paper cites) against the test
images, :data:`colddiff.paper.GEN_SAMPLES` images at paper scale, ``CPU_GEN_N`` at cpu scale.

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

# the CPU stand-ins' networks, by architecture: the preset's own (the authors' network of that experiment) at a
# narrow width, its structure kept (the DDPM Model's attention at the second level, two residual blocks and
# dropout 0.1; the ConvNeXt Unet's linear attention at every level), or colddiff's U-Net of the mnist5k-* presets
# (net="colddiff").  Measured at batch 32, 28 px, on the idle 2 cores: colddiff 98 ms a step, ddpm 207 ms,
# lucidrains-convnext 307 ms (docs/reproduce.md)
NET_CPU = dict(dim=16, dim_mults=[1, 2, 2], attn_levels=[], num_res_blocks=1, dropout=0.0)   # colddiff's U-Net
_CONVNEXT_CPU = dict(dim=16, dim_mults=[1, 2, 2])
CPU_NETS = {"colddiff": NET_CPU, "lucidrains-convnext": _CONVNEXT_CPU, "convnext-snow": _CONVNEXT_CPU,
            "ddpm": dict(dim=16, dim_mults=[1, 2, 2], attn_levels=[1], num_res_blocks=2, dropout=0.1)}
NETS = ("authors", "colddiff")   # reproduce --net: the preset's (authors') architecture, or colddiff's U-Net
CPU_TRAIN = dict(batch_size=32, grad_accum=1, lr=1e-3, warmup_steps=100, grad_clip=1.0, ema_decay=0.995,
                 ema_every=1, ema_start=500, checkpoint_every=500, sample_every=0, log_every=50)
CPU_STEPS = 2500
# test images per preset at cpu scale: None = the paper protocol's whole set (the test split but its first image:
# 499 embedded digits, 9,999 Fashion-MNIST images; T = 50 steps of Algorithm 2 over 9,999 images took ~20 minutes
# on the shared 2 cores, see docs/reproduce.md); --n cuts it for a quick look
CPU_EVAL_N = None
CPU_STANDIN = {"mnist": "mnist-5k", "cifar10": "fashion-mnist"}   # paper data set -> CPU stand-in (28 px, grey)
# the generation table's stand-ins (the 128-px colour sets have none in the restoration tables)
GEN_STANDIN = {"celeba": "mnist-5k", "afhq": "fashion-mnist"}
CPU_GEN_N = 500    # generated images per preset at cpu scale, measured against as many test images


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
    if _standin(preset_name) is None:
        return f"{cfg.data.name} at {cfg.data.image_size} px has no CPU-scale stand-in"
    if cfg.degradation.name == "desaturate":
        return "colourisation needs colour images; the CPU stand-ins are grey"
    return None


def _standin(preset_name: str) -> Optional[str]:
    """The CPU stand-in data set of a paper preset (generation presets have their own), or None."""
    from .presets import preset

    data = preset(preset_name).data.name
    generation = any(preset_name in t.presets for t in TABLES.values() if t.kind == "generation")
    return (GEN_STANDIN if generation else CPU_STANDIN).get(data)


def cpu_network(arch: str, net: str = "authors") -> Dict[str, Any]:
    """The ``[model]`` table of a CPU stand-in whose paper preset uses ``arch``: that architecture at a narrow
    width (``net="authors"``), or colddiff's U-Net (``net="colddiff"``)."""
    if net not in NETS:
        raise ConfigError(f"--net must be one of {', '.join(NETS)}, got {net!r}")
    name = arch if net == "authors" else "colddiff"
    return {"arch": name, **{k: list(v) if isinstance(v, list) else v for k, v in CPU_NETS[name].items()}}


def scaled_config(preset_name: str, scale: str, steps: Optional[int] = None, net: str = "authors"):
    """The RunConfig of ``preset_name`` at ``scale`` (None at cpu scale when it has no stand-in).

    ``steps`` overrides the step budget (tests run a table in a few steps); ``net`` picks the cpu scale's
    network (:func:`cpu_network`; the paper scale is always the preset's own)."""
    from .config import DataConfig, ModelConfig
    from .presets import preset

    if scale not in SCALES:
        raise ConfigError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    cfg = preset(preset_name)
    if scale == "paper" and net != "authors":
        raise ConfigError(f"--net {net} is for --scale cpu; the paper scale trains each preset's own network "
                          f"(the authors'); change it with `colddiff train --preset NAME --set model.arch=...`")
    if scale == "cpu":
        if cpu_skip_reason(preset_name):
            return None
        standin = _standin(preset_name)
        cfg.description = (f"CPU-scale stand-in of {preset_name}: its degradation and augmentation on {standin} "
                           f"(28 px), a small network; {cfg.description}")
        cfg.preset = f"{preset_name}-cpu"
        cfg.data = DataConfig(name=standin, image_size=28, channels=1, augment=cfg.data.augment)
        cfg.model = ModelConfig(**cpu_network(cfg.model.arch, net))
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
    from .config import check_resumable
    from .training import train

    latest = ckpt_io.find_latest(folder / "checkpoints")
    if latest is not None:
        saved, state = ckpt_io.read_meta(latest)
        # a finished run of another network or degradation (e.g. --net colddiff into the --net authors folder) is
        # not this column: refused in one line, never evaluated under the wrong recipe
        check_resumable(saved, cfg, f"the run in {folder}")
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


def same_data(col: Dict[str, Any]) -> bool:
    """Whether a column's numbers are on the paper's data set (a ratio to the paper means something)."""
    return bool(col.get("data")) and col.get("data") == col.get("paper_data")


def row_name(col: Dict[str, Any]) -> str:
    """The preset, with its real data set where that is not the paper's: ``cifar10-blur on fashion-mnist``."""
    if col.get("data") and not same_data(col):
        return f"{col['preset']} on {col['data']}"
    return col["preset"]


_NET_NAMES = {"colddiff": "colddiff's own U-Net (unet.py)",
              "lucidrains-convnext": "the authors' ConvNeXt Unet (lucidrains-convnext, networks/convnext.py), "
                                     "linear attention at every level",
              "convnext-snow": "the authors' UnetConvNext (convnext-snow, networks/convnext.py), "
                               "linear attention at every level",
              "ddpm": "the authors' DDPM Model (ddpm, networks/ddpm.py)"}


def describe_recipe(r: Dict[str, Any]) -> str:
    """One line: the network and training recipe a column was trained with (its config's model and train)."""
    arch = r.get("arch") or "colddiff"
    net = _NET_NAMES.get(arch, f"the {arch} network") + \
        f", dim {r['dim']}, multipliers {'-'.join(str(m) for m in r['dim_mults'])}"
    if "attn_levels" in r:
        net += ", attention at levels " + ",".join(map(str, r["attn_levels"])) if r["attn_levels"] else ", no attention"
    if "num_res_blocks" in r:
        net += f", {r['num_res_blocks']} residual block{'s' if r['num_res_blocks'] != 1 else ''} per level"
    if r.get("dropout"):
        net += f", dropout {r['dropout']:g}"
    train = (f"Adam lr {r['lr']:g}, batch {r['batch_size']}"
             + (f" x {r['grad_accum']} accumulated" if r.get("grad_accum", 1) > 1 else ", no accumulation")
             + (f", {r['warmup_steps']} warm-up steps" if r.get("warmup_steps") else "")
             + (f", EMA {r['ema_decay']:g} every " + (f"{r['ema_every']} steps" if r["ema_every"] != 1 else "step")
                + f" from step {r['ema_start']:,}" if "ema_decay" in r else "")
             + f", {r['steps']:,} steps")
    return f"{net}; {train}"


def recipe(cfg) -> Dict[str, Any]:
    """The recorded recipe of a column: its network (the ``[model]`` keys its architecture reads) and training
    settings (see :func:`describe_recipe`)."""
    from .networks import ARCHS

    m, t = cfg.model, cfg.train
    arch = getattr(m, "arch", "colddiff")
    net = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in ((k, getattr(m, k)) for k in ARCHS[arch].uses)}
    return {"arch": arch, **net, "steps": t.steps, "lr": t.lr,
            "batch_size": t.batch_size, "grad_accum": t.grad_accum, "warmup_steps": t.warmup_steps,
            "ema_decay": t.ema_decay, "ema_every": t.ema_every, "ema_start": t.ema_start}


@dataclass
class Reproduction:
    """One table of the paper, reproduced: per preset our evaluation rows beside the paper's numbers.

    Each column records its data set (``data``, ``paper_data``) and its ``recipe``; a stand-in's rows carry
    their real data set in the row name and get no ratio to the paper (different data)."""

    table: str
    title: str
    scale: str
    protocol: str
    command: str
    columns: List[Dict[str, Any]] = field(default_factory=list)   # one per preset (see run_table)
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:

        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Reproduction":
        """A table read back from its JSON (``OUT/TABLE.json``), to render it again without rerunning."""
        try:
            return cls(**{k: d[k] for k in ("table", "title", "scale", "protocol", "command", "columns")},
                       seconds=float(d.get("seconds", 0.0)))
        except (KeyError, TypeError) as e:
            raise InputError(f"not a reproduce table ({e}); rerun `colddiff reproduce`") from None

    def ratios(self) -> bool:
        """Ratio columns only when some column is on the paper's own data set."""
        return any(same_data(c) and c.get("rows") for c in self.columns)

    def body(self) -> List[List[str]]:
        out = []
        width = (3 if self.ratios() else 2) * len(METRICS)
        for col in self.columns:
            if col.get("skipped"):
                out.append([col["preset"], "skipped: " + col["skipped"]] + [""] * width)
                continue
            if not col.get("rows"):
                out.append([row_name(col), f"trained to step {col['step']:,}, not evaluated"
                            + (f" ({col['note']})" if col.get("note") else "")] + [""] * width)
                continue
            for row in col["rows"]:
                paper_row = row.get("paper_row", "")
                cells = [row_name(col), col["labels"].get(row["method"], row["method"])
                         + (f" [paper: {paper_row}]" if paper_row else "")]
                for key, _ in METRICS:
                    mine = row.get(key)
                    theirs = col["paper"].get(paper_row, {}).get(key) if paper_row else None
                    cells += [_fmt(key, mine), _fmt(key, theirs)]
                    if self.ratios():
                        # the paper's FID is on Inception features, a classifier FID on another scale; a
                        # stand-in is on another data set: no ratio for either
                        comparable = same_data(col) and (key != "fid" or col.get("fid_backend") == "inception")
                        cells.append(f"{mine / theirs:.2f}" if mine is not None and theirs and comparable else "")
                out.append(cells)
        return out

    def headers(self) -> List[str]:
        h = ["Preset", "Row"]
        for key, name in METRICS:
            h += [f"{name} ours", f"{name.split()[0]} paper"] + (["ratio"] if self.ratios() else [])
        return h

    def notes(self) -> str:
        lines = [f"Protocol: `{self.protocol}`; scale: `{self.scale}`. Command: `{self.command}`.", ""]
        for col in self.columns:
            if col.get("skipped"):
                continue
            bits = [f"- **{row_name(col)}**: {col.get('description', '')}"]
            if col.get("rows"):
                bits.append(f". Step {col['step']:,}; {col['n']:,} {col['split']} images"
                            + (" (enlarged 1.12x, centre-cropped)" if col.get("enlarged") else "")
                            + (f" ({col['test_set']})" if col.get("test_set") else "")
                            + (f"; {col['fid_label']}" if col.get("fid_label") else "") + ".")
                if col.get("row_notes"):
                    bits.append(" " + col["row_notes"])
            lines.append("".join(bits))
        recipes = sorted({describe_recipe(c["recipe"]) for c in self.columns if c.get("recipe")})
        if len(recipes) == 1:
            lines += ["", ("Recipe (network and training" + (", every stand-in" if self.scale == "cpu" else "") + "): "
                           + recipes[0] + ".")]
        elif recipes:
            lines += ["", "Recipes (network and training):", ""]
            lines += [f"- {row_name(c)}: {describe_recipe(c['recipe'])}." for c in self.columns if c.get("recipe")]
        standins = [row_name(c) for c in self.columns if c.get("data") and not same_data(c)]
        tail = ["Paper values: " + "; ".join(sorted({c["paper_source"] for c in self.columns
                                                     if c.get("paper_source")})) + "."]
        if standins:
            tail.append(f"No ratio for {', '.join(standins)}: another data set, network and budget than the "
                        "paper's, whose numbers are shown for orientation, not comparison.")
        if self.ratios():
            tail.append("Ratio = ours / paper, on the paper's own data set only"
                        + ("; no FID ratio where our FID is on classifier features (the paper's is on Inception "
                           "features, another scale)" if any(c.get("rows") and c.get("fid_backend") != "inception"
                                                             for c in self.columns) else "") + ".")
        lines += ["", " ".join(tail)]
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
              progress: bool = True, command: str = "", batch_size: int = 100, net: str = "authors") -> Reproduction:
    """Train or resume every preset of table ``name`` into ``out/<preset>``, evaluate each (unless
    ``train_only``) and write ``out/<name>.md`` and ``.json`` (rank 0 only under torchrun)."""
    from . import paper
    from .presets import preset

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
        cfg = scaled_config(p, scale, steps, net=net)
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
        col.update(run=str(folder), description=cfg.description, train_seconds=round(time.perf_counter() - t0, 1),
                   data=cfg.data.name, paper_data=preset(p).data.name, recipe=recipe(cfg))
        res = paper.paper_results(p)
        if res is not None:
            col["paper"], col["paper_source"] = res.rows, res.source
        else:
            col["paper"], col["paper_source"] = {}, ""
        if train_only or rank != 0:
            pass
        elif table.kind == "generation":
            col.update(generation_column(folder, n=n or (CPU_GEN_N if scale == "cpu" else paper.GEN_SAMPLES),
                                         fid=fid, progress=progress, batch_size=batch_size,
                                         reference=CPU_GEN_N if scale == "cpu" else None))
        else:
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
            "test_set": ev.test_set,
            "fid_backend": ev.fid_backend}


def generation_column(folder: Path, n: int, fid: str, progress: bool, batch_size: int = 100,
                      reference: Optional[int] = None) -> Dict[str, Any]:
    """FID of ``n`` images generated by a trained run with its default generation setting (the preset's
    ``[generation]``: broken-symmetry start noise for blur, DDIM for noise) against its test images (the
    first ``reference`` of them, or all); the images are kept in RUN/generation/reproduce/."""
    from . import metrics
    from .evaluation import extractors, held_out
    from .generation import generate, generation_defaults, write_generation
    from .generation_eval import setting_name
    from .runs import load_run

    start = time.perf_counter()
    run = load_run(folder)
    x_ref, labels, split = held_out(run, reference)
    labelled = bool((labels >= 0).all())
    fid = metrics.resolve_backend(fid, labelled)
    _, extractor = extractors(run, fid, labelled, classifier=False, progress=progress)
    st = generation_defaults(run)
    images = generate(run, n, sampler=st["sampler"], noise=st["noise"], delta=st["delta"], k=st["k"],
                      batch_size=batch_size, progress=progress)
    write_generation(images, folder / "generation" / "reproduce", {**st, "seed": 0, "run": str(folder),
                                                                   "step": run.step})
    setting = setting_name(st["sampler"], st["noise"], st["delta"])
    row: Dict[str, Any] = {"method": setting, "paper_row": "sampled"}
    label = ""
    if extractor is not None:
        info = metrics.fid(extractor.features(images), extractor.features(x_ref), extractor.name,
                           accuracy=getattr(extractor, "accuracy", None))
        row["fid"], label = info.value, info.label()
    return {"rows": [row], "labels": {setting: f"generated: {setting}"}, "n": int(images.shape[0]),
            "split": "generated vs " + f"{int(x_ref.shape[0]):,} {split}", "fid_label": label, "row_notes": "",
            "step": run.step, "enlarged": False, "eval_seconds": round(time.perf_counter() - start, 1),
            "fid_backend": fid}


def finished_evaluation(run, n: Optional[int], protocol: str, fid: str):
    """The run's evaluation already written for this checkpoint, protocol, image count and FID back end
    (``colddiff evaluate RUN --protocol ...`` or an earlier ``reproduce``), or None: evaluation resumes too."""
    from .evaluation import eval_name, paper_test_indices, read_evaluation

    path = run.folder / "evaluation" / f"{eval_name(run.T, run.T, protocol)}.json"
    if not path.exists():
        return None
    try:
        ev = read_evaluation(path)
    except InputError:
        return None
    size = len(run.held_out()[0])
    available = len(paper_test_indices(run, size)) if protocol == "paper" else size   # the protocol's whole set
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

"""Evaluating a run (the paper's Table 1) and restoring images that are already degraded.

``evaluate(run)`` restores N held-out test images from t = T (or a chosen t) with direct
reconstruction, Algorithm 1 and Algorithm 2, and measures each row against the clean
images: FID (classifier or Inception features, always labelled with the back end), SSIM,
RMSE and PSNR on [0, 1] images, and, for labelled data sets, whether the restoration keeps
its class (the classifier's accuracy on the row's images).

``restore(run, y, t)`` restores the user's own degraded images; ``estimate_t`` picks the
severity t when it is not known: the t whose degradation of the restoration best
reproduces the input, argmin_t || D(R(y, t), t) − y ||.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from . import metrics
from .errors import ConfigError, InputError
from .fileio import atomic_path
from .runs import Run
from .samplers import algorithm1, algorithm2, direct

log = logging.getLogger("colddiff.evaluation")

# Table 1 of the paper: one row per way of getting an image back from x_t.
METHODS = ("degraded", "direct", "algorithm1", "algorithm2")
METHOD_LABELS = {"degraded": "Degraded", "direct": "Direct", "algorithm1": "Algorithm 1",
                 "algorithm2": "Algorithm 2"}
COLUMNS = ("fid", "ssim", "rmse", "psnr", "accuracy")


def markdown_table(head: List[str], body: List[List[str]]) -> str:
    """A Markdown table: first column left-aligned, the numbers right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def text_table(head: List[str], body: List[List[str]]) -> str:
    """The same table for a terminal, in aligned columns."""
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(b) for b in body])


def write_tables(folder, stem: str, texts: Dict[str, str]) -> Dict[str, Path]:
    """folder/stem.EXT for each (EXT, text), each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext, text in texts.items():
        path = folder / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
        out[ext] = path
    return out


@dataclass
class Evaluation:
    """The evaluation table of one run at one t, with everything needed to reproduce it."""

    run: str
    folder: str
    checkpoint: str
    step: int
    degradation: str
    T: int
    t: int
    n: int
    split: str
    ema: bool
    fid_backend: str                      # classifier | inception | none
    fid_label: str = ""                   # e.g. "FID (classifier features, test accuracy 98.6%, ...)"
    fid_small: bool = False               # FID on fewer than 2,048 images: biased upward, marked
    classifier_accuracy: Optional[float] = None   # the classifier's own test accuracy (fraction)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Evaluation":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    # ------------------------------------------------------------------ tables
    def columns(self) -> List[str]:
        cols = ["fid"] if self.fid_backend != "none" else []
        cols += ["ssim", "rmse", "psnr"]
        if any(r.get("accuracy") is not None for r in self.rows):
            cols.append("accuracy")
        return cols

    def headers(self) -> List[str]:
        names = {"fid": f"FID ({self.fid_backend})" + ("*" if self.fid_small else ""), "ssim": "SSIM ↑",
                 "rmse": "RMSE ↓", "psnr": "PSNR dB ↑", "accuracy": "class kept ↑"}
        return ["Method"] + [names[c] for c in self.columns()]

    def cells(self, row: Dict[str, Any]) -> List[str]:
        out = [METHOD_LABELS.get(row["method"], row["method"])]
        for c in self.columns():
            v = row.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                out.append("–")
            elif c == "accuracy":
                out.append(f"{100 * v:.1f}%")
            elif c in ("fid", "psnr"):
                out.append(f"{v:.2f}")
            else:
                out.append(f"{v:.4f}")
        return out

    def caption(self) -> str:
        parts = [f"{self.run} at step {self.step:,} ({'EMA' if self.ema else 'raw'} weights): {self.n} held-out "
                 f"{self.split} images restored from t={self.t} of T={self.T} ({self.degradation})."]
        if self.fid_backend != "none":
            parts.append(self.fid_label + ".")
        if self.classifier_accuracy is not None:
            parts.append(f"'class kept': share of images the classifier (test accuracy "
                         f"{100 * self.classifier_accuracy:.1f}%) assigns to the clean image's label.")
        parts.append("SSIM, RMSE and PSNR on images in [0, 1], averaged per image.")
        return " ".join(parts)

    def markdown(self) -> str:
        return markdown_table(self.headers(), [self.cells(r) for r in self.rows]) + "\n\n" + self.caption() + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = self.columns()
        w.writerow(["method"] + cols + ["n", "t", "T", "fid_backend"])
        for r in self.rows:
            w.writerow([r["method"]] + ["" if r.get(c) is None else f"{r[c]:.6g}" for c in cols]
                       + [self.n, self.t, self.T, self.fid_backend])
        return buf.getvalue()

    def text(self) -> str:
        """A plain table for the terminal."""
        return text_table(self.headers(), [self.cells(r) for r in self.rows]) + "\n" + self.caption()


def eval_name(t: int, T: int) -> str:
    return "restoration" if t == T else f"restoration-t{t}"


def write_evaluation(ev: Evaluation, folder) -> Dict[str, Path]:
    """Markdown, CSV and JSON of the table in ``folder`` (RUN/evaluation), each written atomically."""
    return write_tables(folder, eval_name(ev.t, ev.T),
                        {"md": ev.markdown(), "csv": ev.csv(), "json": json.dumps(ev.to_dict(), indent=2)})


def read_evaluation(path) -> Evaluation:
    try:
        return Evaluation.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"evaluation file {path} is unreadable ({e}); rerun `colddiff evaluate`") from None


# ---------------------------------------------------------------------------- held-out data
def held_out(run: Run, n: int):
    """The first ``n`` held-out images and their labels (a fixed, documented choice: reproducible)."""
    ds, split = run.held_out()
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    n = min(n, len(ds))
    items = [ds[i] for i in range(n)]
    x0 = torch.stack([x for x, _ in items])
    labels = torch.tensor([int(y) for _, y in items], dtype=torch.long)
    return x0, labels, split


def check_t(run: Run, t: Optional[int]) -> int:
    T = run.T
    if t is None:
        return T
    if not 1 <= int(t) <= T:
        raise ConfigError(f"--t must be between 1 and T={T} for this run, got {t}")
    return int(t)


# ---------------------------------------------------------------------------- restoring
def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=not progress, leave=False)


def _ctx_to(ctx, device):
    from .training import _to_device

    return _to_device(ctx, device)


def _slice_ctx(ctx, lo: int, hi: int, n: int):
    """The part of a per-trajectory context that belongs to samples lo:hi (tensors with a batch axis)."""
    if isinstance(ctx, torch.Tensor):
        return ctx[lo:hi] if ctx.dim() > 0 and ctx.shape[0] == n else ctx
    if isinstance(ctx, dict):
        return {k: _slice_ctx(v, lo, hi, n) for k, v in ctx.items()}
    return ctx


def restore_batches(run: Run, x0: torch.Tensor, t: int, methods=METHODS, batch_size: int = 100,
                    seed: int = 0, progress: bool = True) -> Dict[str, torch.Tensor]:
    """x_t = D(x0, t) and its restorations by each method, on CPU, processed in batches.

    The per-trajectory randomness (mask centres, noise, partners) is drawn once for all N
    images from ``seed``, so the table is reproducible and independent of the batch size.
    """
    D = run.D
    n = x0.shape[0]
    ctx_all = D.context(x0, torch.Generator().manual_seed(seed))
    iterative = [m for m in methods if m in ("algorithm1", "algorithm2")]
    total = n_batches = -(-n // batch_size)
    total = n_batches * (len(iterative) * t + ("direct" in methods))
    out: Dict[str, List[torch.Tensor]] = {m: [] for m in methods}
    bar = _bar(total, f"restore {run.name} t={t}", progress)
    tick = lambda *a: bar.update(1)  # noqa: E731
    try:
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            x0_b = x0[lo:hi].to(run.device)
            ctx = _ctx_to(_slice_ctx(ctx_all, lo, hi, n), run.device)
            with torch.no_grad():
                x_t = D(x0_b, t, ctx)
            for m in methods:
                if m == "degraded":
                    y = x_t
                elif m == "direct":
                    y = direct(run.R, x_t, t)
                    bar.update(1)
                elif m == "algorithm1":
                    y = algorithm1(run.R, D, x_t, t, ctx, callback=tick)
                elif m == "algorithm2":
                    y = algorithm2(run.R, D, x_t, t, ctx, callback=tick)
                else:
                    raise ConfigError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
                out[m].append(y.float().cpu())
    finally:
        bar.close()
    return {m: torch.cat(v) for m, v in out.items()}


# ---------------------------------------------------------------------------- Table 1
def evaluate(run: Run, n: int = 500, t: Optional[int] = None, fid: str = "classifier", classifier: bool = True,
             batch_size: int = 100, seed: int = 0, progress: bool = True,
             restored: Optional[Dict[str, torch.Tensor]] = None) -> Evaluation:
    """The paper's Table 1 for ``run``: rows Degraded / Direct / Algorithm 1 / Algorithm 2.

    ``fid``: ``classifier`` (offline; colddiff trains and caches a small CNN on the labelled
    data set), ``inception`` (the standard FID network; needs its weights file) or ``none``.
    ``classifier``: also report the share of restorations the classifier assigns to the
    clean image's label (labelled data sets only).
    """
    start = time.perf_counter()
    t = check_t(run, t)
    if fid not in ("classifier", "inception", "none"):
        raise ConfigError(f"--fid must be classifier, inception or none, got {fid!r}")
    x0, labels, split = held_out(run, n)
    labelled = bool((labels >= 0).all())
    c = run.cfg.data
    if fid == "classifier" and not labelled:
        raise ConfigError(f"the classifier FID back end needs a labelled data set and {c.name} has no labels; "
                          "use --fid inception or --fid none")
    clf = None
    if labelled and (classifier or fid == "classifier"):
        from .classifier import get_classifier

        clf = get_classifier(c.name, c.image_size, c.channels, root=c.root or None, progress=progress)
    extractor = None
    if fid == "classifier":
        extractor = clf
    elif fid == "inception":
        extractor = metrics.get_extractor("inception", c.name, c.image_size, c.channels, root=c.root or None,
                                          device=str(run.device), progress=progress)

    if restored is None:
        restored = restore_batches(run, x0, t, batch_size=batch_size, seed=seed, progress=progress)
    ref_feats = extractor.features(x0) if extractor is not None else None
    rows, fid_info = [], None
    for m in METHODS:
        y = restored[m]
        row: Dict[str, Any] = {"method": m,
                               "ssim": float(metrics.ssim(y, x0).mean()),
                               "rmse": float(metrics.rmse(y, x0).mean()),
                               "psnr": _mean_finite(metrics.psnr(y, x0))}
        if extractor is not None:
            fid_info = metrics.fid(extractor.features(y), ref_feats, extractor.name,
                                   accuracy=getattr(extractor, "accuracy", None))
            row["fid"] = fid_info.value
        if clf is not None:
            row["accuracy"] = float((clf.predict(y) == labels).float().mean())
        rows.append(row)
    return Evaluation(
        run=run.name, folder=str(run.folder), checkpoint=run.checkpoint.name, step=run.step,
        degradation=repr(run.D), T=run.T, t=t, n=int(x0.shape[0]), split=split, ema=run.ema,
        fid_backend=fid, fid_label=fid_info.label() if fid_info else "", fid_small=bool(fid_info and fid_info.small),
        classifier_accuracy=clf.accuracy if clf is not None else None, rows=rows,
        seconds=round(time.perf_counter() - start, 2), device=str(run.device))


def _mean_finite(v: torch.Tensor) -> float:
    """Mean PSNR over images with a finite value (an exact restoration has PSNR = inf)."""
    finite = v[torch.isfinite(v)]
    return float(finite.mean()) if finite.numel() else float("inf")


# ---------------------------------------------------------------------------- user images
def estimate_t(run: Run, y: torch.Tensor, candidates: Optional[List[int]] = None, batch_size: int = 64,
               progress: bool = False) -> torch.Tensor:
    """Per-image severity: argmin over t of the mean squared error between D(R(y, t), t) and y.

    A restoration at the right t, degraded again by t steps, reproduces the input; at a
    too-small t the network under-restores, at a too-large t it invents detail that the
    degradation then removes differently.  Deterministic degradations only: a random one
    (mask position, noise) has per-image parameters that cannot be recovered this way.
    """
    D = run.D
    if not D.deterministic:
        raise ConfigError(f"--t auto needs a deterministic degradation and {D.name} is random per image; "
                          "give the severity with --t N")
    ts = candidates or list(range(1, D.T + 1))
    best_err = torch.full((y.shape[0],), float("inf"))
    best_t = torch.zeros(y.shape[0], dtype=torch.long)
    bar = _bar(len(ts) * -(-y.shape[0] // batch_size), "estimate t", progress)
    try:
        for lo in range(0, y.shape[0], batch_size):
            yb = y[lo:lo + batch_size].to(run.device)
            for t in ts:
                tt = torch.full((yb.shape[0],), t, dtype=torch.long, device=run.device)
                with torch.no_grad():
                    err = (D(run.R(yb, tt), t) - yb).pow(2).flatten(1).mean(1).float().cpu()
                better = err < best_err[lo:lo + yb.shape[0]]
                best_err[lo:lo + yb.shape[0]] = torch.where(better, err, best_err[lo:lo + yb.shape[0]])
                best_t[lo:lo + yb.shape[0]] = torch.where(better, torch.tensor(t), best_t[lo:lo + yb.shape[0]])
                bar.update(1)
    finally:
        bar.close()
    return best_t


def restore(run: Run, y: torch.Tensor, t, sampler: str = "algorithm2", batch_size: int = 64,
            progress: bool = True) -> torch.Tensor:
    """Restore already-degraded images ``y`` (N, C, H, W) in [-1, 1] from per-image steps ``t``."""
    samplers = {"direct": None, "algorithm1": algorithm1, "algorithm2": algorithm2}
    if sampler not in samplers:
        raise ConfigError(f"--sampler must be one of {', '.join(samplers)}, got {sampler!r}")
    D = run.D
    if sampler != "direct" and not D.deterministic:
        raise ConfigError(f"{D.name} is random per image (its mask position / noise / partner is unknown for your "
                          f"images), so {sampler} cannot re-apply it; restore with --sampler direct")
    t = D.as_t(t, y) if isinstance(t, torch.Tensor) else torch.full((y.shape[0],), int(t), dtype=torch.long)
    outs = []
    bar = _bar(-(-y.shape[0] // batch_size) * (1 if sampler == "direct" else int(t.max())),
               f"restore ({sampler})", progress)
    try:
        for lo in range(0, y.shape[0], batch_size):
            yb, tb = y[lo:lo + batch_size].to(run.device), t[lo:lo + batch_size].to(run.device)
            if sampler == "direct":
                x = direct(run.R, yb, tb)
                bar.update(1)
            else:
                x = samplers[sampler](run.R, D, yb, tb, None, callback=lambda *a: bar.update(1))
            outs.append(x.float().cpu())
    finally:
        bar.close()
    return torch.cat(outs)


# ---------------------------------------------------------------------------- generation
@dataclass
class GenerationEvaluation:
    """Measured diversity and quality of images generated from scratch, one row per setting."""

    run: str
    checkpoint: str
    step: int
    degradation: str
    n: int
    fid_backend: str
    fid_label: str = ""
    fid_small: bool = False
    classifier_accuracy: Optional[float] = None
    num_classes: int = 0
    rows: List[Dict[str, Any]] = field(default_factory=list)   # setting, sampler, noise, stats..., fid, folder
    blank_definition: str = ""
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "GenerationEvaluation":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def headers(self) -> List[str]:
        h = ["Images", "class entropy ↑", "classes (≥1%)", "near-blank ↓", "confidence"]
        if self.fid_backend != "none":
            h.insert(1, f"FID ({self.fid_backend})" + ("*" if self.fid_small else ""))
        return h

    def cells(self, r: Dict[str, Any]) -> List[str]:
        out = [r["setting"]]
        if self.fid_backend != "none":
            out.append("–" if r.get("fid") is None else f"{r['fid']:.2f}")
        out += [f"{r['entropy']:.3f}", f"{r['classes_covered_1pct']} of {self.num_classes}",
                f"{100 * r['near_blank_share']:.1f}%", f"{r['mean_confidence']:.3f}"]
        return out

    def caption(self) -> str:
        s = (f"{self.run} at step {self.step:,}: {self.n} images per setting generated from t=T ({self.degradation}). "
             f"Classes are the classifier's predictions (test accuracy {100 * (self.classifier_accuracy or 0):.1f}%); "
             "class entropy is the entropy of their histogram divided by log K (1 = every class equally often, "
             f"0 = always the same class). Near-blank: {self.blank_definition}.")
        if self.fid_backend != "none":
            s += f" {self.fid_label}, against the held-out test images."
        return s

    def markdown(self) -> str:
        hist = ["", "Class histograms (images per predicted class 0..K-1):", ""]
        hist += [f"- {r['setting']}: {r['histogram']}" for r in self.rows]
        return (markdown_table(self.headers(), [self.cells(r) for r in self.rows]) + "\n\n" + self.caption()
                + "\n" + "\n".join(hist) + "\n")

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["setting", "sampler", "noise", "fid", "entropy", "classes_covered", "classes_covered_1pct",
                    "near_blank_share", "mean_confidence", "n", "fid_backend"]
                   + [f"class_{k}" for k in range(self.num_classes)])
        for r in self.rows:
            w.writerow([r["setting"], r.get("sampler", ""), r.get("noise", ""),
                        "" if r.get("fid") is None else f"{r['fid']:.6g}", f"{r['entropy']:.6g}",
                        r["classes_covered"], r["classes_covered_1pct"], f"{r['near_blank_share']:.6g}",
                        f"{r['mean_confidence']:.6g}", r["n"], self.fid_backend] + list(r["histogram"]))
        return buf.getvalue()

    def text(self) -> str:
        return text_table(self.headers(), [self.cells(r) for r in self.rows]) + "\n" + self.caption()


def generation_settings(run: Run, noise: float) -> List[Dict[str, Any]]:
    """The settings compared by default: Algorithm 2 without and with start noise; DDIM too for noise runs."""
    settings = [{"setting": "Algorithm 2, no noise", "sampler": "algorithm2", "noise": 0.0}]
    if noise > 0:
        settings.append({"setting": f"Algorithm 2, noise {noise:g}", "sampler": "algorithm2", "noise": noise})
    if run.D.name == "noise":
        settings.append({"setting": "DDIM", "sampler": "ddim", "noise": 0.0})
    return settings


def evaluate_generation(run: Run, n: int = 500, noise: float = 0.002, fid: str = "classifier", seed: int = 0,
                        batch_size: int = 256, progress: bool = True,
                        settings: Optional[List[Dict[str, Any]]] = None) -> GenerationEvaluation:
    """Generate ``n`` images per setting and measure them: class histogram, entropy, coverage,
    near-blank share, classifier confidence and FID against the held-out images.

    The generated images are kept in RUN/generation/<setting>/ (PNGs, grid, generation.json),
    and the real held-out images are measured the same way as a reference row.
    """
    from .classifier import get_classifier
    from .generation import generate, generation_stats, write_generation

    start = time.perf_counter()
    if n < 1:
        raise ConfigError(f"--gen-n must be at least 1, got {n}")
    c = run.cfg.data
    x_ref, labels, split = held_out(run, n)
    if not bool((labels >= 0).all()):
        raise ConfigError(f"measuring generation needs a labelled data set (class histogram) and {c.name} has no "
                          "labels; look at the images of `colddiff generate` instead")
    clf = get_classifier(c.name, c.image_size, c.channels, root=c.root or None, progress=progress)
    extractor = None
    if fid == "classifier":
        extractor = clf
    elif fid == "inception":
        extractor = metrics.get_extractor("inception", c.name, c.image_size, c.channels, device=str(run.device),
                                          progress=progress)
    elif fid != "none":
        raise ConfigError(f"--fid must be classifier, inception or none, got {fid!r}")
    ref_feats = extractor.features(x_ref) if extractor is not None else None
    rows, fid_info = [], None

    def measure(setting: Dict[str, Any], images: torch.Tensor) -> Dict[str, Any]:
        nonlocal fid_info
        row = dict(setting)
        row.update(generation_stats(clf.predict_proba(images), images))
        if extractor is not None:
            fid_info = metrics.fid(extractor.features(images), ref_feats, extractor.name,
                                   accuracy=getattr(extractor, "accuracy", None))
            row["fid"] = fid_info.value
        return row

    for s in settings or generation_settings(run, noise):
        images = generate(run, n, sampler=s["sampler"], noise=s["noise"], seed=seed, batch_size=batch_size,
                          progress=progress)
        folder = run.folder / "generation" / (f"{s['sampler']}-noise{s['noise']:g}")
        write_generation(images, folder, {**s, "seed": seed, "run": str(run.folder), "step": run.step})
        row = measure(s, images)
        row["folder"] = str(folder)
        rows.append(row)
    real = measure({"setting": f"real {split} images (reference)", "sampler": "", "noise": ""}, x_ref)
    if extractor is not None:
        real["fid"] = None  # the reference set against itself: 0 by definition
    rows.append(real)
    return GenerationEvaluation(
        run=run.name, checkpoint=run.checkpoint.name, step=run.step, degradation=repr(run.D), n=int(x_ref.shape[0]),
        fid_backend=fid, fid_label=fid_info.label() if fid_info else "", fid_small=bool(fid_info and fid_info.small),
        classifier_accuracy=clf.accuracy, num_classes=int(clf.num_classes), rows=rows,
        blank_definition=rows[0]["blank_definition"], seconds=round(time.perf_counter() - start, 2))


def write_generation_evaluation(ev: GenerationEvaluation, folder) -> Dict[str, Path]:
    """RUN/evaluation/generation.{md,csv,json} and the class-histogram plot generation-histogram.png."""
    out = write_tables(folder, "generation",
                       {"md": ev.markdown(), "csv": ev.csv(), "json": json.dumps(ev.to_dict(), indent=2)})
    out["png"] = histogram_figure(ev, Path(folder) / "generation-histogram.png")
    return out


def histogram_figure(ev: GenerationEvaluation, path) -> Path:
    """Grouped bars: share of images per predicted class, one colour per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = ev.num_classes
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    width = 0.8 / max(1, len(ev.rows))
    for i, r in enumerate(ev.rows):
        share = [h / max(1, r["n"]) for h in r["histogram"]]
        ax.bar([k - 0.4 + (i + 0.5) * width for k in range(K)], share, width, label=r["setting"])
    ax.axhline(1 / K, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(K))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("share of images")
    ax.set_title("class histogram of generated images (dashed: uniform)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def read_generation_evaluation(path) -> GenerationEvaluation:
    try:
        return GenerationEvaluation.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"evaluation file {path} is unreadable ({e}); rerun `colddiff evaluate --generation`") from None

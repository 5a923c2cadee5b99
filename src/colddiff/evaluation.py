"""Evaluating a run: the paper's Table 1.

``evaluate(run)`` restores N held-out test images from t = T (or a chosen t) with every
sampler that applies to the run's degradation (direct reconstruction, Algorithm 1,
Algorithm 2, ...; one row each, after the degraded inputs) and measures each row against
the clean images: FID (classifier or Inception features, always labelled with the back
end), SSIM, RMSE and PSNR on [0, 1] images, and, for labelled data sets, whether the
restoration keeps its class (the classifier's accuracy on the row's images).

Restoring a user's own degraded images is :mod:`colddiff.restoration`; measuring generated
images is :mod:`colddiff.generation_eval`.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from . import metrics
from .errors import ConfigError, InputError
from .runs import Run, check_t
from .samplers import SAMPLERS, sampler_names
from .tables import Record, markdown_table, text_table, write_tables
from .validate import record

log = logging.getLogger("colddiff.evaluation")

COLUMNS = ("fid", "fid_classifier", "ssim", "rmse", "psnr", "accuracy")


def table_methods(D) -> List[str]:
    """Table 1's rows for a degradation: the degraded inputs, then every sampler that applies to D."""
    return ["degraded"] + [n for n in sampler_names(D) if getattr(SAMPLERS[n], "restores", True)]


def method_label(method: str) -> str:
    return "Degraded" if method == "degraded" else getattr(SAMPLERS.get(method), "label", method)


@dataclass
class Evaluation(Record):
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
    fid_classifier_label: str = ""        # the extra classifier-FID column beside Inception FID (labelled sets)

    # ------------------------------------------------------------------ tables
    def columns(self) -> List[str]:
        cols = ["fid"] if self.fid_backend != "none" else []
        if any(r.get("fid_classifier") is not None for r in self.rows):
            cols.append("fid_classifier")
        cols += ["ssim", "rmse", "psnr"]
        if any(r.get("accuracy") is not None for r in self.rows):
            cols.append("accuracy")
        return cols

    def headers(self) -> List[str]:
        names = {"fid": f"FID ({self.fid_backend})" + ("*" if self.fid_small else ""),
                 "fid_classifier": "FID (classifier)" + ("*" if self.fid_small else ""), "ssim": "SSIM ↑",
                 "rmse": "RMSE ↓", "psnr": "PSNR dB ↑", "accuracy": "class kept ↑"}
        return ["Method"] + [names[c] for c in self.columns()]

    def cells(self, row: Dict[str, Any]) -> List[str]:
        out = [method_label(row["method"])]
        for c in self.columns():
            v = row.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                out.append("–")
            elif c == "accuracy":
                out.append(f"{100 * v:.1f}%")
            elif c in ("fid", "fid_classifier", "psnr"):
                out.append(f"{v:.2f}")
            else:
                out.append(f"{v:.4f}")
        return out

    def caption(self) -> str:
        parts = [f"{self.run} at step {self.step:,} ({'EMA' if self.ema else 'raw'} weights): {self.n} held-out "
                 f"{self.split} images restored from t={self.t} of T={self.T} ({self.degradation})."]
        if self.fid_backend != "none":
            parts.append(self.fid_label + ".")
        if self.fid_classifier_label:
            parts.append(self.fid_classifier_label + ".")
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
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"evaluation file {path} is unreadable ({e}); rerun `colddiff evaluate`") from None
    d = record(d, "evaluation", path, required=("run", "step", "T", "t", "n", "rows", "fid_backend"),
               hint="rerun `colddiff evaluate`")
    for i, r in enumerate(d["rows"]):
        if not isinstance(r.get("method"), str):
            raise InputError(f"{path}: rows[{i}] has no method name; rerun `colddiff evaluate`")
    try:
        return Evaluation.from_dict(d)
    except (ValueError, TypeError) as e:
        raise InputError(f"evaluation file {path} is unreadable ({e}); rerun `colddiff evaluate`") from None


def find_evaluations(run_folder: Path) -> List[Evaluation]:
    """The restoration tables written by `colddiff evaluate` in RUN/evaluation, t = T first."""
    folder = Path(run_folder) / "evaluation"
    evs = [read_evaluation(p) for p in sorted(folder.glob("restoration*.json"))]
    return sorted(evs, key=lambda e: (e.t != e.T, -e.t))


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


# ---------------------------------------------------------------------------- restoring
def restore_batches(run: Run, x0: torch.Tensor, t: int, methods: Optional[Sequence[str]] = None,
                    batch_size: int = 100, seed: int = 0, progress: bool = True) -> Dict[str, torch.Tensor]:
    """x_t = D(x0, t) and its restorations by each method (default: :func:`table_methods`), on the CPU.

    The per-trajectory randomness (mask centres, noise, partners) is drawn once for all N
    images from ``seed``, so the table is reproducible and independent of the batch size.
    """
    methods = list(methods or table_methods(run.D))
    from .validate import whole

    ctx = run.D.context(x0, torch.Generator().manual_seed(whole(seed, "seed", lo=0, hi=2**32 - 1)))
    x_t = run.degrade(x0, t, ctx, batch_size=batch_size)
    return {m: x_t if m == "degraded" else
            run.sample(x_t, t, ctx, sampler=m, batch_size=batch_size, progress=progress,
                       desc=f"restore {run.name} t={t} ({m})")
            for m in methods}


def extractors(run: Run, fid: str, labelled: bool, classifier: bool = True, progress: bool = True):
    """(classifier or None, FID feature extractor or None) for a run's data set and a resolved back end."""
    c = run.cfg.data
    if fid == "classifier" and not labelled:
        raise ConfigError(f"the classifier FID back end needs a labelled data set and {c.name} has no labels; "
                          "use --fid inception or --fid none")
    clf = None
    if labelled and (classifier or fid == "classifier"):
        from .classifier import get_classifier

        clf = get_classifier(c.name, c.image_size, c.channels, root=c.root or None, progress=progress)
    if fid == "classifier":
        return clf, clf
    return clf, metrics.get_extractor(fid, c.name, c.image_size, c.channels, root=c.root or None,
                                      device=str(run.device), progress=progress)


# ---------------------------------------------------------------------------- Table 1
def evaluate(run: Run, n: int = 500, t: Optional[int] = None, fid: str = "auto", classifier: bool = True,
             batch_size: int = 100, seed: int = 0, progress: bool = True,
             restored: Optional[Dict[str, torch.Tensor]] = None) -> Evaluation:
    """The paper's Table 1 for ``run``: rows Degraded / Direct / Algorithm 1 / Algorithm 2 (/ DDIM on noise runs).

    ``fid``: ``classifier`` (offline; colddiff trains and caches a small CNN on the labelled
    data set), ``inception`` (the standard FID network; needs its weights file), ``none``, or
    ``auto`` (see :func:`colddiff.metrics.resolve_backend`).
    ``classifier``: also report the share of restorations the classifier assigns to the
    clean image's label (labelled data sets only).
    """
    start = time.perf_counter()
    t = check_t(t, run.T)
    x0, labels, split = held_out(run, n)
    labelled = bool((labels >= 0).all())
    fid = metrics.resolve_backend(fid, labelled)
    clf, extractor = extractors(run, fid, labelled, classifier, progress)
    methods = table_methods(run.D)

    if restored is None:
        restored = restore_batches(run, x0, t, batch_size=batch_size, seed=seed, progress=progress)
    ref_feats = extractor.features(x0) if extractor is not None else None
    # Inception FID is the paper's number; on labelled sets the offline classifier FID stays beside it
    clf_ref = clf.features(x0) if clf is not None and fid == "inception" else None
    rows, fid_info, clf_info = [], None, None
    for m in methods:
        y = restored[m]
        row: Dict[str, Any] = {"method": m,
                               "ssim": float(metrics.ssim(y, x0).mean()),
                               "rmse": float(metrics.rmse(y, x0).mean()),
                               "psnr": _mean_finite(metrics.psnr(y, x0))}
        if extractor is not None:
            fid_info = metrics.fid(extractor.features(y), ref_feats, extractor.name,
                                   accuracy=getattr(extractor, "accuracy", None))
            row["fid"] = fid_info.value
        if clf_ref is not None:
            clf_info = metrics.fid(clf.features(y), clf_ref, clf.name, accuracy=clf.accuracy)
            row["fid_classifier"] = clf_info.value
        if clf is not None:
            row["accuracy"] = float((clf.predict(y) == labels).float().mean())
        rows.append(row)
    return Evaluation(
        run=run.name, folder=str(run.folder), checkpoint=run.checkpoint.name, step=run.step,
        degradation=repr(run.D), T=run.T, t=t, n=int(x0.shape[0]), split=split, ema=run.ema,
        fid_backend=fid, fid_label=fid_info.label() if fid_info else "", fid_small=bool(fid_info and fid_info.small),
        classifier_accuracy=clf.accuracy if clf is not None else None, rows=rows,
        seconds=round(time.perf_counter() - start, 2), device=str(run.device),
        fid_classifier_label=clf_info.label() if clf_info else "")


def _mean_finite(v: torch.Tensor) -> float:
    """Mean PSNR over images with a finite value (an exact restoration has PSNR = +inf).

    Only +inf (an exact match) is left out; a NaN means broken images and must not vanish from
    the mean (dropping it once turned a NaN-producing network into the best score, PSNR inf).
    """
    if torch.isnan(v).any():
        raise InputError(f"PSNR is NaN for {int(torch.isnan(v).sum())} of {v.numel()} images: the images hold "
                         "non-finite values; check the checkpoint (an earlier one, or retrain)")
    finite = v[torch.isfinite(v)]
    return float(finite.mean()) if finite.numel() else float("inf")

"""Evaluating a run: the paper's Table 1.

``evaluate(run)`` restores N held-out test images from t = T (or a chosen t) with every
sampler that applies to the run's degradation (direct reconstruction, Algorithm 1,
Algorithm 2, ...; one row each, after the degraded inputs) and measures each row against
the clean images: FID (classifier or Inception features, always labelled with the back
end), SSIM, RMSE and PSNR on [0, 1] images, and, for labelled data sets, whether the
restoration keeps its class (the classifier's accuracy on the row's images).

Two protocols.  ``colddiff`` (the default for runs of one's own): the first N test images,
every sampler's row, per-image metrics on clamped [0, 1] images, averaged.  ``paper`` (the
default for the paper presets): what the authors' test scripts do (read in
arpitbansal297/Cold-Diffusion-Models, ``fid_distance_decrease_from_manifold`` in each family's
trainer): the whole test split except index 0, blur and super-resolution test images enlarged
1.12x and centre-cropped, RMSE as the square root of the global mean, unclamped, and the rows as
they compute them: "sampled" is Algorithm 2's x_0 for blur but the last network prediction
R(x_1, 1) for inpainting, super-resolution, snow and colourisation, and "degraded" is the image
after the first update for inpainting and snow (:func:`colddiff.paper.authors_test`, a table per family).

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
from .paper import authors_test, provenance
from .runs import Run, check_t
from .samplers import SAMPLERS, check_schedule, parse_schedule, sampler_names
from .tables import Record, markdown_table, text_table, write_tables
from .validate import record

log = logging.getLogger("colddiff.evaluation")

COLUMNS = ("fid", "fid_classifier", "ssim", "rmse", "psnr", "accuracy")
PROTOCOLS = ("paper", "colddiff")
# the rows only the paper protocol has (method -> label)
AUTHORS_ROWS = {"first-update": "Degraded: x_{T-1}, after the first update (authors')",
                "last-prediction": "Sampled: R(x_1, 1), the last prediction (authors')"}


def table_methods(D) -> List[str]:
    """Table 1's rows for a degradation: the degraded inputs, then every sampler that applies to D."""
    return ["degraded"] + [n for n in sampler_names(D) if getattr(SAMPLERS[n], "restores", True)]


def method_label(method: str) -> str:
    if method in AUTHORS_ROWS:
        return AUTHORS_ROWS[method]
    return "Degraded" if method == "degraded" else getattr(SAMPLERS.get(method), "label", method)


def default_protocol(run: Run) -> str:
    """``paper`` for the paper presets (they have a provenance entry), else ``colddiff``."""
    return "paper" if provenance(run.cfg.preset) is not None else "colddiff"


def check_protocol(protocol: Optional[str], run: Run) -> str:
    if protocol is None:
        return default_protocol(run)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def paper_methods(D, sampler: str = "algorithm2") -> List[tuple]:
    """The paper protocol's rows for D: (method, the paper's row it stands for, or ""); ``sampler`` is the
    iterative sampler ("algorithm2", the paper's; "authors-shifted", the authors' snow/colour code)."""
    test = authors_test(D.name)
    degraded = "first-update" if test.degraded_row == "first_update" else "degraded"
    rows = [(degraded, "degraded"), ("direct", "direct")]
    if test.sampled_row == "last_prediction":
        rows += [(sampler, ""), ("last-prediction", "sampled")]
    else:
        rows += [(sampler, "sampled")]
    if degraded != "degraded":
        rows.insert(0, ("degraded", ""))
    return rows


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
    protocol: str = "colddiff"            # colddiff | paper (see the module docstring)
    enlarged: bool = False                # paper protocol: test images enlarged 1.12x and centre-cropped
    sample_steps: str = "all"             # the iterative samplers' steps (colddiff.samplers.Schedule): all = every step

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
        if self.sample_steps != "all":
            parts.append(f"Iterative samplers visit the steps {self.sample_steps} (--sample-steps) instead of every step.")
        if self.fid_backend != "none":
            parts.append(self.fid_label + ".")
        if self.fid_classifier_label:
            parts.append(self.fid_classifier_label + ".")
        if self.classifier_accuracy is not None:
            parts.append(f"'class kept': share of images the classifier (test accuracy "
                         f"{100 * self.classifier_accuracy:.1f}%) assigns to the clean image's label.")
        if self.protocol == "paper":
            parts.append("Protocol paper (the authors' test scripts): the test split except its first image"
                         + (", each enlarged 1.12x and centre-cropped" if self.enlarged else "")
                         + "; RMSE = sqrt of the mean squared error over all pixels, SSIM averaged per image, "
                         "PSNR from the global RMSE, all on [0, 1] values without clamping.")
            notes = self.row_notes()
            if notes:
                parts.append(notes)
        else:
            parts.append("Protocol colddiff: SSIM, RMSE and PSNR on images in [0, 1], averaged per image.")
        return " ".join(parts)

    def row_notes(self) -> str:
        """Which row stands for which of the paper's rows, where the authors compute them differently."""
        methods = [r["method"] for r in self.rows]
        out = []
        if "first-update" in methods:
            out.append("the authors' 'degraded' row is the image after Algorithm 2's first update, x_{T-1}, "
                       "not x_T (our 'Degraded' row)")
        if "last-prediction" in methods:
            out.append("the authors' 'sampled' row is the last network prediction R(x_1, 1), not Algorithm "
                       "2's x_0 (our 'Algorithm 2' row)")
        return ("Rows: " + "; ".join(out) + ".") if out else ""

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


def eval_name(t: int, T: int, protocol: str = "colddiff") -> str:
    return ("restoration" if t == T else f"restoration-t{t}") + ("-paper" if protocol == "paper" else "")


def write_evaluation(ev: Evaluation, folder) -> Dict[str, Path]:
    """Markdown, CSV and JSON of the table in ``folder`` (RUN/evaluation), each written atomically; a file of
    those names that colddiff did not write is refused (:func:`colddiff.outputs.owned_files`)."""
    from .outputs import owned_files

    stem = eval_name(ev.t, ev.T, ev.protocol)
    with owned_files([Path(folder) / f"{stem}.{ext}" for ext in ("md", "csv", "json")], "evaluate", what="evaluate:"):
        return write_tables(folder, stem,
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
def held_out(run: Run, n: Optional[int], protocol: str = "colddiff"):
    """The held-out images and their labels (a fixed, documented choice: reproducible).

    ``colddiff``: the first ``n``.  ``paper``: the authors' test set, every image but index 0 (the
    first ``n`` of those when ``n`` is given), enlarged 1.12x and centre-cropped for the families whose
    test loader does that (blur, super-resolution)."""
    ds, split = run.held_out()
    if n is not None and n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    first = 1 if protocol == "paper" and len(ds) > 1 else 0
    last = len(ds) if n is None else min(len(ds), first + n)
    items = [ds[i] for i in range(first, last)]
    x0 = torch.stack([x for x, _ in items])
    labels = torch.tensor([int(y) for _, y in items], dtype=torch.long)
    if protocol == "paper" and authors_test(run.D.name).enlarge:
        from .data.augment import enlarge_center_crop

        x0 = enlarge_center_crop(x0)
    return x0, labels, split


def restore_paper_rows(run: Run, x0: torch.Tensor, t: int, batch_size: int = 100, seed: int = 0,
                       progress: bool = True, sampler: str = "algorithm2", schedule=None) -> Dict[str, torch.Tensor]:
    """The paper protocol's rows: x_t, R(x_t, t), Algorithm 2's x_0, and from the same Algorithm 2 run the
    image after its first update x_{t-1} and its last prediction R(x_1, 1) (as the authors' scripts
    record them; over a ``schedule`` t > t_1 > ... > t_K = 0: x_{t_1} and R(x_{t_{K-1}}, t_{K-1})).
    The per-trajectory randomness is drawn once from ``seed``, as in :func:`restore_batches`."""
    steps = check_schedule(sampler, schedule, run.T, t).for_t(t, run.T)
    ctx = run.D.context(x0, torch.Generator().manual_seed(seed))
    x_t = run.degrade(x0, t, ctx, batch_size=batch_size)
    first, last = [], []

    def record(s, x_s, x0_hat):  # called before each update: x_s at s = t_1 is the first update's result
        if s == steps[1] and s > 0:
            first.append(x_s.float().cpu())
        if s == steps[-2]:
            last.append(x0_hat.float().cpu())

    out = {"degraded": x_t,
           "direct": run.sample(x_t, t, ctx, sampler="direct", batch_size=batch_size, progress=progress,
                                desc=f"restore {run.name} t={t} (direct)"),
           sampler: run.sample(x_t, t, ctx, sampler=sampler, batch_size=batch_size, progress=progress,
                               desc=f"restore {run.name} t={t} ({sampler})", callback=record, schedule=schedule)}
    out["first-update"] = torch.cat(first) if first else out[sampler]   # t = 1: the update is the end
    out["last-prediction"] = torch.cat(last) if last else out["direct"]
    return out


# ---------------------------------------------------------------------------- restoring
def restore_batches(run: Run, x0: torch.Tensor, t: int, methods: Optional[Sequence[str]] = None,
                    batch_size: int = 100, seed: int = 0, progress: bool = True,
                    schedule=None) -> Dict[str, torch.Tensor]:
    """x_t = D(x0, t) and its restorations by each method (default: :func:`table_methods`), on the CPU;
    the iterative samplers visit the steps of ``schedule`` (every step by default; direct ignores it).

    The per-trajectory randomness (mask centres, noise, partners) is drawn once for all N
    images from ``seed``, so the table is reproducible and independent of the batch size.
    """
    methods = list(methods or table_methods(run.D))
    from .validate import whole

    ctx = run.D.context(x0, torch.Generator().manual_seed(whole(seed, "seed", lo=0, hi=2**32 - 1)))
    x_t = run.degrade(x0, t, ctx, batch_size=batch_size)
    return {m: x_t if m == "degraded" else
            run.sample(x_t, t, ctx, sampler=m, batch_size=batch_size, progress=progress,
                       desc=f"restore {run.name} t={t} ({m})", schedule=schedule)
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
def evaluate(run: Run, n: Optional[int] = None, t: Optional[int] = None, fid: str = "auto", classifier: bool = True,
             batch_size: int = 100, seed: int = 0, progress: bool = True,
             restored: Optional[Dict[str, torch.Tensor]] = None, protocol: Optional[str] = None,
             paper_sampler: str = "algorithm2", schedule=None) -> Evaluation:
    """The paper's Table 1 for ``run``: rows Degraded / Direct / Algorithm 1 / Algorithm 2 (/ DDIM on noise runs).

    ``protocol``: ``colddiff`` (``n`` defaults to 500), ``paper`` (``n`` defaults to the whole test split
    but its first image; rows as the authors computed them), or None: ``paper`` for paper presets.
    ``paper_sampler``: the iterative sampler of the paper protocol (``authors-shifted``: the update of the
    authors' snow and colourisation code).  ``schedule``: the steps the iterative samplers visit (a count such
    as 5, ``"5:quadratic"``, a list ending at 0; every step by default); direct reconstruction ignores it.

    ``fid``: ``classifier`` (offline; colddiff trains and caches a small CNN on the labelled
    data set), ``inception`` (the standard FID network; needs its weights file), ``none``, or
    ``auto`` (see :func:`colddiff.metrics.resolve_backend`).
    ``classifier``: also report the share of restorations the classifier assigns to the
    clean image's label (labelled data sets only).
    """
    start = time.perf_counter()
    t = check_t(t, run.T)
    protocol = check_protocol(protocol, run)
    paper = protocol == "paper"
    for m in ([paper_sampler] if paper else table_methods(run.D)):  # a bad or refused schedule: one line, up front
        if m in SAMPLERS:
            schedule = check_schedule(m, schedule, run.T, t)
    x0, labels, split = held_out(run, n if n is not None or paper else 500, protocol)
    labelled = bool((labels >= 0).all())
    fid = metrics.resolve_backend(fid, labelled)
    clf, extractor = extractors(run, fid, labelled, classifier, progress)
    if paper_sampler not in ("algorithm2", "authors-shifted"):
        raise ConfigError(f"the paper protocol samples with algorithm2 or authors-shifted, got {paper_sampler!r}")
    paper_row = dict(paper_methods(run.D, paper_sampler)) if paper else {"degraded": "degraded", "direct": "direct",
                                                            "algorithm2": "sampled"}
    methods = [m for m, _ in paper_methods(run.D, paper_sampler)] if paper else table_methods(run.D)
    if restored is None:
        restored = (restore_paper_rows(run, x0, t, batch_size=batch_size, seed=seed, progress=progress,
                                       sampler=paper_sampler, schedule=schedule) if paper
                    else restore_batches(run, x0, t, batch_size=batch_size, seed=seed, progress=progress,
                                         schedule=schedule))
    ref_feats = extractor.features(x0) if extractor is not None else None
    # Inception FID is the paper's number; on labelled sets the offline classifier FID stays beside it
    clf_ref = clf.features(x0) if clf is not None and fid == "inception" else None
    rows, fid_info, clf_info = [], None, None
    for m in methods:
        y = restored[m]
        if paper:  # the authors' numbers: unclamped, RMSE over all pixels at once
            r = metrics.rmse_global(y, x0)
            row: Dict[str, Any] = {"method": m, "ssim": float(metrics.ssim(y, x0, clamp=False).mean()), "rmse": r,
                                   "psnr": -20 * math.log10(r) if r > 0 else float("inf")}
        else:
            row = {"method": m, "ssim": float(metrics.ssim(y, x0).mean()), "rmse": float(metrics.rmse(y, x0).mean()),
                   "psnr": _mean_finite(metrics.psnr(y, x0))}
        row["paper_row"] = paper_row.get(m, "")
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
        fid_classifier_label=clf_info.label() if clf_info else "", protocol=protocol,
        enlarged=bool(paper and authors_test(run.D.name).enlarge), sample_steps=str(parse_schedule(schedule)))


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

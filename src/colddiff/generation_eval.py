"""Measuring generated images: class histogram, entropy, coverage, near-blank share, confidence, FID.

``evaluate_generation(run)`` generates N images per setting (by default Algorithm 2 with and
without start noise, plus DDIM where it applies), keeps them in RUN/generation/<setting>/,
and measures them and the real held-out images the same way; the table is written as
RUN/evaluation/generation.{md,csv,json} with a class-histogram plot.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from . import metrics
from .errors import ConfigError, InputError
from .evaluation import extractors, held_out
from .fileio import atomic_path
from .generation import generate, generation_defaults, generation_stats, write_generation
from .runs import Run
from .samplers import DEFAULT, SAMPLERS, check_schedule, get_sampler, sampler_names
from .tables import Record, markdown_table, text_table, write_tables
from .validate import number, record, whole

__all__ = ["GenerationEvaluation", "setting_name", "generation_settings", "evaluate_generation", "write_generation_evaluation",
           "read_generation_evaluation", "histogram_figure"]


@dataclass
class GenerationEvaluation(Record):
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

    def headers(self) -> List[str]:
        h = ["Images", "class entropy ↑", "classes (≥3%)", "near-blank ↓", "confidence"]
        if self.fid_backend != "none":
            h.insert(1, f"FID ({self.fid_backend})" + ("*" if self.fid_small else ""))
        return h

    def cells(self, r: Dict[str, Any]) -> List[str]:
        out = [r["setting"]]
        if self.fid_backend != "none":
            out.append("–" if r.get("fid") is None else f"{r['fid']:.2f}")
        out += [f"{r['entropy']:.3f}", f"{r.get('classes_covered_3pct', '?')} of {self.num_classes}",
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
                    "classes_covered_3pct", "sample_seconds",
                    "near_blank_share", "mean_confidence", "n", "fid_backend"]
                   + [f"class_{k}" for k in range(self.num_classes)])
        for r in self.rows:
            w.writerow([r["setting"], r.get("sampler", ""), r.get("noise", ""),
                        "" if r.get("fid") is None else f"{r['fid']:.6g}", f"{r['entropy']:.6g}",
                        r["classes_covered"], r["classes_covered_1pct"], r.get("classes_covered_3pct", ""),
                        r.get("sample_seconds", ""), f"{r['near_blank_share']:.6g}",
                        f"{r['mean_confidence']:.6g}", r["n"], self.fid_backend] + list(r["histogram"]))
        return buf.getvalue()

    def text(self) -> str:
        return text_table(self.headers(), [self.cells(r) for r in self.rows]) + "\n" + self.caption()


def setting_name(sampler: str, noise: float = 0.0, delta: float = 0.0) -> str:
    """A row label such as "Algorithm 2, noise 0.002" or "Stochastic (IHD), δ 0.0125"."""
    fn = get_sampler(sampler)
    parts = [fn.label]
    if "delta" in fn.options:
        parts.append(f"δ {delta:g}")
    parts.append(f"noise {noise:g}" if noise > 0 else ("no noise" if sampler == DEFAULT else ""))
    return ", ".join(p for p in parts if p)


def generation_settings(run: Run, noise: float) -> List[Dict[str, Any]]:
    """The settings compared by default: Algorithm 2 without and with start noise; the run's own
    ``[generation]`` setting where it differs (e.g. the stochastic sampler); DDIM where it applies."""
    settings = [{"setting": setting_name(DEFAULT), "sampler": DEFAULT, "noise": 0.0}]
    if noise > 0:
        settings.append({"setting": setting_name(DEFAULT, noise), "sampler": DEFAULT, "noise": noise})
    baselines = [name for name in SAMPLERS if SAMPLERS[name].generation_baseline]
    own = generation_defaults(run)
    if own["sampler"] not in [DEFAULT] + baselines or own["delta"] > 0:
        settings.append({"setting": setting_name(own["sampler"], own["noise"], own["delta"]),
                         "sampler": own["sampler"], "noise": own["noise"], "delta": own["delta"]})
    applies = sampler_names(run.D)
    settings += [{"setting": SAMPLERS[name].label, "sampler": name, "noise": 0.0} for name in baselines if name in applies]
    return settings


def evaluate_generation(run: Run, n: int = 500, noise: float = 0.002, fid: str = "auto", seed: int = 0,
                        batch_size: int = 256, progress: bool = True,
                        settings: Optional[List[Dict[str, Any]]] = None, schedule=None) -> GenerationEvaluation:
    """Generate ``n`` images per setting and measure them: class histogram, entropy, coverage,
    near-blank share, classifier confidence and FID against the held-out images.
    ``schedule``: the steps every setting's sampler visits from T (every step by default; a setting's own
    ``"schedule"`` key wins), recorded per row as ``sample_steps``.

    The generated images are kept in RUN/generation/<setting>/ (PNGs, grid, generation.json),
    and the real held-out images are measured the same way as a reference row.
    """
    start = time.perf_counter()
    whole(n, "--gen-n", lo=1)
    number(noise, "--noise", 0)  # a negative noise once dropped its row from the table without a word
    c = run.cfg.data
    settings = [dict(s) for s in (settings or generation_settings(run, noise))]
    for s in settings:  # a bad or refused schedule: one line before any image is generated
        s["schedule"] = check_schedule(s["sampler"], s.get("schedule", schedule), run.T, run.T,
                                       {"delta": s.get("delta", 0.0)})
        if not s["schedule"].full:
            s["setting"] = f"{s['setting']}, steps {s['schedule']}"
    x_ref, labels, split = held_out(run, n)
    if not bool((labels >= 0).all()):
        raise ConfigError(f"measuring generation needs a labelled data set (class histogram) and {c.name} has no "
                          "labels; look at the images of `colddiff generate` instead")
    fid = metrics.resolve_backend(fid, True)
    clf, extractor = extractors(run, fid, True, True, progress)
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

    for s in settings:
        t0 = time.perf_counter()
        sched = s.pop("schedule")
        images = generate(run, n, sampler=s["sampler"], noise=s["noise"], seed=seed, batch_size=batch_size,
                          progress=progress, delta=s.get("delta", 0.0), k=s.get("k"), schedule=sched)
        sample_s = time.perf_counter() - t0
        s["sample_steps"] = str(sched)
        name = (f"{s['sampler']}-noise{s['noise']:g}" + (f"-delta{s['delta']:g}" if s.get("delta") else "")
                + ("" if sched.full else "-steps" + str(sched).replace(",", "_").replace(":", "-")))
        folder = run.folder / "generation" / s.get("folder", name)
        write_generation(images, folder, {**s, "seed": seed, "run": str(run.folder), "step": run.step})
        row = measure(s, images)
        row["folder"] = str(folder.relative_to(run.folder))  # relative to the run: it moves with the folder
        row["sample_seconds"] = round(sample_s, 2)
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
    """RUN/evaluation/generation.{md,csv,json} and the class-histogram plot generation-histogram.png
    (files of those names that colddiff did not write are refused: :func:`colddiff.outputs.owned_files`)."""
    from .outputs import owned_files

    with owned_files([Path(folder) / f"generation.{ext}" for ext in ("md", "csv", "json")]
                     + [Path(folder) / "generation-histogram.png"], "evaluate", what="evaluate --generation:"):
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
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"evaluation file {path} is unreadable ({e}); rerun `colddiff evaluate --generation`") from None
    d = record(d, "generation evaluation", path, required=("n", "rows", "fid_backend", "num_classes"),
               hint="rerun `colddiff evaluate --generation`")
    for i, r in enumerate(d["rows"]):
        for k in ("setting", "entropy", "classes_covered_1pct", "near_blank_share", "mean_confidence", "histogram"):
            if k not in r:
                raise InputError(f"{path}: rows[{i}] lacks {k!r}; rerun `colddiff evaluate --generation`")
    try:
        return GenerationEvaluation.from_dict(d)
    except (ValueError, TypeError) as e:
        raise InputError(f"evaluation file {path} is unreadable ({e}); rerun `colddiff evaluate --generation`") from None

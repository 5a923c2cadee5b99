"""The HTML report of a run.

``write_report(run)`` puts the figures (:mod:`colddiff.figures`, PNG in RUN/figures/), the
config and the evaluation table(s) into one self-contained ``RUN/report.html`` (images
embedded as data URIs, no server, no network).
"""
from __future__ import annotations

import base64
import html
import json
import logging
import string
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .errors import InputError
from .evaluation import Evaluation
from .fileio import atomic_path
from .generation_eval import read_generation_evaluation
from .runs import Run
from .validate import record

log = logging.getLogger("colddiff.report")


# ---------------------------------------------------------------------------- HTML
CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
     padding:0 1em;color:#1d1d1f;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
.sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.6em 0} th,td{padding:.3em .8em;border-bottom:1px solid #e3e3e3}
th{background:#f5f5f7;text-align:right} th:first-child,td:first-child{text-align:left} td{text-align:right;
font-variant-numeric:tabular-nums} caption{caption-side:bottom;text-align:left;color:#555;font-size:.9em;
padding-top:.4em;max-width:900px}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #ddd;image-rendering:pixelated}
figcaption{color:#555;font-size:.9em} pre{background:#f5f5f7;padding:.8em;overflow:auto;font-size:.85em}
.warn{color:#8a4b00} .missing{color:#a00}
"""

# Marks images the browser could not decode, and counts those it could (a test reads it).
CHECK_JS = """
window.addEventListener('load', function () {
  var ok = 0, bad = 0;
  document.querySelectorAll('img').forEach(function (im) {
    if (im.complete && im.naturalWidth > 0) { ok++; } else { bad++; im.classList.add('missing');
      im.insertAdjacentHTML('afterend', '<p class="missing">image could not be shown</p>'); }
  });
  document.body.setAttribute('data-images-ok', String(ok));
  document.body.setAttribute('data-images-missing', String(bad));
});
"""


class Markup(str):
    """HTML that colddiff itself built (a table, a figure): inserted by :func:`fill` as it is."""


class _Escaping(string.Formatter):
    def format_field(self, value, format_spec):
        if isinstance(value, Markup):
            return str(value)
        return html.escape(super().format_field(value, format_spec), quote=True)


def fill(template: str, **values) -> Markup:
    """``template.format(**values)`` with every value formatted, then HTML-escaped.

    The one way values reach the report: numbers, names and paths read from a run folder
    (config, evaluation and generation JSON, train_summary.json) are untrusted, and a crafted
    ``"n": "<script>..."`` must show up as text, not run.  Only :class:`Markup` passes unescaped.
    """
    return Markup(_Escaping().format(template, **values))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure(path: Path, caption: str, alt: str) -> Markup:
    return fill('<figure><img src="{uri}" alt="{alt}"><figcaption>{caption}</figcaption></figure>',
                uri=_data_uri(path), alt=alt, caption=caption)


def table_html(css_class: str, head: Sequence[str], body: Sequence[Sequence[str]], caption: str) -> Markup:
    cells = lambda row, tag: Markup("".join(fill(f"<{tag}>{{c}}</{tag}>", c=c) for c in row))  # noqa: E731
    rows = Markup("".join(fill("<tr>{r}</tr>", r=cells(r, "td")) for r in body))
    return fill('<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
                "<caption>{caption}</caption></table>", cls=css_class, head=cells(head, "th"), rows=rows,
                caption=caption)


def evaluation_html(ev: Evaluation) -> Markup:
    note = ""
    if ev.fid_small:
        note = fill('<p class="warn">* FID on {n} images, fewer than 2,048: biased upward; compare it only with '
                    "FIDs on the same number of images and the same back end.</p>", n=ev.n)
    return Markup(table_html("evaluation", ev.headers(), [ev.cells(r) for r in ev.rows], ev.caption()) + note)


Section = Callable[[Run], str]


def write_report(run: Run, figures: Dict[str, Path], evaluations: Sequence[Evaluation],
                 extra_sections: Sequence[str] = (), path=None, fig_t: Optional[int] = None) -> Path:
    """RUN/report.html: config, evaluation table(s), figures, loss curve; one self-contained file."""
    from .outputs import check_files, owned_files

    path = Path(path) if path else run.folder / "report.html"
    check_files([path], "report", what="report:")  # never over a file colddiff did not write
    cfg = run.cfg
    summary, summary_note = read_summary(run.folder / "train_summary.json")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        fill("<title>colddiff report: {name}</title>", name=run.name),
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<style>{CSS}</style></head><body>",
        fill("<h1>colddiff report: {name}</h1>", name=run.name),
        fill("<p class='sub'>{d}</p>", d=cfg.description or ""),
        "<p>",
        fill("Data <b>{data}</b> ({size}px, {ch} channel(s)); degradation <b>{D}</b>; checkpoint <code>{ck}</code> "
             "at step {step:,}", data=cfg.data.name, size=cfg.data.image_size, ch=cfg.data.channels, D=repr(run.D),
             ck=run.checkpoint.name, step=run.step)
        + (fill(" of {steps:,}", steps=cfg.train.steps) if cfg.train.steps else "")
        + (fill(", trained in {m:.1f} min on {dev}", m=summary["elapsed_s"] / 60, dev=summary.get("device"))
           if summary.get("elapsed_s") else "")
        + fill("; {w} weights.</p>", w="EMA" if run.ema else "raw"),
    ]
    if summary_note:
        parts.append(fill("<p class='warn'>{note}</p>", note=summary_note))
    parts.append("<h2>Evaluation</h2>")
    if evaluations:
        for ev in evaluations:
            if ev.t != ev.T:
                parts.append(fill("<h3>from t={t}</h3>", t=ev.t))
            parts.append(evaluation_html(ev))
    else:
        parts.append(fill("<p class='warn'>No evaluation yet: run <code>colddiff evaluate {folder}</code>, then this "
                          "report again.</p>", folder=run.folder))
    fig_t = fig_t or run.T
    captions = {
        "restoration": (f"Restoration from t={fig_t} (paper Figs. 2–3): clean, degraded, direct reconstruction "
                        "R(x_t, t), Algorithm 1 and Algorithm 2.", "restoration figure"),
        "algorithm2": (f"Algorithm 2 from t={fig_t}: each image's upper row is the state x_s, the lower row the "
                       "network's estimate x0_hat = R(x_s, s); the last column is the result and the clean image.",
                       "Algorithm 2 trajectory"),
        "degradation": ("The run's degradation D(x0, t) at evenly spaced t.", "degradation trajectory"),
        "loss": ("Training loss (L1 between R(D(x0, t), t) and x0, Eq. 1).", "loss curve"),
    }
    parts.append("<h2>Figures</h2>")
    for key in ("restoration", "algorithm2", "degradation", "loss"):
        if key in figures:
            cap, alt = captions[key]
            parts.append(_figure(figures[key], cap, alt))
    parts.extend(extra_sections)
    parts.append("<h2>Configuration</h2>")
    parts.append(fill("<pre>{toml}</pre>", toml=cfg.to_toml()))
    parts.append(f"<script>{CHECK_JS}</script></body></html>")
    with owned_files([path], "report", what="report:"), atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path


def read_summary(path: Path):
    """(train_summary.json as a dict, "") or ({}, a note saying why it is left out): a damaged or
    crafted summary costs the report one line, never the report."""
    if not path.exists():
        return {}, ""
    try:
        return record(json.loads(path.read_text()), "train summary", path), ""
    except (OSError, ValueError) as e:  # InputError is a ValueError
        log.warning("%s", e)
        return {}, f"{path.name} is unreadable and was left out ({e})"


def figure_html(path: Path, caption: str, alt: str) -> str:
    """An embedded figure, for sections added by other modules (generation)."""
    if not Path(path).exists():
        raise InputError(f"figure missing: {path}")
    return _figure(Path(path), caption, alt)


def generation_section(run_folder) -> List[str]:
    """The report's generation part, from `colddiff evaluate --generation` (empty when not run)."""
    folder = Path(run_folder) / "evaluation"
    path = folder / "generation.json"
    if not path.exists():
        return []
    ev = read_generation_evaluation(path)
    parts = ["<h2>Generation</h2>",
             table_html("generation", ev.headers(), [ev.cells(r) for r in ev.rows], ev.caption())]
    if ev.fid_small:
        parts.append(fill('<p class="warn">* FID on {n} images, fewer than 2,048: biased upward.</p>', n=ev.n))
    hist = folder / "generation-histogram.png"
    if hist.exists():
        parts.append(_figure(hist, "Share of generated images per predicted class, per setting.", "class histogram"))
    for r in ev.rows:
        if not r.get("folder"):
            continue
        grid = generated_folder(run_folder, r["folder"]) / "grid.png"
        if grid.exists():
            parts.append(_figure(grid, f"Generated from scratch: {r['setting']} (first images).",
                                 f"generated images, {r['setting']}"))
        else:
            log.warning("generated images of %r not found: %s", r["setting"], grid)
            parts.append(fill("<p class='warn'>The generated images of “{s}” are not in this run folder ({grid} is "
                              "missing); rerun <code>colddiff evaluate --generation</code> to make them again.</p>",
                              s=r["setting"], grid=grid))
    return parts


def generated_folder(run_folder, stored: str) -> Path:
    """Where the images of a generation row are: RUN/generation/<name>, whatever path was stored.

    Older files hold the folder as it was spelt when evaluated (relative to the directory colddiff
    ran in); resolving that against today's directory would show nothing for a moved or copied
    run, or another run's images.  The images always live in the run's own generation folder.
    """
    return Path(run_folder) / "generation" / Path(stored).name

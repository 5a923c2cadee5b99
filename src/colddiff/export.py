"""Shareable model folders in the Hugging Face Hub layout, and loading them back (local or ``hf://``).

A run folder is made to continue training: its checkpoints carry Adam's moments, RNG states
and logs that nobody downloading a model wants.  ``export_run(run, out)`` writes what a user
needs to *use* the model, in the Hub's convention for a model repository:

  * ``model.safetensors`` – the EMA weights only (the weights evaluation uses), with the run
    configuration in the file's metadata, so the file alone is loadable too;
  * ``config.json``       – the full run configuration (degradation included), the step and the
    colddiff version; ``config.toml`` is the same configuration as ``colddiff train --config`` reads;
  * ``README.md``         – the model card: front matter (library, licence, data set, tags), the
    evaluation tables, a sample grid (``samples.png``) and the command that reproduces the run;
  * ``evaluation/`` and ``generation/gmm-k*.json`` copied from the run when present, so
    ``colddiff report`` shows the tables and blur runs generate without the training set.

``load_run`` (:mod:`colddiff.runs`) accepts such a folder, its ``model.safetensors``
(read by :mod:`colddiff.checkpoint`) and ``hf://owner/name[@revision]`` (:mod:`colddiff.hub`,
which also pushes a folder to the Hub).
The weights are stored bit for bit, so an exported model gives exactly the run's outputs.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from . import __version__, data
from .checkpoint import CONFIG, MODEL_FORMAT as FORMAT, WEIGHTS
from .errors import ColddiffError
from .evaluation import find_evaluations, held_out, restore_batches
from .figures import restoration_figure
from .fileio import atomic_path

log = logging.getLogger("colddiff.export")

CONFIG_TOML, CARD, SAMPLES = "config.toml", "README.md", "samples.png"


# ---------------------------------------------------------------------------- writing
def _dump_json(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


# What restoring each family's degradation is called, as a Hugging Face Hub tag (a model card's task); a family
# without an entry (animorph, a plug-in) is tagged with the Hub's general "image-to-image".
HUB_TASKS = {"blur": "deblurring", "mask": "inpainting", "resolution": "super-resolution", "desaturate": "colorization",
             "snow": "desnowing", "snow-c": "desnowing", "noise": "denoising"}


def hub_task(family: str) -> str:
    """The Hub task tag of a degradation family."""
    return HUB_TASKS.get(family, "image-to-image")


def card_metadata(run, licence: Optional[str] = None) -> Dict[str, Any]:
    """The model card's front matter: library, licence, data set, tags, task.

    The weights are derived from the images, so the card states the data's Hub licence (the data
    source's ``hub_licence``; "other" when it states none or the data is a folder) unless ``licence``
    says otherwise; the task tag is the degradation family's (``HUB_TASKS``)."""
    source = data.SOURCES.get(run.cfg.data.name)
    meta: Dict[str, Any] = {"library_name": "colddiff",
                            "license": licence or (source.hub_licence if source else "") or "other"}
    if source is not None and source.hub_id:
        meta["datasets"] = [source.hub_id]
    meta["tags"] = ["cold-diffusion", "colddiff", "image-restoration", f"degradation-{run.cfg.degradation.name}",
                    hub_task(run.cfg.degradation.name), "pytorch", "safetensors"]
    meta["pipeline_tag"] = "image-to-image"
    return meta


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._/-]*")
_NUMBER = re.compile(r"[0-9._eE+-]+|\.?(inf|nan)", re.I)
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def yaml_text(v: Any) -> str:
    """``v`` as a YAML scalar: plain when it is a simple identifier (``cc-by-sa-3.0``), else double-quoted
    with every quote, backslash and control character escaped (a newline or ``---`` cannot end the front matter)."""
    text = str(v)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS and not _NUMBER.fullmatch(text):
        return text
    out = ['"']
    for ch in str(v):
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20 or 0x7F <= o <= 0x9F or ch in "\u2028\u2029\ufeff" or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _front_matter(meta: Dict[str, Any]) -> str:
    lines = ["---"]
    for k, v in meta.items():
        if isinstance(v, list):
            lines.append(f"{k}:")
            lines += [f"- {yaml_text(item)}" for item in v]
        else:
            lines.append(f"{k}: {yaml_text(v)}")
    return "\n".join(lines + ["---", ""])


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|~<>&\"'")


def md_text(v: Any) -> str:
    """``v`` as inert Markdown text: HTML escaped, Markdown punctuation backslash-escaped, one line."""
    import html

    out = []
    for ch in " ".join(str(v).split()):
        if ch in "<>&\"'":
            out.append(html.escape(ch))
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def md_code(v: Any) -> str:
    """``v`` as inline code that nothing in it can close: an HTML <code> element around inert text
    (Markdown is still read inside inline HTML, so its punctuation is escaped too)."""
    return f"<code>{md_text(v)}</code>"


def _shell_word(v: Any) -> str:
    """A name shown inside a fenced shell block: letters, digits and ``._-`` only (nothing can close the fence)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(v)).strip("-") or "model"


def _table_text(text: str) -> str:
    """Markdown tables built from values of the run's files: HTML and links made inert, the | layout kept."""
    import html

    return "\n".join(html.escape(line, quote=False).replace("[", "\\[").replace("]", "\\]").replace("`", "\\`")
                     for line in text.splitlines())


def source_url() -> Optional[str]:
    """The colddiff repository's URL from the installed package's metadata (``[project.urls] Source``), if any."""
    try:
        from importlib.metadata import metadata

        for entry in metadata("colddiff").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("source", "repository", "homepage") and url.strip():
                return url.strip()
    except Exception:  # not installed (a source checkout on PYTHONPATH): no metadata
        pass
    return None


def install_line() -> str:
    """How to install colddiff today: from its git repository (it is not on PyPI yet)."""
    url = source_url()
    if url:
        return f"pip install 'colddiff[demo] @ git+{url}'   # [demo]: the web page and hf:// models"
    return ("pip install 'colddiff[demo] @ git+URL_OF_THE_COLDDIFF_REPOSITORY'   # not on PyPI yet; "
            "[demo]: the web page and hf:// models")


def model_card(run, meta: Dict[str, Any], tables: str, has_samples: bool, sample_t: int,
               repo_id: Optional[str] = None) -> str:
    """README.md of an exported model: what it is, how to use it, how well it does, how to reproduce it."""
    cfg = run.cfg
    name = repo_id or run.name
    where = f"hf://{repo_id}" if repo_id else "MODEL_FOLDER"
    params = sum(p.numel() for p in run.model.parameters())
    deg = repr(run.D)
    parts = [_front_matter(meta),
             f"# colddiff: {md_text(name)}", "",
             f"A Cold Diffusion restorer (Bansal et al., 2022, *Cold Diffusion: Inverting Arbitrary Image Transforms "
             f"Without Noise*) trained with colddiff {__version__}: the U-Net "
             f"R(x_t, t) ≈ x0 ({params:,} parameters) for the degradation {md_code(deg)} on {md_code(cfg.data.name)} "
             f"({cfg.data.image_size}px, {cfg.data.channels} channel(s)), {run.step:,} training steps, "
             f"{'EMA' if run.ema else 'raw'} weights.", ""]
    if cfg.description:
        parts += [f"Preset {md_code(cfg.preset)}: {md_text(cfg.description)}", ""]
    parts += ["## Use", "", "```bash",
              install_line(),
              f"colddiff restore {where} --input blurry.png --t auto --out restored/",
              f"colddiff evaluate {where} --n 200",
              f"colddiff demo {where}          # a local web page: degrade, restore, generate", "```", "",
              "```python", "from colddiff.runs import load_run", f"run = load_run({where!r})",
              "x0_hat = run.sample(x_t, t, sampler=\"algorithm2\")", "```", ""]
    parts += ["## Evaluation", ""]
    parts += [_table_text(tables.strip()) if tables.strip() else
              "No evaluation was run before export; `colddiff evaluate` on this folder writes one.", ""]
    if has_samples:
        parts += ["## Samples", "",
                  f"Held-out images restored from t = {sample_t}: clean | degraded | direct R(x_t, t) | "
                  "Algorithm 1 | Algorithm 2.", "", f"![samples]({SAMPLES})", ""]
    parts += ["## Reproduce", "",
              f"`{CONFIG_TOML}` is the run's full configuration; training it again with the same seed retraces the "
              "run (bit for bit only on the same machine and software; elsewhere the numbers come out close, not "
              "identical):", "", "```bash",
              f"colddiff train --config {CONFIG_TOML} --out "
              f"runs/{_shell_word(cfg.preset if cfg.preset != 'custom' else 'model')}",
              "```", ""]
    if run.step < cfg.train.steps:
        parts += [f"(this export holds step {run.step:,} of the configured {cfg.train.steps:,}: training was "
                  "stopped early)", ""]
    from .presets import PRESETS

    if cfg.preset in PRESETS:
        parts += [f"(the preset: {md_code('colddiff presets --show ' + cfg.preset)}; this run may "
                  "override some of its keys)", ""]
    parts += ["## Files", "",
              f"- `{WEIGHTS}`: the weights (safetensors; the configuration is in its metadata too)",
              f"- `{CONFIG}`: configuration, degradation, step and colddiff version; `{CONFIG_TOML}`: the same as TOML",
              "- `evaluation/`: the tables as Markdown, CSV and JSON (when the run was evaluated)", ""]
    return "\n".join(parts)


def _tables_markdown(folder: Path) -> str:
    """The run's evaluation tables (restoration at each t, generation) as Markdown."""
    out = []
    if (folder / "evaluation").is_symlink():  # never read (or show) files from outside the run
        return ""
    for ev in find_evaluations(folder):
        out += [f"### Restoration from t = {ev.t} (of T = {ev.T}), {ev.n} held-out images", "",
                ev.markdown().strip(), ""]
    gen = folder / "evaluation" / "generation.md"
    if gen.is_file() and not gen.is_symlink() and not gen.parent.is_symlink():
        out += ["### Generation from t = T", "", gen.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(out)


def _copy_small_files(src: Path, out: Path) -> list:
    """evaluation/* and generation/gmm-k*.json from the run (tables and GMM fits: kilobytes).

    Only regular files that really lie inside the run are copied: a symbolic link (to /etc/passwd,
    to ~/.bashrc, or a linked evaluation/ folder) is skipped with a warning, never followed."""
    copied = []
    root = src.resolve()
    patterns = [("evaluation", "*.json"), ("evaluation", "*.md"), ("evaluation", "*.csv"), ("evaluation", "*.png"),
                ("generation", "gmm-k*.json")]
    for sub, pat in patterns:
        folder = src / sub
        if folder.is_symlink():
            log.warning("%s is a symbolic link: not exported", folder)
            continue
        for p in sorted(folder.glob(pat)):
            if p.is_symlink() or not p.is_file() or root not in p.resolve().parents:
                log.warning("%s is not a regular file inside the run (a symbolic link?): not exported", p)
                continue
            dst = out / sub / p.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst) as tmp:
                shutil.copyfile(p, tmp, follow_symlinks=False)
            copied.append(dst)
    return copied


def export_run(run, out, licence: Optional[str] = None, repo_id: Optional[str] = None, n_samples: int = 8,
               seed: int = 0, progress: bool = False) -> Dict[str, Any]:
    """Write ``run`` (a loaded :class:`colddiff.runs.Run`) as a shareable model folder ``out``.

    Returns {"folder", "files", "bytes", "samples"}.  The weights are ``run.model``'s as loaded
    (EMA by default), copied bit for bit.  Every file is written atomically; an existing export
    in ``out`` is replaced as a whole, in one step (:func:`colddiff.outputs.write_result`): a kill leaves the
    earlier export or this one.  ``out`` must be new, empty or an earlier export, outside the run.
    """
    from .outputs import claim, write_result

    out = claim(out, "export", inputs=[run.folder])  # before the weights are copied

    def write(stage):
        has_samples, copied = _write_export(run, stage.path, licence, repo_id, n_samples, seed, progress)
        return has_samples, [stage.final(p) for p in copied]

    done = write_result(out, "export", write)
    has_samples, copied = done.value
    files = [p for p in done.files if not p.name.startswith(".")]
    return {"folder": done.folder, "files": files, "bytes": sum(p.stat().st_size for p in files),
            "samples": has_samples, "copied": copied}


def _write_export(run, out: Path, licence, repo_id, n_samples, seed, progress):
    from safetensors.torch import save_file

    state = {"step": int(run.step), "weights": "ema" if run.ema else "raw", "source_checkpoint": run.checkpoint.name,
             "colddiff_version": __version__}
    weights = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    with atomic_path(out / WEIGHTS, fsync=True) as tmp:
        save_file(weights, tmp, metadata={"format": FORMAT, "config": json.dumps(run.cfg.to_dict(), sort_keys=True),
                                          "state": json.dumps(state, sort_keys=True)})
    _dump_json({"format": FORMAT, "library_name": "colddiff", **state, "degradation_repr": repr(run.D),
                "config": run.cfg.to_dict()}, out / CONFIG)
    _write_text(run.cfg.to_toml(), out / CONFIG_TOML)
    copied = _copy_small_files(Path(run.folder), out)

    # the sample grid: restoration of held-out images (skipped, with a note, when the data set is absent)
    evs_t = _first_eval_t(Path(run.folder))
    sample_t = evs_t or run.T
    has_samples = False
    try:
        x0, _, _ = held_out(run, n_samples)
        restored = restore_batches(run, x0, sample_t, seed=seed, progress=progress)
        restoration_figure(x0, restored, sample_t, out / SAMPLES, n=n_samples)
        has_samples = True
    except ColddiffError as e:
        log.warning("no sample grid in the model card: %s", e)
    meta = card_metadata(run, licence)
    _write_text(model_card(run, meta, _tables_markdown(Path(run.folder)), has_samples, sample_t, repo_id),
                out / CARD)
    return has_samples, copied


def _first_eval_t(folder: Path) -> Optional[int]:
    if (folder / "evaluation").is_symlink():
        return None
    try:
        evs = find_evaluations(folder)
    except ColddiffError:
        return None
    return evs[0].t if evs else None


__all__ = ["export_run", "card_metadata", "model_card"]

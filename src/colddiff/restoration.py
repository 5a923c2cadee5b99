"""Restoring images that are already degraded: the user's own files, severity unknown.

``restore(run, y, t)`` restores a batch of degraded images from per-image steps ``t``;
``estimate_t`` picks the severity when it is not known: the t whose degradation of the
restoration best reproduces the input, argmin_t || D(R(y, t), t) − y ||.  ``restore_files``
is the whole pipeline behind ``colddiff restore``: read each file once, estimate t, restore,
write one PNG per input and sampler, a side-by-side sheet and ``restore.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from .errors import ConfigError, InputError
from .fileio import atomic_path
from .images import atomic_save, list_images, make_grid, read_image, save_image
from .runs import Run, check_t, progress_bar
from .samplers import get_sampler

__all__ = ["estimate_t", "restore", "check_restorable", "UserImages", "load_user_images", "output_names", "restore_files"]


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
    ts = [check_t(t, run.T, "a candidate t") for t in (candidates or range(1, D.T + 1))]
    y = y.float().cpu()
    best_err = torch.full((y.shape[0],), float("inf"))
    best_t = torch.zeros(y.shape[0], dtype=torch.long)
    bar = progress_bar(len(ts), "estimate t", progress)
    try:
        for t in ts:
            x0_hat = run.sample(y, t, sampler="direct", batch_size=batch_size)
            err = (run.degrade(x0_hat, t, batch_size=batch_size) - y).pow(2).flatten(1).mean(1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_t = torch.where(better, torch.tensor(t), best_t)
            bar.update(1)
    finally:
        bar.close()
    return best_t


def check_restorable(run: Run, sampler: str) -> None:
    """A one-line ConfigError when ``sampler`` cannot restore a user's images degraded by the run's D."""
    fn = get_sampler(sampler)
    fn.check(run.D)
    if fn.needs_context and not run.D.deterministic:
        raise ConfigError(f"{run.D.name} is random per image (its mask position / noise / partner is unknown for "
                          f"your images), so {sampler} cannot re-apply it; restore with --sampler direct")


def restore(run: Run, y: torch.Tensor, t, sampler: str = "algorithm2", batch_size: int = 64,
            progress: bool = True) -> torch.Tensor:
    """Restore already-degraded images ``y`` (N, C, H, W) in [-1, 1] from per-image steps ``t``."""
    check_restorable(run, sampler)
    return run.sample(y, t, None, sampler=sampler, batch_size=batch_size, progress=progress,
                      desc=f"restore ({sampler})")


# ---------------------------------------------------------------------------- the user's files
@dataclass
class UserImages:
    """The user's images at the run's size and channels, with their files and what was changed."""

    images: torch.Tensor                 # (N, C, H, W) in [-1, 1]
    files: List[Path]
    root: Path                           # the input folder (or the file's folder)
    converted: List[str] = field(default_factory=list)   # files converted to the run's channels
    resized: List[str] = field(default_factory=list)     # files resized to the run's size

    def warnings(self, size: int, channels: int) -> List[str]:
        out = []
        if self.converted:
            out.append(f"converted {len(self.converted)} image(s) to {channels} channel(s) to match the run "
                       f"({_some(self.converted)})")
        if self.resized:
            out.append(f"resized {len(self.resized)} image(s) to {size}×{size}; restoration quality depends on the "
                       "degradation matching the training one")
        return out


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def load_user_images(spec, size: int, channels: int, resize: bool = False) -> UserImages:
    """An image file or a folder of images (recursively), each file decoded once.

    A file of another size is a one-line error unless ``resize`` (bicubic, noted in ``resized``);
    other channel counts are converted (noted in ``converted``).
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"input not found: {path}; give an image file or a folder of images")
    files = [path] if path.is_file() else list_images(path)
    if not files:
        raise InputError(f"no images found in folder {path}")
    out = UserImages(images=torch.empty(0), files=files, root=path.parent if path.is_file() else path)
    imgs = []
    for f in files:
        info: Dict[str, Any] = {}
        x = read_image(f, channels=channels, size=(size, size) if resize else None, info=info)
        if info["size"] != (size, size):
            if not resize:
                raise InputError(f"{f} is {info['size'][1]}×{info['size'][0]} but this run restores {size}×{size} "
                                 "images; crop/resize it yourself, or pass --resize to resize it (bicubic)")
            out.resized.append(f.name)
        if info["channels"] != channels:
            out.converted.append(f.name)
        imgs.append(x)
    out.images = torch.stack(imgs)
    return out


def output_names(files: Sequence[Path], root: Path) -> List[str]:
    """One distinct output stem per input file, relative to ``root`` (sub-folders kept as folders).

    ``a/x.png`` -> ``a/x``; two inputs that differ only in their extension (``d0.png``, ``d0.bmp``)
    keep it (``d0-png``, ``d0-bmp``), so no result ever overwrites another.
    """
    rel = []
    for f in files:
        try:
            rel.append(Path(f).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            rel.append(Path(Path(f).name))
    stems = [str(r.with_suffix("")) for r in rel]
    counts: Dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    names = [s + "-" + r.suffix.lstrip(".").lower() if counts[s.lower()] > 1 else s for s, r in zip(stems, rel)]
    seen: Dict[str, int] = {}
    out = []
    for n in names:  # still equal (e.g. x.PNG and x.png on a case-sensitive disk): number them
        k = seen.get(n.lower(), 0)
        seen[n.lower()] = k + 1
        out.append(n if k == 0 else f"{n}-{k}")
    return out


def restore_files(run: Run, spec, out, t="auto", sampler: str = "algorithm2", resize: bool = False,
                  batch_size: int = 64, progress: bool = True) -> Dict[str, Any]:
    """The ``colddiff restore`` pipeline; returns the ``restore.json`` record (plus ``warnings`` and ``sheet``)."""
    t = check_t(t, run.T, auto=True)
    samplers = list(dict.fromkeys(["direct", sampler]))   # direct reconstruction beside the chosen sampler
    for s in samplers:  # refuse impossible settings before reading any image
        check_restorable(run, s)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the restored images")
    c = run.cfg.data
    user = load_user_images(spec, c.image_size, c.channels, resize)
    warnings = user.warnings(c.image_size, c.channels)  # returned to the caller (the CLI prints them)
    y = user.images
    tt = estimate_t(run, y, batch_size=batch_size, progress=progress) if t == "auto" else \
        torch.full((y.shape[0],), int(t), dtype=torch.long)
    outs = {s: restore(run, y, tt, sampler=s, batch_size=batch_size, progress=progress) for s in samplers}
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, stem in enumerate(output_names(user.files, user.root)):
        rec: Dict[str, Any] = {"input": str(user.files[i]), "t": int(tt[i]), "t_estimated": t == "auto"}
        for s in samplers:
            target = out / f"{stem}.{s}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            rec[s] = str(save_image(outs[s][i], target))
        records.append(rec)
    rows = [[y[i]] + [outs[s][i] for s in samplers] for i in range(y.shape[0])]
    sheet = atomic_save(make_grid(rows[:64], col_labels=["input"] + samplers,
                                  row_labels=[f"t={int(v)}" for v in tt[:64]]), out / "sheet.png")
    info = {"run": str(run.folder), "checkpoint": run.checkpoint.name, "step": run.step,
            "degradation": repr(run.D), "samplers": samplers, "images": records}
    with atomic_path(out / "restore.json") as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2))
    return {**info, "warnings": warnings, "sheet": str(sheet), "t_values": sorted({int(v) for v in tt})}

"""Restoring images that are already degraded: the user's own files, severity unknown.

``restore(run, y, t)`` restores a batch of degraded images from per-image steps ``t``;
``estimate_t`` picks the severity when it is not known: among the t whose restoration, degraded
again, reproduces the input (|| D(R(y, t), t) − y ||² close to its minimum), the one whose
restoration is sharpest (the sparsest gradients).  ``restore_files``
is the whole pipeline behind ``colddiff restore``: read each file once, estimate t, restore,
write one PNG per input and sampler, a side-by-side sheet and ``restore.json``.

Images of any size: when the run's degradation is local and shift-invariant (the family declares
``shift_invariant``, see :func:`native_size_problem`), R is
fully convolutional, so a photo is restored at its own size: whole (the U-Net pads it to its
size multiple and crops back) or, above a memory budget or when asked (``tile``), in
overlapping tiles blended with raised-cosine weights (:func:`restore_image`).  Other families
restore only images of the run's size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import math
import time

import torch
import torch.nn.functional as F

from .errors import ConfigError, InputError
from .fileio import atomic_path
from .images import atomic_save, list_images, make_grid, read_image, save_image
from .outputs import claim, write_result
from .runs import Run, batches, check_run, check_t, duration, progress_bar, progress_log
from .samplers import check_schedule, get_sampler, parse_schedule
from .validate import number

__all__ = ["estimate_t", "restore", "restore_image", "check_restorable", "native_size", "tiles", "blend_window",
           "restore_defaults", "UserImages", "load_user_images", "output_names", "restore_files", "native_size_problem",
           "tiling", "gradient_sparsity"]

# The U-Net is convolutional except at its lowest resolution, where self-attention relates every pixel
# to every other (and GroupNorm averages over the image): memory there grows with the square of the
# pixel count.  A whole image is restored when its lowest level has at most MAX_TOKENS pixels
# (an attention matrix of 20 MB per head); larger images go in tiles of that size at most.
MAX_TOKENS = 48 * 48
TILE, OVERLAP = 256, 32     # the largest default tile (pixels) and the default overlap; --tile / --overlap


# ---------------------------------------------------------------------------- images of any size, tiles
def native_size(run: Run, H: int, W: int) -> Optional[str]:
    """None when R may restore an H×W image of the run's degradation at its own size, else why not."""
    c = run.cfg.data
    if (H, W) == (c.image_size, c.image_size):
        return None
    return native_size_problem(run.D, H, W)


def native_size_problem(D, H: int, W: int) -> Optional[str]:
    """None when R may restore an H×W image of degradation ``D`` at its own size; else why not (one clause).

    Read from what the family declares, never its name: ``shift_invariant`` (or why not, ``_not_shift_invariant``)
    and ``tile_multiple()``.  A family with another rule defines ``_native_size_problem(self, H, W)``."""
    hook = getattr(D, "_native_size_problem", None)
    if hook is not None:
        return hook(H, W)
    if not D.shift_invariant:
        return D._not_shift_invariant
    m = D.tile_multiple()
    if H % m or W % m:
        return f"its steps act on {m}-pixel blocks, so the image's sides must be multiples of {m} (it is {W}×{H})"
    return None


def tiles(n: int, tile: int, overlap: int, multiple: int = 1) -> List[int]:
    """Start offsets of tiles of length ``min(tile, n)`` covering 0..n, consecutive ones overlapping by at
    least ``overlap`` pixels; every start is a multiple of ``multiple`` (``n`` and ``tile`` are)."""
    if tile >= n:
        return [0]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, n - tile, step))
    return starts + [n - tile]


def blend_window(length: int, before: int, after: int) -> torch.Tensor:
    """(length,) weights of one tile along an axis: 1 inside, a raised-cosine ramp over the ``before``
    pixels it shares with the previous tile and the ``after`` pixels it shares with the next one.

    Where two tiles overlap by the same span their ramps sum to exactly 1 (sin² + cos²), so a seam
    fades from one tile to the other; blending divides by the summed weights anyway."""
    w = torch.ones(length, dtype=torch.float64)
    for span, sl in ((before, slice(0, before)), (after, slice(length - after, length))):
        if span > 0:
            ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(span, dtype=torch.float64) + 0.5) / span)
            w[sl] = w[sl] * (ramp if sl.start == 0 else ramp.flip(0))
    return w


def _axis(n: int, tile: int, overlap: int, m: int):
    """[(start, length, window)] along one axis."""
    L = min(tile, n)
    starts = tiles(n, L, overlap, m)
    out = []
    for i, s in enumerate(starts):
        before = starts[i - 1] + L - s if i > 0 else 0
        after = s + L - starts[i + 1] if i + 1 < len(starts) else 0
        out.append((s, L, blend_window(L, before, after)))
    return out


def check_tiling(run: Run, tile: Optional[int], overlap: int) -> None:
    """One-line errors for impossible --tile / --overlap values."""
    m = run.D.tile_multiple()
    if tile is not None:
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 8:
            raise ConfigError(f"--tile must be a whole number of pixels >= 8, got {tile!r}")
        if tile % m:
            raise ConfigError(f"--tile must be a multiple of {m} for this run ({run.D.name} acts on {m}-pixel blocks), "
                              f"got {tile}; try --tile {max(m, tile // m * m)}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ConfigError(f"--overlap must be a whole number of pixels >= 0, got {overlap!r}")
    if tile is not None and overlap >= tile:
        raise ConfigError(f"--overlap ({overlap}) must be smaller than --tile ({tile})")


def tiling(run: Run, H: int, W: int, tile: Optional[int] = None, overlap: int = OVERLAP,
           max_pixels: Optional[int] = None) -> Dict[str, Any]:
    """How :func:`restore_image` restores an H×W image: ``{"whole": True, "tiles": 1}``, or the tile side, the
    overlap and the number of tiles (``restore.json`` records it)."""
    net = int(getattr(run.model, "size_multiple", 1))
    budget = max_pixels if max_pixels is not None else MAX_TOKENS * net * net
    if tile is None and math.ceil(H / net) * math.ceil(W / net) * net * net <= budget:
        return {"whole": True, "tiles": 1}
    m = run.D.tile_multiple()
    if tile is None:  # the largest tile within the budget, at most TILE, on the degradation's block grid
        side = min(TILE, int(math.isqrt(budget)) // net * net)
        tile = max(m, side // m * m)
        overlap = min(overlap, tile // 2)
    n = len(tiles(H, min(tile, H), overlap, m)) * len(tiles(W, min(tile, W), overlap, m))
    return {"whole": False, "tile": int(tile), "overlap": int(overlap), "tiles": n}


def restore_image(run: Run, y: torch.Tensor, t, sampler: str = "direct", tile: Optional[int] = None,
                  overlap: int = OVERLAP, max_pixels: Optional[int] = None, batch_size: int = 64,
                  progress: bool = False, desc: Optional[str] = None, schedule=None) -> torch.Tensor:
    """R's restoration of same-size images ``y`` (N, C, H, W) from steps ``t`` by ``sampler``, at their own size.

    Whole images (the U-Net pads to its size multiple) when ``tile`` is None and the padded image has at
    most ``max_pixels`` pixels (default: :data:`MAX_TOKENS` at the network's lowest resolution, 192×192
    for a network that halves twice); otherwise overlapping ``tile``-pixel tiles (default: the largest
    within that budget, at most 256), each restored on its own (the sampler's steps included) and
    blended with raised-cosine weights over their ``overlap``.  The caller checks that the
    degradation allows this size (:func:`native_size`).  ``schedule``: the sampler's steps (see
    :meth:`Run.sample`; every step by default).
    """
    y = check_run(run).check_images(y, "y")
    N, C, H, W = y.shape
    tt = run.D.as_t(t, y).cpu()
    check_tiling(run, tile, overlap)
    plan = tiling(run, H, W, tile, overlap, max_pixels)
    if plan["whole"]:
        return run.sample(y, tt, None, sampler=sampler, batch_size=batch_size, progress=progress, desc=desc,
                          schedule=schedule)
    m = run.D.tile_multiple()
    tile, overlap = plan["tile"], plan["overlap"]
    rows, cols = _axis(H, tile, overlap, m), _axis(W, tile, overlap, m)
    crops, where = [], []
    for (top, h, wy) in rows:
        for (left, w, wx) in cols:
            crops.append(y[:, :, top:top + h, left:left + w])
            where.append((top, h, left, w, torch.outer(wy, wx).float()))
    k = len(crops)
    batch = torch.stack(crops, 1).flatten(0, 1)           # (N·k, C, h, w): image-major
    if desc is not None:  # said up front: a large image takes minutes (the bar, or progress lines, follow)
        _announce(run, batch, tt.repeat_interleave(k), sampler, batch_size, N, H, W, desc)
    out = run.sample(batch, tt.repeat_interleave(k), None, sampler=sampler, batch_size=batch_size,
                     progress=progress, desc=desc, schedule=schedule).view(N, k, C, batch.shape[-2], batch.shape[-1])
    acc = torch.zeros(N, C, H, W)
    weight = torch.zeros(1, 1, H, W)
    for i, (top, h, left, w, win) in enumerate(where):
        acc[:, :, top:top + h, left:left + w] += out[:, i] * win
        weight[:, :, top:top + h, left:left + w] += win
    return acc / weight


def _announce(run: Run, tiles_: torch.Tensor, tt: torch.Tensor, sampler: str, batch_size: int, N: int, H: int,
              W: int, desc: str) -> None:
    """One INFO line before a tiled restoration: the tile count, the network calls and a time estimate
    (one network call on one tile, timed now, times the tiles of a batch and the calls to come)."""
    fn = get_sampler(sampler)
    spans = list(batches(tiles_.shape[0], batch_size))
    calls = sum(1 if fn.one_call else int(tt[lo:hi].max()) for lo, hi in spans)
    lo, hi = spans[0]
    start = time.perf_counter()
    run.R(tiles_[lo:lo + 1], tt[lo:lo + 1])
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    est = (time.perf_counter() - start) * (hi - lo) * calls
    progress_log.info("%s: %d image(s) of %dx%d in %d tiles of %dx%d, %d network call(s) in batches of %d; "
                      "about %s on %s", desc, N, W, H, tiles_.shape[0] // N, tiles_.shape[-1], tiles_.shape[-2],
                      calls, hi - lo, duration(est), run.device)


# --t auto keeps the candidates whose restoration is consistent with the input, D(R(y, t), t) within
# this factor of the best one's squared error, and picks the sparsest restoration among them.  1.0 (the
# default) is consistency alone.  1.25 landed within one step of the best-matching t for 68 of 71 blur
# curves from other tools (consistency alone: 56) on a 1,000-step folder-blur checkpoint, but moved the
# mean estimate of the run's own blur at t = 3 by 0.094 on a small digit run (tests/test_photos.py allows
# 0.05), so it is an option (estimate_t(..., consistent=1.25)), not the default: see docs/photos.md.
CONSISTENT = 1.0


def gradient_sparsity(x: torch.Tensor) -> torch.Tensor:
    """Per image, the normalized sparsity ||∇x||₁ / ||∇x||₂ of the horizontal and vertical differences of
    the channel mean (Krishnan, Tay & Fergus, CVPR 2011): lower for a sharp image, whose gradients are a
    few strong edges, than for a blurred one (edges spread out) or an over-sharpened one (halos, ringing).
    An image without any gradient scores +inf."""
    g = x.float().mean(1)
    d = torch.cat([(g[:, 1:, :] - g[:, :-1, :]).flatten(1), (g[:, :, 1:] - g[:, :, :-1]).flatten(1)], 1)
    l1, l2 = d.abs().sum(1), d.pow(2).sum(1).sqrt()
    return torch.where(l2 > 0, l1 / l2.clamp_min(1e-12), torch.full_like(l1, float("inf")))


def estimate_t(run: Run, y: torch.Tensor, candidates: Optional[List[int]] = None, batch_size: int = 64,
               progress: bool = False, tile: Optional[int] = None, overlap: int = OVERLAP,
               max_pixels: Optional[int] = None, consistent: float = CONSISTENT) -> torch.Tensor:
    """Per-image severity: among the candidate t whose restoration x0_hat = R(y, t) is consistent with the
    input, the one whose restoration is sharpest.

    Consistent: degraded again by t steps, x0_hat reproduces y, ||D(x0_hat, t) − y||² at most
    ``consistent`` (:data:`CONSISTENT`) times the smallest such error over t (1.0: consistency alone).  Sharpest: the lowest normalized gradient
    sparsity (:func:`gradient_sparsity`), a natural-image prior.  Consistency alone (the argmin of that
    error) suits images degraded by the run's own D, but for blur from elsewhere (another tool's
    Gaussian, a box, a slight defocus) it is flat over many t and its minimum wanders; at too small a t
    the restoration stays blurred and at too large a t it over-sharpens, and both are less sparse.
    Deterministic degradations only: a random one (mask position, noise) has per-image parameters
    that cannot be recovered this way.  Images larger than the run's are restored whole or in tiles
    (:func:`restore_image`) at every candidate t and degraded whole.
    """
    y, D = check_run(run).check_images(y, "y"), run.D
    if not D.deterministic:
        raise ConfigError(f"--t auto needs a deterministic degradation and {D.name} is random per image; "
                          "give the severity with --t N")
    ts = [check_t(t, run.T, "a candidate t") for t in (candidates or range(1, D.T + 1))]
    y = y.float().cpu()
    errs, sparsity = [], []
    bar = progress_bar(len(ts), "estimate t", progress)
    try:
        for t in ts:
            x0_hat = restore_image(run, y, t, "direct", tile=tile, overlap=overlap, max_pixels=max_pixels,
                                   batch_size=batch_size)
            errs.append((run.degrade(x0_hat, t, batch_size=batch_size) - y).pow(2).flatten(1).mean(1))
            sparsity.append(gradient_sparsity(x0_hat))
            bar.update(1)
    finally:
        bar.close()
    err, sp = torch.stack(errs), torch.stack(sparsity)                  # (candidates, N)
    kept = err <= consistent * err.min(0).values
    pick = torch.where(kept, sp, torch.full_like(sp, float("inf"))).argmin(0)
    pick = torch.where(torch.isfinite(sp.min(0).values), pick, err.argmin(0))  # no gradients anywhere
    return torch.tensor(ts, dtype=torch.long)[pick]


def check_restorable(run: Run, sampler: str) -> None:
    """A one-line ConfigError when ``sampler`` cannot restore a user's images degraded by the run's D."""
    fn = get_sampler(sampler)
    fn.check(run.D)
    if fn.needs_context and not run.D.deterministic:
        raise ConfigError(f"{run.D.name} is random per image (its mask position / noise / partner is unknown for "
                          f"your images), so {sampler} cannot re-apply it; restore with --sampler direct")


def restore(run: Run, y: torch.Tensor, t, sampler: str = "algorithm2", batch_size: int = 64,
            progress: bool = True, tile: Optional[int] = None, overlap: int = OVERLAP,
            max_pixels: Optional[int] = None, schedule=None) -> torch.Tensor:
    """Restore already-degraded images ``y`` (N, C, H, W) in [-1, 1] from per-image steps ``t``
    (``schedule``: the sampler's steps, see :meth:`Run.sample`; every step by default).

    Images of another size than the run's are restored at their own size (whole, or in tiles: see
    :func:`restore_image`) when the run's degradation allows it, else refused in one line."""
    y = check_run(run).check_images(y, "y")
    check_restorable(run, sampler)
    why = native_size(run, y.shape[-2], y.shape[-1])
    if why is not None:
        c = run.cfg.data
        raise InputError(f"this run restores only {c.image_size}×{c.image_size} images at other sizes because "
                         f"{run.D.name}: {why}; give {c.image_size}×{c.image_size} images (or --resize)")
    return restore_image(run, y, t, sampler, tile=tile, overlap=overlap, max_pixels=max_pixels,
                         batch_size=batch_size, progress=progress, desc=f"restore ({sampler})", schedule=schedule)


def default_schedule(run: Run, asked=None):
    """The sampling steps to restore with: ``asked`` (``--sample-steps``, the demo's steps) when given, else the
    run's ``[restore] sample_steps`` (every step unless the run sets it; folder-blur: one update)."""
    return parse_schedule(asked if asked is not None else run.cfg.restore.sample_steps)


def restore_defaults(run: Run, t, sampler: Optional[str]) -> tuple:
    """(t, sampler) for ``colddiff restore`` from the run: a degradation that is random per image (a mask
    at an unknown place, noise) is restored by direct reconstruction and needs its step given, so such a
    run gets ``direct`` unless a sampler is named, and ``--t auto`` is refused up front in one line."""
    random = not run.D.deterministic
    if random and (t is None or str(t).strip().lower() == "auto"):
        raise ConfigError(f"this run's degradation ({run.D.name}) is random per image, so its severity cannot be "
                          f"estimated: give it with --t N (1..{run.T}); it restores with --sampler direct")
    if sampler is None:
        sampler = ("ddim" if run.D.mixing_schedule() is not None else "direct") if random else "algorithm2"
    return ("auto" if t is None else t), sampler


# ---------------------------------------------------------------------------- the user's files
@dataclass
class UserImages:
    """The user's images (each (C, H, W) in [-1, 1], at its own size when the run allows it), their files
    and what was changed."""

    images: List[torch.Tensor]
    files: List[Path]
    root: Path                           # the input folder (or the file's folder)
    converted: List[str] = field(default_factory=list)   # files converted to the run's channels
    resized: List[str] = field(default_factory=list)     # files scaled (aspect ratio kept) and centre-cropped

    def warnings(self, size: int, channels: int) -> List[str]:
        out = []
        if self.converted:
            out.append(f"converted {len(self.converted)} image(s) to {channels} channel(s) to match the run "
                       f"({_some(self.converted)})")
        if self.resized:
            out.append(f"resized {len(self.resized)} image(s) to {size} pixels on the shorter side (aspect ratio kept) "
                       f"and cropped the middle {size}×{size}; restoration quality depends on the degradation "
                       "matching the training one")
        return out

    def batch(self) -> torch.Tensor:
        """All images as one (N, C, H, W) tensor (they must share one size)."""
        return torch.stack(self.images)


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) scaled so its shorter side is ``size`` (bicubic, antialiased; the aspect ratio kept),
    then its middle ``size``×``size`` cut out: never stretched."""
    C, H, W = x.shape
    if (H, W) == (size, size):
        return x
    s = size / min(H, W)
    h, w = max(size, round(H * s)), max(size, round(W * s))
    y = F.interpolate(x[None].float(), size=(h, w), mode="bicubic", align_corners=False, antialias=True)[0]
    top, left = (h - size) // 2, (w - size) // 2
    return y[:, top:top + size, left:left + size].clamp(-1, 1)


def input_files(spec) -> tuple:
    """(image files, root) of an image file (root: its folder) or a folder of images (recursively); one-line errors."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"input not found: {path}; give an image file or a folder of images")
    files = [path] if path.is_file() else list_images(path)
    if not files:
        raise InputError(f"no images found in folder {path}")
    return files, (path.parent if path.is_file() else path)


def load_user_images(spec, size: int, channels: int, resize: bool = False, run: Optional[Run] = None) -> UserImages:
    """An image file or a folder of images (recursively), each file decoded once.

    With ``run`` whose degradation restores any size (:func:`native_size`), every image keeps its own
    size.  Otherwise an image of another size is a one-line error (saying why) unless ``resize``:
    scaled to ``size`` on its shorter side (aspect ratio kept) and centre-cropped, noted in ``resized``.
    Other channel counts are converted (noted in ``converted``).
    """
    files, root = input_files(spec)
    out = UserImages(images=[], files=files, root=root)
    for f in files:
        info: Dict[str, Any] = {}
        x = read_image(f, channels=channels, info=info)
        H, W = info["size"]
        if (H, W) != (size, size):
            why = native_size(run, H, W) if run is not None else "it was not asked to restore other sizes"
            if why is not None:
                if not resize:
                    name = f" ({run.D.name}: {why})" if run is not None else ""
                    raise InputError(f"{f} is {W}×{H} but this run restores only {size}×{size} images{name}; "
                                     "crop it yourself, or pass --resize to scale it (aspect ratio kept) and crop "
                                     "its middle")
                x = fit_square(x, size)
                out.resized.append(f.name)
        if info["channels"] != channels:
            out.converted.append(f.name)
        out.images.append(x)
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


def _sheet_cell(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(C, h, w) scaled (aspect ratio kept) to fit H×W and padded with black: one cell of the sheet."""
    C, h, w = x.shape
    s = min(1.0, H / h, W / w)
    if s < 1:
        x = F.interpolate(x[None].float(), size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")[0]
    out = torch.full((C, H, W), -1.0)
    out[:, :x.shape[1], :x.shape[2]] = x
    return out


SHEET_CELL = 256   # the longest side of an image on the side-by-side sheet


def restore_files(run: Run, spec, out, t="auto", sampler: str = "algorithm2", resize: bool = False,
                  batch_size: int = 64, progress: bool = True, tile: Optional[int] = None,
                  overlap: int = OVERLAP, max_pixels: Optional[int] = None, schedule=None,
                  consistent: float = CONSISTENT) -> Dict[str, Any]:
    """The ``colddiff restore`` pipeline; returns the ``restore.json`` record (plus ``warnings`` and ``sheet``).
    ``schedule``: the steps the chosen sampler visits (every step by default; recorded as ``sample_steps``).
    ``consistent``: ``--t auto``'s tolerance (:func:`estimate_t`; 1.0, consistency alone, by default).

    Images are restored at their own size when the run's degradation allows it (whole, or in tiles:
    ``tile``, ``overlap``, ``max_pixels``; see :func:`restore_image`), and written at that size."""

    t = check_t(t, run.T, auto=True)
    consistent = number(consistent, "--auto-tolerance", 1.0, 100.0)
    samplers = list(dict.fromkeys(["direct", sampler]))   # direct reconstruction beside the chosen sampler
    for s in samplers:  # refuse impossible settings before reading any image
        check_restorable(run, s)
    schedule = check_schedule(sampler, schedule, run.T, t)
    check_tiling(run, tile, overlap)
    out = claim(out, "restore", inputs=[spec])  # before any image is read (a claimed Output passes as it is)
    c = run.cfg.data
    user = load_user_images(spec, c.image_size, c.channels, resize, run=run)
    warnings = user.warnings(c.image_size, c.channels)  # returned to the caller (the CLI prints them)
    n = len(user.images)
    tt = torch.zeros(n, dtype=torch.long)
    outs: Dict[str, List[Optional[torch.Tensor]]] = {s: [None] * n for s in samplers}
    by_size: Dict[tuple, List[int]] = {}
    for i, x in enumerate(user.images):  # one batch per image size
        by_size.setdefault(tuple(x.shape[-2:]), []).append(i)
    opts_tiling = dict(tile=tile, overlap=overlap, max_pixels=max_pixels)
    opts = dict(opts_tiling, batch_size=batch_size)
    for idx in by_size.values():
        y = torch.stack([user.images[i] for i in idx])
        ti = estimate_t(run, y, progress=progress, consistent=consistent, **opts) if t == "auto" else \
            torch.full((y.shape[0],), int(t), dtype=torch.long)
        tt[idx] = ti
        for s in samplers:
            res = restore(run, y, ti, sampler=s, progress=progress, schedule=schedule, **opts)
            for j, i in enumerate(idx):
                outs[s][i] = res[j]
    shown = list(range(min(n, 64)))
    Hs = max(int(user.images[i].shape[-2]) for i in shown)
    Ws = max(int(user.images[i].shape[-1]) for i in shown)
    k = min(1.0, SHEET_CELL / max(Hs, Ws))
    Hc, Wc = max(1, round(Hs * k)), max(1, round(Ws * k))
    rows = [[_sheet_cell(x, Hc, Wc) for x in [user.images[i]] + [outs[s][i] for s in samplers]] for i in shown]

    def write(stage):  # every file into the stage; the record names the files as they will be committed
        records = []
        for i, stem in enumerate(output_names(user.files, user.root)):
            H, W = (int(v) for v in user.images[i].shape[-2:])
            rec: Dict[str, Any] = {"input": str(user.files[i]), "t": int(tt[i]), "t_estimated": t == "auto",
                                   "size": [W, H], "tiling": tiling(run, H, W, **opts_tiling)}
            for s in samplers:
                target = stage / f"{stem}.{s}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                rec[s] = str(stage.final(save_image(outs[s][i], target)))
            records.append(rec)
        sheet = stage.final(atomic_save(make_grid(rows, col_labels=["input"] + samplers,
                                                  row_labels=[f"t={int(tt[i])}" for i in shown]), stage / "sheet.png"))
        info = {"run": str(run.folder), "checkpoint": run.checkpoint.name, "step": run.step,
                "degradation": repr(run.D), "samplers": samplers, "sample_steps": str(schedule), "images": records}
        with atomic_path(stage / "restore.json") as tmp:
            Path(tmp).write_text(json.dumps(info, indent=2))
        return info, sheet

    info, sheet = write_result(out, "restore", write).value  # all files, or none; paths as committed
    return {**info, "warnings": warnings, "sheet": str(sheet), "t_values": sorted({int(v) for v in tt})}

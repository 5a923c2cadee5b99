"""Unconditional generation: start states at t = T, the sampling loop, output files, statistics.

A degradation generates when its image at t = T no longer depends on x0 beyond a few
numbers that can be drawn (Cold Diffusion, "Generation").  Each family says how through
its own ``start`` hook (see :class:`colddiff.degradations.Degradation`); this module never
asks for a family's name:

* families whose end state keeps a statistic of x0 (``start_statistic``; blur: the channel means;
  resolution: the whole low-resolution end state, 16 numbers per channel for 4x4) get a
  Gaussian mixture fitted once to that statistic over the run's training set (1 component in
  the paper), stored with the run (``RUN/generation/gmm-k{K}.json``), and a sampler of it
  (``draw``) to build their start, e.g. blur's x_T = D(fill, T);
* the others draw their start from their own context: mask generation a random solid
  colour, animorph partner images, noise Gaussian ε (x_T = D(0, T, ctx)), so the sampler's
  later calls D(x0_hat, s, ctx) head towards the same end.

``noise > 0`` adds N(0, noise²) to the start ("broken symmetry": the paper's 0.002 in
[-1, 1] units).  Algorithm 2 carries this perturbation to the end (the final image keeps it,
far below one 8-bit level for 0.002) while R turns it into diversity.  The ``stochastic``
sampler adds noise δ at every step instead (Inverse Heat Dissipation); a run's
``[generation]`` configuration says which sampler, start noise, δ and k it generates with.

Randomness: start states are drawn in fixed chunks of ``CHUNK`` images, chunk c from its
own generator seeded by (seed, c), on the CPU.  Image i is therefore the same whatever the
batch size, the device or n (``generate(run, 16)`` is the first 16 of ``generate(run, 64)``).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .degradations import context_cat, context_slice, describe, start_fit
from .errors import ConfigError, InputError
from .fileio import atomic_path
from .images import atomic_save, make_grid, save_image
from .runs import batches, check_run
from .samplers import SAMPLERS, check_schedule, get_sampler
from .validate import MAX_BATCH, check_seed, number, whole

__all__ = ["CHUNK", "ChannelGMM", "start_statistics", "start_gmm", "start_state", "generation_defaults", "generate",
           "write_generation",
           "near_blank", "ink_fraction", "generation_stats"]

log = logging.getLogger("colddiff.generation")

MAX_IMAGES = 1_000_000     # one `colddiff generate` at most (all are held in memory, one PNG each)
CHUNK = 64                 # images per start-state generator (changing it changes every sample)
GMM_FORMAT = "colddiff-gmm-v1"
GENERATION_FORMAT = "colddiff-generation-v1"
INK_CONTRAST = 0.5         # a pixel is "ink" when it differs from the image's median by > half the range
BLANK_THRESHOLD = 0.01     # near-blank: less than 1% of the pixels are ink


# ---------------------------------------------------------------------------- GMM of channel means
class ChannelGMM:
    """A Gaussian mixture over a per-image start statistic (blur: C channel means per image, in [-1, 1]).

    Attributes: ``weights`` (K,), ``means`` (K, C), ``covariances`` (K, C, C) float64 tensors,
    ``covariance_type`` ("full"), and ``meta`` (what it was fitted on: data set, n images, seed).
    """

    def __init__(self, weights, means, covariances, covariance_type: str = "full", meta: Optional[dict] = None):
        self.weights = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covariances = torch.as_tensor(covariances, dtype=torch.float64)
        self.covariance_type = covariance_type
        self.meta = dict(meta or {})
        K = self.weights.numel()
        if covariance_type != "full":
            raise InputError(f"ChannelGMM stores full covariances, got covariance_type {covariance_type!r}")
        if K < 1 or self.means.dim() != 2 or self.means.shape[0] != K:
            raise InputError(f"GMM means must be (K, C) with K = {K} weights, got {tuple(self.means.shape)}")
        C = self.means.shape[1]
        if tuple(self.covariances.shape) != (K, C, C):
            raise InputError(f"GMM covariances must be ({K}, {C}, {C}), got {tuple(self.covariances.shape)}")
        if not (torch.isfinite(self.weights).all() and (self.weights >= 0).all() and self.weights.sum() > 0):
            raise InputError("GMM weights must be finite, non-negative and not all zero")
        try:
            self._chol = torch.linalg.cholesky(self.covariances)
        except RuntimeError:
            raise InputError("GMM covariances must be symmetric positive definite") from None

    @property
    def k(self) -> int:
        return int(self.weights.numel())

    @property
    def channels(self) -> int:
        return int(self.means.shape[1])

    @classmethod
    def fit(cls, means: torch.Tensor, k: int = 1, seed: int = 0) -> "ChannelGMM":
        """Fit k full-covariance components to ``means`` (N, C) with scikit-learn (EM, k-means init)."""
        from sklearn.mixture import GaussianMixture

        k = whole(k, "k (GMM components)", 1)
        x = torch.as_tensor(means).detach().double().cpu()
        if x.dim() != 2 or x.shape[0] < 1:
            raise InputError(f"channel means must be an (N, C) tensor, got shape {tuple(x.shape)}")
        if x.shape[0] < max(k, 2):
            raise ConfigError(f"a {k}-component GMM needs at least {max(k, 2)} images, got {x.shape[0]}")
        gm = GaussianMixture(n_components=k, covariance_type="full", random_state=int(seed), reg_covar=1e-6)
        gm.fit(x.numpy())
        return cls(gm.weights_, gm.means_, gm.covariances_, "full", meta={"seed": int(seed), "n_images": x.shape[0]})

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(n, C) float32 means drawn from the mixture with ``generator`` (CPU), clamped to [-1, 1]."""
        comp = torch.multinomial(self.weights / self.weights.sum(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.channels, 1, generator=generator, dtype=torch.float64)
        x = self.means[comp] + (self._chol[comp] @ z)[..., 0]
        return x.clamp(-1, 1).float()

    def to_dict(self) -> dict:
        return {"format": GMM_FORMAT, "k": self.k, "covariance_type": self.covariance_type,
                "weights": self.weights.tolist(), "means": self.means.tolist(),
                "covariances": self.covariances.tolist(), **self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelGMM":
        if not isinstance(d, dict) or d.get("format") != GMM_FORMAT:
            raise InputError(f"not a colddiff GMM file (format {d.get('format') if isinstance(d, dict) else None!r})")
        try:
            meta = {k: v for k, v in d.items()
                    if k not in ("format", "k", "covariance_type", "weights", "means", "covariances")}
            return cls(d["weights"], d["means"], d["covariances"], d.get("covariance_type", "full"), meta)
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"malformed GMM file: {e.__class__.__name__}: {e}") from None

    def save(self, path) -> Path:
        """Write the JSON file atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "ChannelGMM":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"GMM file not found: {path}") from None
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read GMM file {path}: {e}") from None
        try:
            return cls.from_dict(d)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None

    def __repr__(self) -> str:
        return f"ChannelGMM(k={self.k}, channels={self.channels}, n_images={self.meta.get('n_images')})"


def start_statistics(D, dataset, batch_size: int = 512, num_workers: int = 0, progress: bool = False) -> torch.Tensor:
    """(N, d) float64 start statistic ``D.start_statistic`` of every image of a data set (images or pairs)."""
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor) and images.is_floating_point() and images.dim() == 4:
        return D.start_statistic(images).double().flatten(1)  # in-memory data sets: one call
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = []
    for batch in tqdm(loader, desc="start statistics", unit="batch", disable=None if progress else True,
                      dynamic_ncols=True):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        out.append(D.start_statistic(x).double().flatten(1))
    if not out:
        raise InputError("the training set is empty: no start statistics to fit")
    return torch.cat(out)


def _gmm_dataset(run) -> dict:
    """What a stored GMM must have been fitted on to be reused (the data root may differ between machines)."""
    d = run.cfg.data
    return {"name": d.name, "split": "train", "image_size": int(d.image_size), "channels": int(d.channels)}


def start_gmm(run, k: int = 1, refit: bool = False, progress: bool = True) -> ChannelGMM:
    """The GMM of the run's training-set start statistic, from ``RUN/generation/gmm-k{k}.json``.

    The file is reused when it was fitted with the same k on the same data set, image size,
    channels and degradation; otherwise (or with ``refit``) the GMM is fitted (seed 0) and the
    file written.
    """
    k = whole(k, "k (GMM components)", 1)
    path = Path(run.folder) / "generation" / f"gmm-k{k}.json"
    want = _gmm_dataset(run)
    statistic = describe(run.D)
    if path.exists() and not refit:
        try:
            gmm = ChannelGMM.load(path)
        except InputError as e:
            log.warning("%s; fitting the GMM again", e)
        else:
            if gmm.k == k and gmm.meta.get("dataset") == want and gmm.meta.get("degradation", statistic) == statistic:
                return gmm
            log.info("%s was fitted on %s, not %s: fitting again", path, gmm.meta.get("dataset"), want)
    stats = start_statistics(run.D, run.dataset("train"), num_workers=max(0, int(run.cfg.data.num_workers)),  # -1: auto
                             progress=progress)
    gmm = ChannelGMM.fit(stats, k=k, seed=0)
    gmm.meta = {"dataset": want, "degradation": statistic, **gmm.meta}
    try:
        gmm.save(path)
    except OSError as e:  # a read-only run folder: generation still works, the fit is just not cached
        log.warning("cannot store the GMM in %s (%s); it will be fitted again next time", path, e)
    return gmm


# ---------------------------------------------------------------------------- start states
def _generator(seed: int, chunk: int) -> torch.Generator:
    """The CPU generator of start-state chunk ``chunk`` (independent streams for (seed, chunk))."""
    state = np.random.SeedSequence([int(seed), int(chunk)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _start_chunk(run, m: int, g: torch.Generator, noise: float, gmm: Optional[ChannelGMM]):
    """x_T and ctx for ``m`` images, every random number drawn from ``g`` in a fixed order."""
    C, H = int(run.cfg.data.channels), int(run.cfg.data.image_size)
    draw = gmm.sample if gmm is not None else None
    x_T, ctx = run.D.start(m, (C, H, H), g, run.device, draw=draw)
    if noise > 0:  # "broken symmetry": small Gaussian noise on the start image
        x_T = x_T + noise * torch.randn(m, C, H, H, generator=g).to(run.device)
    return x_T, ctx


def _start_state(run, n: int, seed: int, noise: float, gmm: Optional[ChannelGMM], first: int = 0):
    c0, c1 = first // CHUNK, (first + n - 1) // CHUNK
    parts = [_start_chunk(run, CHUNK, _generator(seed, c), noise, gmm) for c in range(c0, c1 + 1)]
    a = first - c0 * CHUNK
    total = CHUNK * len(parts)
    x_T = torch.cat([p[0] for p in parts])[a:a + n].contiguous()
    ctx = context_cat([p[1] for p in parts], [CHUNK] * len(parts))
    return x_T, context_slice(ctx, a, a + n, total)


def _gmm_for(run, k: int, progress: bool) -> Optional[ChannelGMM]:
    return start_gmm(run, k, progress=progress) if start_fit(run.D) else None


def start_state(run, n: int, seed: int = 0, noise: float = 0.0, k: int = 1, *, first: int = 0):
    """(x_T, ctx): the start of generation for images ``first .. first+n-1`` of stream ``seed``.

    x_T is (n, C, H, W) on ``run.device``; ctx is what the sampler must be given (None for blur).
    ``k`` is the number of GMM components (start_fit families such as blur).
    """
    n, seed, noise, first = whole(n, "n", 1), check_seed(seed), _noise(noise), whole(first, "first", 0)
    return _start_state(run, n, seed, noise, _gmm_for(run, k, False), first)


# ---------------------------------------------------------------------------- the loop
def _step_generator(seed: int, chunk: int) -> torch.Generator:
    """The CPU generator of a stochastic sampler's per-step noise for chunk ``chunk`` (a stream apart from the start's)."""
    state = np.random.SeedSequence([int(seed), int(chunk), 1]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def generation_defaults(run, sampler: Optional[str] = None, noise: Optional[float] = None,
                        delta: Optional[float] = None, k: Optional[int] = None) -> dict:
    """The settings a generation uses: each one given here, else the run's ``[generation]`` config."""
    g = run.cfg.generation
    return {"sampler": g.sampler if sampler is None else sampler,
            "noise": _noise(g.noise if noise is None else noise),
            "delta": _delta(g.delta if delta is None else delta),
            "k": whole(g.k if k is None else k, "k (GMM components)", 1)}


def generate(run, n: int, sampler: Optional[str] = None, noise: Optional[float] = None, seed: int = 0,
             k: Optional[int] = None, batch_size: int = 256, progress: bool = True,
             delta: Optional[float] = None, schedule=None) -> torch.Tensor:
    """``n`` generated images (n, C, H, W) in [-1, 1] on the CPU, run from t = T by ``sampler``.

    ``sampler``: any registered sampler that applies to the run's degradation (``algorithm2``,
    the paper's; ``stochastic``, Algorithm 2 with per-step noise ``delta``; ``algorithm1``;
    ``direct``, one call of R; ``ddim`` on noise runs).  ``sampler``, ``noise`` (start noise),
    ``delta`` and ``k`` default to the run's ``[generation]`` configuration.  ``schedule``: the steps
    the sampler visits from T (a count such as 8, ``"8:quadratic"``, a list ending at 0; every step
    by default; see :func:`colddiff.samplers.parse_schedule`).
    Deterministic for a seed, whatever ``batch_size`` and device: with per-step noise the images
    are sampled in chunks of ``CHUNK``, each with its own noise stream.
    """
    run, n, batch_size = check_run(run), whole(n, "n", 1, MAX_IMAGES), whole(batch_size, "batch_size", 1, MAX_BATCH)
    check_size(n, run)
    seed = check_seed(seed)
    st = generation_defaults(run, sampler, noise, delta, k)
    fn = get_sampler(st["sampler"])
    fn.check(run.D)
    options = {name: st[name] for name in fn.options if name in st}   # the settings this sampler takes
    if st["delta"] > 0 and "delta" not in options:
        takers = " or ".join(name for name, f in SAMPLERS.items() if "delta" in f.options)
        raise ConfigError(f"delta (per-step noise) is an option of the {takers} sampler, not of {st['sampler']}; "
                          f"use --sampler {takers} or --delta 0")
    schedule = check_schedule(st["sampler"], schedule, run.T, run.T, options)
    draws = fn.draws(options)
    gmm = _gmm_for(run, st["k"], progress)
    # a sampler that draws noise gets one generator per chunk, so image i never depends on the batch size
    spans = (list(batches(n, CHUNK)) if draws else list(batches(n, batch_size)))
    out = []
    for lo, hi in spans:  # start states per batch: memory stays at one batch
        x_T, ctx = _start_state(run, hi - lo, seed, st["noise"], gmm, first=lo)
        g = _step_generator(seed, lo // CHUNK) if draws else None
        out.append(run.sample(x_T, run.T, ctx, sampler=st["sampler"], batch_size=hi - lo, progress=progress,
                              desc=f"generate {run.name} ({st['sampler']}) {lo}-{hi} of {n}", generator=g,
                              options=options, schedule=schedule).clamp(-1, 1))
    return torch.cat(out)


def check_size(n: int, run=None) -> None:
    """Refuse a generation that cannot fit: more than MAX_IMAGES images, or (given the run) images that
    would take more than half the free memory."""
    if n > MAX_IMAGES:
        raise ConfigError(f"--n {n:,} is more than one generate writes ({MAX_IMAGES:,} images, each its own PNG); "
                          "generate in parts with different --seed values into different folders")
    if run is None:
        return
    from .devices import available_memory

    c = run.cfg.data
    need, free = n * c.channels * c.image_size ** 2 * 4, available_memory()
    if free is not None and need > free // 2:
        raise ConfigError(f"--n {n:,} images of {c.channels}x{c.image_size}x{c.image_size} need {need / 2**30:.1f} GiB "
                          f"of memory and {free / 2**30:.1f} GiB are free; generate at most "
                          f"{max(1, free // 2 // (need // n)):,} at once (several runs with different --seed)")


# ---------------------------------------------------------------------------- output files
def _jsonable(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def write_generation(images: torch.Tensor, out_dir, settings: dict, *, grid_max: int = 100,
                     inputs=()) -> dict:
    """Write ``out_dir/0000.png ...``, ``grid.png`` and ``generation.json``; return the JSON dict.

    The grid shows the first ``grid_max`` images, roughly square.  The folder is replaced as a
    whole (:func:`colddiff.outputs.write_result`): it holds exactly this set (what FID on a folder
    needs), a kill leaves the earlier set or this one, and a folder holding files colddiff did
    not write (or inside one of ``inputs``) is refused before anything is written.
    """
    from .outputs import write_result

    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 1:
        raise InputError(f"images must be a non-empty (N, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not isinstance(settings, dict):
        raise InputError(f"settings must be a dict, got {type(settings).__name__}")
    N, C, H, W = images.shape
    width = max(4, len(str(N - 1)))
    names = [f"{i:0{width}d}.png" for i in range(N)]
    images = images.detach().float().cpu()
    m = max(1, min(N, int(grid_max)))
    cols = math.ceil(math.sqrt(m))
    rows = [list(images[i:i + cols]) for i in range(0, m, cols)]
    info = {**settings, "format": GENERATION_FORMAT, "n_images": N, "channels": C, "image_size": [H, W],
            "grid": "grid.png", "grid_images": m, "grid_shape": [len(rows), cols], "files": names}
    info = json.loads(json.dumps(info, default=_jsonable))

    def write(stage):  # the record lists the images as written (write_result checks them once committed)
        for name, x in zip(names, images):
            save_image(x, stage / name)
        atomic_save(make_grid(rows), stage / "grid.png")
        with atomic_path(stage / "generation.json") as tmp:
            Path(tmp).write_text(json.dumps(info, indent=2) + "\n")

    write_result(out_dir, "generate", write, inputs=inputs)
    return info


# ---------------------------------------------------------------------------- statistics
def ink_fraction(images: torch.Tensor, contrast: float = INK_CONTRAST) -> torch.Tensor:
    """(N,) share of "ink" pixels: grey value (channel mean, [0, 1] units) more than ``contrast``
    away from the image's median, i.e. strokes that stand out from the background."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise InputError("images must be an (N, C, H, W) tensor in [-1, 1]")
    g = ((images.detach().float().cpu().mean(1) + 1) / 2).flatten(1)
    med = g.median(1).values
    return ((g - med[:, None]).abs() > contrast).float().mean(1)


def near_blank(images: torch.Tensor, threshold: float = BLANK_THRESHOLD,
               contrast: float = INK_CONTRAST) -> torch.Tensor:
    """(N,) bool: images with less than ``threshold`` ink (see :func:`ink_fraction`).

    Flags empty and solid-colour images and the faint smudges a failed sampler leaves (a
    digit blurred until no pixel stands out by half the range), while every real digit of
    mnist-5k has at least 2.9% ink.  Built for strokes on a background (digits, clothes);
    on photographs it flags only images with almost no strong contrast.
    """
    return ink_fraction(images, contrast) < threshold


def generation_stats(probs: torch.Tensor, images: torch.Tensor, blank_threshold: float = BLANK_THRESHOLD) -> dict:
    """Diversity and quality summary of generated images, given a classifier's class probabilities.

    Returns ``n``, ``num_classes``, ``histogram`` (images per predicted class), ``entropy``
    (histogram entropy / log K, in [0, 1]: 0 = one class, 1 = uniform; 1.0 when K = 1),
    ``classes_covered`` (classes with at least one image), ``classes_covered_1pct`` (classes
    with at least 1% of the images), ``classes_covered_3pct`` (at least 3%: the generation
    targets' coverage), ``near_blank_share`` / ``near_blank_count`` (see
    :func:`near_blank`), ``blank_definition`` and ``mean_confidence`` (mean max probability).
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or probs.shape[0] < 1 or probs.shape[1] < 1:
        raise InputError(f"probs must be an (N, K) tensor of class probabilities, got "
                         f"{tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__}")
    p = probs.detach().double().cpu()
    N, K = p.shape
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] != N:
        raise InputError(f"images must be ({N}, C, H, W) to match probs, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not torch.isfinite(p).all() or (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(N, dtype=p.dtype),
                                                                           atol=1e-3):
        raise InputError("probs must be class probabilities (non-negative rows summing to 1); apply softmax to logits")
    hist = torch.bincount(p.argmax(1), minlength=K)
    share = hist.double() / N
    nz = share[share > 0]
    entropy = float(-(nz * nz.log()).sum() / math.log(K)) if K > 1 else 1.0
    blank = near_blank(images, blank_threshold)
    return {
        "n": N,
        "num_classes": K,
        "histogram": hist.tolist(),
        "entropy": min(1.0, max(0.0, entropy)),
        "classes_covered": int((hist > 0).sum()),
        "classes_covered_1pct": int((share >= 0.01).sum()),
        "classes_covered_3pct": int((share >= 0.03).sum()),
        "near_blank_share": float(blank.double().mean()),
        "near_blank_count": int(blank.sum()),
        "blank_definition": f"less than {blank_threshold:g} of the pixels differ from the image's median grey "
                            f"by more than {INK_CONTRAST:g} (on a 0-1 scale)",
        "mean_confidence": float(p.max(1).values.mean()),
    }


# ---------------------------------------------------------------------------- argument checks


def _std(v: Any, what: str) -> float:
    """A noise std from the library or a config: a finite number >= 0 (numpy scalars too)."""
    return float(number(float(v) if isinstance(v, np.floating) else v, what, 0))


def _delta(v: Any) -> float:
    return _std(v, "delta (the per-step noise std)")


def _noise(v: Any) -> float:
    return _std(v, "noise (the start noise std)")

"""A trained run, loaded for use: its config, degradation D, restorer R and data.

``load_run(path)`` takes a run folder (``colddiff train --out``), one checkpoint file, a model
folder written by ``colddiff export`` (or its ``model.safetensors``) or ``hf://owner/name[@rev]``
and returns a :class:`Run`.  Evaluation, restoration, generation and the report all start here,
so they agree on which weights (EMA by default), device and precision are used, and
:meth:`Run.sample` is the one place that drives R over many images: batches, the context's
batch axis, the device, the precision and the progress bar.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple, Union

import torch

from . import checkpoint as ckpt_io
from . import data, hub, threads
from .config import RunConfig
from .degradations import context_slice, context_to
from .devices import autocast, resolve_device
from .errors import ColddiffError, ConfigError, InputError
from .graphs import GraphedRestorer
from .samplers import ScheduleError, get_sampler, parse_schedule
from .timesteps import user_t
from .validate import MAX_BATCH, images, whole

__all__ = ["Run", "load_run", "resolve_device", "check_t", "check_run", "batches", "progress_bar"]


def check_t(t, T: int, what: str = "--t", auto: bool = False) -> Union[int, str]:
    """A user's restoration step: a whole number 1..T (``T`` or ``None`` mean T; ``auto`` when allowed).

    The library's samplers accept 0..T (t = 0 returns x0); a step to restore *from* is 1..T.
    The rule is :func:`colddiff.timesteps.user_t`.
    """
    return user_t(t, T, what, auto)


def check_run(run: Any, what: str = "run") -> "Run":
    """The Python API's check of a run argument: a :class:`Run` (from :func:`load_run`), else an InputError."""
    if not isinstance(run, Run):
        raise InputError(f"{what} must be a run loaded with colddiff.load_run(PATH), got {type(run).__name__}")
    return run


def batches(n: int, batch_size: int) -> Iterator[Tuple[int, int]]:
    """(lo, hi) of consecutive batches covering 0..n."""
    batch_size = whole(batch_size, "batch_size", 1, MAX_BATCH)
    for lo in range(0, n, batch_size):
        yield lo, min(n, lo + batch_size)


progress_log = logging.getLogger("colddiff.progress")   # the CLI shows its INFO lines on stderr
PROGRESS_EVERY = 15.0   # seconds between progress lines when no bar is shown


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    s = int(round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60} min"


class _Heartbeat:
    """A disabled progress bar that still says how far the work is: one INFO line on ``colddiff.progress``
    every :data:`PROGRESS_EVERY` seconds (--no-progress, or stderr not a terminal), from a timer thread, so
    long work is never silent, even while one step (a batch of tiles of a huge image) takes minutes."""

    def __init__(self, bar, total: int, desc: str):
        self.bar, self.total, self.desc, self.done = bar, total, desc, 0
        self.start = time.monotonic()
        self._stop = threading.Event()
        if total:
            threading.Thread(target=self._beat, name="colddiff-progress", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY):
            spent, done = time.monotonic() - self.start, self.done
            left = f"about {duration(spent * (self.total - done) / done)} left" if done else "estimating the rest"
            progress_log.info("%s: %d of %d steps (%.0f%%), %s so far, %s", self.desc, done, self.total,
                              100 * done / self.total, duration(spent), left)

    def update(self, k: int = 1) -> None:
        self.bar.update(k)
        self.done += k

    def close(self) -> None:
        self._stop.set()
        self.bar.close()


def progress_bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar only when stderr is a terminal (no bar lines in logs, CI, notebooks)
    bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=None if progress else True,
               leave=False)
    return _Heartbeat(bar, total, desc) if bar.disable else bar


@dataclass
class Run:
    """A run folder with its network loaded (``model`` in eval mode on ``device``)."""

    folder: Path                  # the run folder (where evaluation, figures and the report are written)
    checkpoint: Path
    cfg: RunConfig
    step: int
    model: torch.nn.Module
    D: Any                        # the run's Degradation
    device: torch.device
    ema: bool = True              # whether the EMA weights are loaded
    precision: str = "fp32"
    cuda_graphs: bool = False     # replay sampling loops from CUDA graphs (colddiff.graphs); CPU: eager
    _cache: dict = field(default_factory=dict, repr=False)

    def R(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The restorer x0_hat = R(x_t, t), float32, under the run's precision (the training policy)."""
        with torch.no_grad(), autocast(self.device, self.precision):
            return self.model(x.to(self.device), t.to(self.device)).float()

    def sample(self, x_t: torch.Tensor, t, ctx: Any = None, sampler: str = "algorithm2", batch_size: int = 64,
               progress: bool = False, desc: Optional[str] = None, callback: Optional[Callable] = None,
               generator: Optional[torch.Generator] = None, options: Optional[dict] = None,
               schedule: Any = None) -> torch.Tensor:
        """x0_hat for N images ``x_t`` (CPU or device) from steps ``t`` (int or (N,)), by ``sampler``, on the CPU.

        ``ctx`` is the context of all N trajectories (its batch axis is sliced per batch, see
        :func:`colddiff.degradations.context_slice`).  Results do not depend on ``batch_size``
        (except for samplers that draw from ``generator``: one stream serves the batches in turn).
        ``options``: the sampler's own keyword options (``stochastic``: ``{"delta": 0.0125}``).
        ``schedule``: the steps to visit (:func:`colddiff.samplers.parse_schedule`: a count such as 5,
        ``"5:quadratic"``, a list ending at 0); ``None`` visits every step.
        """
        x_t = self.check_images(x_t, "x_t")
        fn = get_sampler(sampler)
        fn.check(self.D)
        sched = parse_schedule(schedule)
        tt = self.D.as_t(t, x_t).cpu()
        # a bad schedule fails here, before any work; every step (the default) needs no look at the start steps
        skips = not sched.full and sched.skips({int(v) for v in tt.tolist()}, self.T)
        if skips and fn.schedule_mode(options or {}) == "refused":
            raise ScheduleError(fn.refusal)
        kw = {"schedule": sched} if skips and getattr(fn, "takes_schedule", False) else {}
        R = self.R
        graphed = self.cuda_graphs and self.device.type == "cuda" and callback is None
        if graphed:  # one GraphedRestorer per run: its captured graphs serve every later batch

            R = self._cache.setdefault("graphed_R", GraphedRestorer(self.R))
        n = int(x_t.shape[0])
        spans = list(batches(n, batch_size))

        def calls_of(lo, hi):  # network calls of one batch: the progress bar's length
            if fn.one_call:
                return 1
            if not skips:
                return int(tt[lo:hi].max())
            return sum(len(sched.for_t(v, self.T)) - 1 for v in {int(v) for v in tt[lo:hi].tolist()})

        calls = sum(calls_of(lo, hi) for lo, hi in spans) if n else 0

        def tick(s, x_s, x0_hat):
            bar.update(1)
            threads.adapt()   # a long sampling run gives cores back to (or takes them from) other processes
            if callback is not None:
                callback(s, x_s, x0_hat)

        bad_in = ~torch.isfinite(x_t.float()).flatten(1).all(1) if n else torch.zeros(0, dtype=torch.bool)
        if bool(bad_in.any()):  # the input (or the start state), not the network
            raise InputError(f"{int(bad_in.sum())} of {n} input image(s) of {sampler} hold NaN/Inf values (e.g. image "
                             f"{int(bad_in.nonzero()[0])}): the input or start state is broken, not the network; "
                             "check the images (or the run's generation/gmm-k*.json)")
        outs = []
        bar = progress_bar(calls, desc or f"{self.name}: {sampler}", progress)  # closed below, whatever happens
        try:
            for lo, hi in spans:
                xb = x_t[lo:hi].to(self.device)
                cb = context_to(context_slice(ctx, lo, hi, n), self.device)
                outs.append(fn(R, self.D, xb, tt[lo:hi].to(self.device), cb, callback=None if graphed else tick,
                               generator=generator, **kw, **(options or {})).float().cpu())
                self._check_finite(outs[-1], sampler)
                if graphed:  # a graph has no per-step hook: the bar moves per batch
                    bar.update(calls_of(lo, hi))
        finally:
            bar.close()
        return torch.cat(outs) if outs else x_t.float().cpu()

    def check_images(self, x: Any, what: str) -> torch.Tensor:
        """``x`` as a float (N, C, H, W) tensor with this run's channels (numpy arrays accepted): the shared
        argument check (:func:`colddiff.validate.images`), naming ``what``."""
        return images(x, what, self.cfg.data.channels, owner=f"the run {self.name}")

    def _check_finite(self, x: torch.Tensor, sampler: str) -> None:
        """Refuse NaN/Inf restorations: they would become black PNGs and silently wrong metrics."""
        bad = ~torch.isfinite(x).flatten(1).all(1)
        if bool(bad.any()):
            raise InputError(f"the network of {self.checkpoint} returned NaN/Inf for {int(bad.sum())} of {x.shape[0]} "
                             f"image(s) ({sampler}): its weights are broken (training diverged?); use an earlier "
                             "checkpoint or retrain with a lower train.lr")

    def degrade(self, x0: torch.Tensor, t, ctx: Any = None, batch_size: int = 64) -> torch.Tensor:
        """The degraded images x_t = D.observe(x0, t, ctx) (rounded where the family quantises, like the
        authors' inpainting x_T) for N images, computed in batches on the run's device, returned on the CPU."""
        x0 = self.check_images(x0, "x0")
        n = int(x0.shape[0])
        tt = self.D.as_t(t, x0).cpu()
        outs = []
        with torch.no_grad():
            for lo, hi in batches(n, batch_size):
                cb = context_to(context_slice(ctx, lo, hi, n), self.device)
                outs.append(self.D.observe(x0[lo:hi].to(self.device), tt[lo:hi].to(self.device), cb).float().cpu())
        return torch.cat(outs) if outs else x0.float().cpu()

    def dataset(self, split: str = "test"):
        """The run's data set split (the test split when it has one, else an error naming the splits)."""
        if split not in self._cache:
            c = self.cfg.data
            self._cache[split] = data.load(c.name, split, root=c.root or None, image_size=c.image_size,
                                           channels=c.channels)
        return self._cache[split]

    def held_out(self):
        """(dataset, split name): the test split, or the training split (with a note) when there is none."""
        try:
            return self.dataset("test"), "test"
        except ColddiffError:
            return self.dataset("train"), "train"

    @property
    def name(self) -> str:
        """The preset when the run trains the preset's own data, else its data set and degradation."""
        from .config import run_name

        if self.cfg.preset == "custom" and not self.cfg.data.name.startswith("folder:"):
            return self.folder.name
        return run_name(self.cfg)

    @property
    def T(self) -> int:
        return int(self.D.T)


def _find_checkpoint(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint file) for a run folder or a checkpoint file."""
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            what = "an image" if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp") else "a file"
            raise InputError(f"RUN {path} is {what}, not a run: give the run folder written by `colddiff train --out "
                             "DIR` (or one of its checkpoints/ckpt-XXXXXXXX.safetensors)")
        folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return folder, path
    if path.is_dir():
        if ckpt_io.is_export(path):  # an exported model folder (colddiff export): its one weights file
            return path, path / ckpt_io.WEIGHTS
        latest = ckpt_io.find_latest(path / "checkpoints") or ckpt_io.find_latest(path)
        half = [f for f in (ckpt_io.WEIGHTS, ckpt_io.CONFIG) if (path / f).is_file()]
        if latest is None and len(half) == 1:  # one of the two files of an exported model folder
            lacking = ({ckpt_io.WEIGHTS, ckpt_io.CONFIG} - set(half)).pop()
            raise InputError(f"{path} looks like an exported model folder but lacks {lacking} (it has only "
                             f"{half[0]}); an export needs both: run `colddiff export RUN --out {path}` again")
        if latest is None:
            raise InputError(f"{path} holds no checkpoint (looked in {path / 'checkpoints'}); train one with "
                             f"`colddiff train --preset NAME --out {path}` or give a run folder that has one")
        return path, latest
    raise InputError(f"run not found: {path}; give a run folder written by `colddiff train --out DIR`, "
                     "a checkpoint file (ckpt-XXXXXXXX.safetensors), a folder written by `colddiff export` "
                     "or hf://owner/name")


def load_run(path, device: str = "auto", ema: bool = True, checkpoint: Optional[str] = None,
             cuda_graphs: bool = False) -> Run:
    """Load a run folder (its latest checkpoint, or ``checkpoint``), a checkpoint file, an exported model
    folder (or its ``model.safetensors``), or ``hf://owner/name[@revision]`` (needs huggingface_hub).

    ``cuda_graphs``: replay sampling loops from CUDA graphs on a GPU (``colddiff.graphs``; no effect on a CPU)."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"load_run's path must be a run folder, checkpoint file or hf://owner/name (a str or "
                         f"pathlib.Path), got {type(path).__name__} {path!r:.40}")
    for name, v in (("device", device), ("checkpoint", checkpoint)):
        if v is not None and not isinstance(v, (str, os.PathLike)):
            raise InputError(f"load_run's {name} must be text, got {type(v).__name__} {v!r:.40}")
    if str(path).startswith(hub.HF_PREFIX):
        path = hub.resolve_hf(str(path))
    folder, ck_path = _find_checkpoint(Path(path).expanduser())
    if checkpoint:
        ck_path = Path(checkpoint)
    dev = resolve_device(device)
    if ckpt_io.is_model_file(ck_path):  # exported: one set of weights, no optimizer
        ck = ckpt_io.load_model_file(ck_path)
        if ck.ema and not ema:
            raise InputError(f"{ck_path} holds only the EMA weights (an exported model); --raw needs the run "
                             "folder it was exported from")
    else:
        ck = ckpt_io.load_checkpoint(ck_path)
    try:
        cfg = RunConfig.from_dict(ck.config)
    except ConfigError as e:
        raise InputError(f"checkpoint {ck_path} has an unreadable config ({e})") from None
    model = cfg.build_model()
    weights = ck.weights(ema=ema)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise InputError(f"checkpoint {ck_path} does not match its own network config ({first})") from None
    model.to(dev).eval().requires_grad_(False)
    return Run(folder=folder, checkpoint=ck_path, cfg=cfg, step=ck.step, model=model, D=cfg.build_degradation(),
               device=dev, ema=bool(ema and ck.ema), precision=cfg.train.precision, cuda_graphs=bool(cuda_graphs))

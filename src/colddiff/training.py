"""Training the restoration network R with the paper's recipe (Cold Diffusion, Sec. 3.1).

``train(cfg, out)`` is one loop a reader can follow top to bottom, in named parts: the request
checked (:func:`check_request`), :func:`set_up` (device, DDP, data, network, resume), the
:func:`step_loop`, and the :class:`Hooks` around each step (callbacks, logs, sample grids,
checkpoints, summary).  ``train_step`` is its optimizer step (the benchmarks time the same
function); the objective it minimises, Eq. 1, is :mod:`colddiff.objective`:

    for each optimizer step:
        for each of grad_accum micro-batches:
            x0 ~ data, t ~ U{1..T}, ctx = D.context(x0)      # per-trajectory randomness
            loss = | R(D(x0, t, ctx), t) - x0 |_1            # Eq. 1
            backward
        (clip) Adam step, EMA update, log, sample grid, checkpoint

It never loses work: checkpoints are written atomically and hold everything needed to
continue *exactly* (weights, EMA, optimizer, step, data position, every RNG state), so a
run killed at any moment and resumed ends bit-identical to an uninterrupted one (on CPU).
Ctrl-C or SIGTERM saves a checkpoint at the next step boundary and exits cleanly; a NaN or
Inf loss stops with the step named and the last good checkpoint kept.

Multi-process: launched by ``torchrun``, every process trains on its own slice of each
global batch under DistributedDataParallel; only rank 0 logs and writes files.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from . import checkpoint as ckpt_io
from . import data as data_mod
from . import extras, speed, threads
from .config import RunConfig, check_resumable
from .data import augment as augment_mod
from .degradations import context_to
from .devices import autocast as precision_autocast
from .devices import check_network_fits
from .devices import resolve_device as _resolve_device
from .errors import ColddiffError, ConfigError, OutputError
from .fileio import TMP_PREFIX, atomic_path, os_problem, remove_stale
from .images import atomic_save, make_grid
from .objective import degrade_batch, l1_loss
from .outputs import RunLock
from .samplers import SAMPLERS, algorithm2, direct

Callback = Callable[[Dict[str, Any]], None]
log = logging.getLogger("colddiff.training")
LOGGERS = ("none", "tensorboard", "wandb")   # where the scalars go besides metrics.jsonl


class TrainingError(ColddiffError):
    """Training stopped (non-finite loss, ...); the message names the step and what is kept."""


# ---------------------------------------------------------------------------- set-up helpers
def dist_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 when not launched by it)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    return _resolve_device(spec, local_rank, hint="--set train.device=cpu")


def resume_config(out, sets: Sequence[str] = ()) -> RunConfig:
    """The configuration of the run in ``out`` (from its latest checkpoint's header) with ``sets`` applied.

    Only train.* (and data.num_workers / data.root) may change; :func:`train` refuses the rest.
    """
    out = Path(out)
    latest = ckpt_io.find_latest(out / "checkpoints")
    if latest is None:
        raise nothing_to_resume(out, clear_partial(out))
    saved, _ = ckpt_io.read_meta(latest)
    cfg = RunConfig.from_dict(saved).override(list(sets))
    check_resumable(saved, cfg, f"the run in {out}")
    return cfg


def clear_partial(out) -> int:
    """Remove what a run killed mid-write left (a half-written checkpoint, a temporary log): how many files."""
    out = Path(out)
    return remove_stale(out / "checkpoints") + remove_stale(out, ("metrics.tmp", TMP_PREFIX + "*"))


def nothing_to_resume(out, stale: int) -> ConfigError:
    return ConfigError(f"nothing to resume in {out}: it has no complete checkpoint"
                       + (f" (removed {stale} partial file(s) left by a run killed while writing its first "
                          "checkpoint)" if stale else "")
                       + "; start it again with --preset/--config and --out instead of --resume")


def lr_at(cfg: RunConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then constant."""
    w = cfg.train.warmup_steps
    return cfg.train.lr * min(1.0, (step + 1) / w) if w > 0 else cfg.train.lr


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the weights' bytes: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        # flatten: a channels_last tensor may count as contiguous with strides a byte view refuses
        h.update(v.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class BatchStream:
    """Seeded, resumable order of training images.

    Epoch ``e`` visits the images in ``randperm(n)`` seeded by (seed, e).  Every micro-batch
    takes ``batch_size × world_size`` images; process ``rank`` uses its own slice.  The state
    is (epoch, position): nothing else is needed to continue the same order after a restart.
    """

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 num_workers: int = 0, epoch: int = 0, position: int = 0, device: Optional[torch.device] = None,
                 augment: str = ""):
        self.ds, self.B, self.seed, self.rank, self.world = dataset, batch_size, seed, rank, world
        self.device = device  # a CUDA device: batches come in pinned memory, for non-blocking copies
        if num_workers == -1:  # data.num_workers=-1: auto (speed.auto_workers)
            lazy = not isinstance(getattr(dataset, "images", None), torch.Tensor) and not hasattr(dataset, "get_batch")
            num_workers = speed.auto_workers(device or torch.device("cpu"), lazy, world)
        # data.augment: flips/crops drawn from a generator seeded by (seed, epoch, position, rank),
        # so the batch at a given place in the order is the same after a resume
        self.augment = augment_mod.parse(augment)
        self.num_workers = num_workers
        self.epoch, self.position = epoch, position
        self.n = len(dataset)
        if self.n < batch_size * world:
            raise ConfigError(f"the training set has {self.n} images, fewer than one global batch "
                              f"({batch_size} x {world} processes); lower train.batch_size")
        self._iter = None
        self._perm_cache = (None, None)

    def _perm(self, epoch: int) -> torch.Tensor:
        if self._perm_cache[0] != epoch:  # drawn once per epoch, not once per batch
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm_cache = (epoch, torch.randperm(self.n, generator=g))
        return self._perm_cache[1]

    def _epoch_batches(self) -> List[List[int]]:
        perm = self._perm(self.epoch)
        gb = self.B * self.world
        out = []
        keyed = getattr(self.ds, "crops_at_load", False)  # photos cut to random crops when read
        for start in range(self.position, self.n - gb + 1, gb):
            lo = start + self.rank * self.B
            idx = perm[lo:lo + self.B].tolist()
            out.append([(i, augment_mod.item_key(self.seed, self.epoch, lo + k)) for k, i in enumerate(idx)]
                       if keyed else idx)
        return out

    def _batches_from_here(self):
        """Every later batch of this process, epoch after epoch: one DataLoader (and its workers) for the run."""
        epoch, first = self.epoch, True
        while True:
            saved = self.epoch, self.position
            self.epoch, self.position = epoch, (saved[1] if first else 0)
            batches = self._epoch_batches()
            self.epoch, self.position = saved
            yield from batches
            epoch, first = epoch + 1, False

    def next(self) -> torch.Tensor:
        gb = self.B * self.world
        if self.position + gb > self.n:  # drop the incomplete tail: every batch is full
            self.epoch, self.position = self.epoch + 1, 0
        pin = self.device is not None and self.device.type == "cuda"
        if isinstance(getattr(self.ds, "images", None), torch.Tensor) and self.ds.images.is_floating_point():
            perm = self._perm(self.epoch)
            lo = self.position + self.rank * self.B
            x = self.ds.images[perm[lo:lo + self.B]]
            x = x.pin_memory() if pin else x
        elif hasattr(self.ds, "get_batch") and self.num_workers == 0:  # a prepared array: one index operation
            perm = self._perm(self.epoch)
            lo = self.position + self.rank * self.B
            x = self.ds.get_batch(perm[lo:lo + self.B])
            x = x.pin_memory() if pin else x
        else:
            if self._iter is None:
                loader = torch.utils.data.DataLoader(self.ds, batch_sampler=self._batches_from_here(),
                                                     **speed.loader_kwargs(self.num_workers, self.device))
                self._iter = iter(loader)
            item = next(self._iter)
            x = item[0] if isinstance(item, (list, tuple)) else item
        if self.augment:
            x = augment_mod.apply(x, self.augment,
                                  augment_mod.batch_generator(self.seed, self.epoch, self.position, self.rank))
            x = x.pin_memory() if pin else x
        self.position += gb
        return x

    def state(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}


class _StopFlag:
    """SIGINT/SIGTERM set a flag checked at step boundaries; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _rng_state(gen: torch.Generator, device: torch.device) -> Dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "train": gen.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Dict[str, torch.Tensor], gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["train"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------------------- train(): the three parts
def train(cfg: RunConfig, out, resume: bool = False, callbacks: Sequence[Callback] = (),
          progress: bool = True, log_to: str = "none") -> Dict[str, Any]:
    """Train ``cfg`` into the run folder ``out``; with ``resume`` continue from its latest checkpoint.

    The folder must be new, empty or a run (:func:`colddiff.outputs.claim_run_folder`) and is locked
    while training (:class:`colddiff.outputs.RunLock`): a second ``train`` into it is refused.
    Progress: a tqdm bar when ``progress`` and stderr is a terminal; otherwise one line through
    Python ``logging`` (logger ``colddiff.training``, level INFO) every ``train.log_every`` steps.
    ``log_to``: where the scalars go besides ``metrics.jsonl``: ``tensorboard`` (OUT/tensorboard/),
    ``wandb`` (Weights & Biases, project ``colddiff``) or ``none`` (the default).
    Returns a summary dict (also written to ``train_summary.json`` by rank 0).

    The parts, in order: :func:`check_request` (before the run folder exists), :func:`set_up`
    (device, DDP, data, D, network, optimizer, resume), :func:`step_loop` (``train_step`` after
    ``train_step``) calling the :class:`Hooks` (callbacks, logs, sample grids, checkpoints, summary).
    """
    cfg = check_request(cfg, log_to)
    out = Path(out)
    data_mod.folders.check_out_outside(cfg.data.name, out)  # a run inside its own data folder: refused
    if dist_env()[0] != 0:  # under torchrun rank 0 holds the lock for all
        return _train(cfg, out, resume, callbacks, progress, log_to)
    with RunLock(out):
        return _train(cfg, out, resume, callbacks, progress, log_to)


def _train(cfg: RunConfig, out: Path, resume: bool, callbacks: Sequence[Callback], progress: bool,
           log_to: str) -> Dict[str, Any]:
    run = set_up(cfg, out, resume)
    hooks = Hooks(run, callbacks, progress, log_to, resume)
    with _StopFlag() as stop:
        stopped_early = step_loop(run, hooks, stop)
    return hooks.finish(stopped_early)


# ---------------------------------------------------------------------------- part 0: the request
def check_request(cfg: RunConfig, log_to: str = "none") -> RunConfig:
    """The validated copy of ``cfg``; one-line ConfigErrors, before any folder or file is made, for what
    cannot run here: an unknown sampler or ``--log`` back end, a logging package that is missing, broken or
    too old, a preset that needs a data folder, a data.root that is not a folder."""
    if isinstance(cfg.generation.sampler, str) and cfg.generation.sampler not in SAMPLERS:  # what it generates with
        raise ConfigError(f"generation.sampler {cfg.generation.sampler!r} is unknown; samplers: {', '.join(SAMPLERS)}")
    if log_to not in LOGGERS:
        raise ConfigError(f"--log must be one of {', '.join(LOGGERS)}, got {log_to!r}")
    if log_to != "none":
        _Scalars.require(log_to)
    cfg = cfg.copy().validate()
    if cfg.data.name == "folder:":
        raise ConfigError(f"preset {cfg.preset} trains on a folder of your images: add --set data.name=folder:PATH "
                          "(a folder of image files, e.g. 32-pixel crops of your photos)")
    if cfg.data.root and not Path(cfg.data.root).expanduser().is_dir():
        raise ConfigError(f"data.root {cfg.data.root} is not a folder; give the folder that holds {cfg.data.name}'s "
                          "files, or leave data.root empty to use the default places")
    return cfg


# ---------------------------------------------------------------------------- part 1: set-up
@dataclass
class Session:
    """What :func:`set_up` hands to the step loop and its hooks: one process's share of a run."""

    cfg: RunConfig
    out: Path
    device: torch.device
    rank: int
    world: int
    parts: StepParts               # model, EMA, optimizer, Eq. 1, data stream, D, generator (train_step's)
    autocast: Any                  # the run's precision (devices.autocast)
    step: int = 0                  # optimizer steps done
    elapsed_before: float = 0.0    # seconds trained before this resume
    log_window: Optional[list] = None  # [sum, count] of the losses since the last log line (resume)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def ckdir(self) -> Path:
        return self.out / "checkpoints"


def set_up(cfg: RunConfig, out: Path, resume: bool) -> Session:
    """Device and DDP, the checkpoint to continue from, data, D, network (identical initial weights on every
    process), optimizer and generator, restored from that checkpoint when resuming.  Writes nothing but the
    removal of what a killed run left half-written."""
    rank, world, local_rank = dist_env()
    tr = cfg.train
    device = _start_device(cfg, local_rank, world)
    latest = _checkpoint_to_continue(cfg, out, resume, rank)
    ds = data_mod.load(cfg.data.name, "train", root=cfg.data.root or None,
                       image_size=cfg.data.image_size, channels=cfg.data.channels)
    if rank == 0:
        _warn_channels(cfg, ds)
    D = cfg.build_degradation()
    torch.manual_seed(tr.seed)
    model = cfg.build_model().to(device)
    ema = cfg.build_model().to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False).eval()
    if tr.channels_last:  # before the optimizer exists, so its moments take the same layout
        model.to(memory_format=torch.channels_last)
        ema.to(memory_format=torch.channels_last)
    opt = speed.make_adam(model.parameters(), tr.lr, device, tr.fused_adam)
    scaler = torch.amp.GradScaler("cuda") if tr.precision == "fp16" else None
    gen = torch.Generator(device=device).manual_seed(tr.seed * 7919 + 17 + rank)
    torch.manual_seed(tr.seed + 1 + rank)  # dropout etc.: a different stream per process
    stream = BatchStream(ds, tr.batch_size, tr.seed, rank, world, cfg.data.num_workers, device=device,
                         augment=cfg.data.augment)
    autocast = precision_autocast(device, tr.precision)
    parts = StepParts(model, ema, opt, None, stream, D, gen, scaler=scaler, world=world)
    run = Session(cfg, out, device, rank, world, parts, autocast)
    if latest is not None:
        _restore(run, ckpt_io.load_checkpoint(latest))
        if run.step >= tr.steps:
            raise ConfigError(f"the run in {out} is already at step {run.step} of train.steps={tr.steps}; "
                              f"extend it with `colddiff train --resume {out} --set train.steps=N` (N > {run.step})")
    if world > 1:
        parts.net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    net = parts.net if parts.net is not None else model
    parts.loss_fn = speed.compiled(l1_loss(net, autocast, tr.channels_last), tr.compile)  # Eq. 1
    return run


def _start_device(cfg: RunConfig, local_rank: int, world: int) -> torch.device:
    """This process's device, checked against the precision and the network's size; the process group
    under torchrun; deterministic algorithms and TF32 as configured."""
    tr = cfg.train
    device = resolve_device(tr.device, local_rank)
    if tr.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA GPU; use bf16 or fp32 on the CPU")
    check_network_fits(cfg, device)  # a huge model.dim: one line now, not an allocator crash later
    if world > 1 and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if tr.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _checkpoint_to_continue(cfg: RunConfig, out: Path, resume: bool, rank: int) -> Optional[Path]:
    """The latest checkpoint when resuming (None for a new run); refuses a resume with nothing to continue,
    a new run over an old one, and a resume that changes more than train.* (the resume rule)."""
    stale = clear_partial(out) if rank == 0 else 0
    latest = ckpt_io.find_latest(out / "checkpoints")
    if resume and latest is None:
        raise nothing_to_resume(out, stale)
    if not resume and latest is not None:
        raise ConfigError(f"{out} already holds a run (checkpoint {latest.name}); continue it with "
                          f"`colddiff train --resume {out}` or choose another --out")
    if resume:
        check_resumable(ckpt_io.read_meta(latest)[0], cfg, f"the run in {out}")
    return latest if resume else None


def _restore(run: Session, ck) -> None:
    """Continue exactly where checkpoint ``ck`` stopped: weights, EMA, optimizer, step, data position, RNG."""
    p, tr = run.parts, run.cfg.train
    p.model.load_state_dict(ck.model)
    p.ema.load_state_dict(ck.ema or ck.model)
    if ck.optimizer is not None:
        p.opt.load_state_dict(ck.optimizer)
        speed.match_optimizer_layout(p.opt)
    run.step = step = ck.step
    st = ck.state
    p.stream.epoch, p.stream.position = int(st.get("epoch", 0)), int(st.get("position", 0))
    run.elapsed_before = float(st.get("elapsed", 0.0))
    run.log_window = st.get("log_window")
    if p.scaler is not None and st.get("grad_scaler"):
        p.scaler.load_state_dict(st["grad_scaler"])
    rank_rng = {k.split(".", 1)[1]: v for k, v in ck.rng.items() if k.startswith(f"rank{run.rank}.")}
    if rank_rng and int(st.get("world_size", 1)) == run.world:
        _set_rng_state(rank_rng, p.gen, run.device)
    else:  # a different number of processes: continue reproducibly, but not bit-exactly
        p.gen.manual_seed(tr.seed * 7919 + 17 + run.rank + 1_000_003 * step)
        torch.manual_seed(tr.seed + 1 + run.rank + 1_000_003 * step)


# ---------------------------------------------------------------------------- part 2: the step loop
def step_loop(run: Session, hooks: "Hooks", stop: "_StopFlag") -> bool:
    """Optimizer steps until train.steps, or until Ctrl-C/SIGTERM asks to stop (then one checkpoint at the
    step boundary); returns whether it stopped early."""
    steps = run.cfg.train.steps
    run.parts.model.train()
    while run.step < steps:
        lr = lr_at(run.cfg, run.step)  # as train_step sets it: for the log and the callbacks
        loss_sum = train_step(run.cfg, run.step, run.parts)
        run.step += 1
        changed = threads.adapt()   # every few seconds: the cores other processes leave free now
        if changed is not None and run.is_main:
            log.info("step %d: %d CPU thread(s) now (the machine's load changed)", run.step, changed)
        hooks.after_step(run.step, lr, loss_sum, stop.requested)
        if stop.requested:
            hooks.at_stop(run.step)
            return run.step < steps
    return False


# ---------------------------------------------------------------------------- part 3: the hooks
class Hooks:
    """What the step loop does around the steps: the callbacks, the progress bar and log lines (metrics.jsonl,
    ``--log``), the sample grids, the checkpoints, and at the end the summary.  Only rank 0 writes."""

    def __init__(self, run: Session, callbacks: Sequence[Callback] = (), progress: bool = True,
                 log_to: str = "none", resume: bool = False):
        self.run, self.callbacks = run, list(callbacks)
        cfg, tr = run.cfg, run.cfg.train
        self.scalars = _Scalars.open(log_to, run.out, cfg, resume) if run.is_main else None
        if run.is_main:
            run.out.mkdir(parents=True, exist_ok=True)
            cfg.save(run.out / "config.toml")
            _truncate_metrics(run.out / "metrics.jsonl", run.step)
        self.sample_batch = (_fixed_batch(cfg, run.parts.D, data_mod, run.parts.stream.ds)
                             if run.is_main and tr.sample_every else None)
        self.bar = None
        if run.is_main and progress and _on_terminal():  # a bar on a terminal; log lines in files, CI and notebooks
            from tqdm.auto import tqdm

            from .config import run_name

            self.bar = tqdm(total=tr.steps, initial=run.step, desc=f"train {run_name(cfg)}", unit="step",
                            dynamic_ncols=True)
        self.t_start = time.time()
        self.acc = speed.LossAccumulator(run.device)  # the loss stays on the device until it is logged
        if run.log_window:
            self.acc.sum.fill_(float(run.log_window[0]))
            self.acc.n = int(run.log_window[1])
        self.t_log, self.imgs_log = time.time(), 0
        self.last_loss = self.mean_loss = self.loss_value = float("nan")
        self.read_this_step = False

    def after_step(self, step: int, lr: float, loss_sum: torch.Tensor, stopping: bool) -> None:
        """After optimizer step ``step`` (1-based): the loss (stop if not finite), callbacks, log, samples, checkpoint."""
        run, tr = self.run, self.run.cfg.train
        self.acc.add(loss_sum, step)
        # Read the loss back (a host-device sync) only where it is used: on a GPU at log, checkpoint and
        # final steps (a non-finite loss is remembered on the device with its step); on a CPU, where reading
        # costs nothing, at every step.
        self.read_this_step = (run.device.type != "cuda" or bool(self.callbacks) or stopping or step == tr.steps
                               or step % tr.checkpoint_every == 0 or bool(tr.log_every and step % tr.log_every == 0))
        if self.read_this_step:
            self._read_loss(step)
        self.last_loss = self.loss_value
        self.imgs_log += tr.batch_size * tr.grad_accum * run.world
        p = run.parts
        for cb in self.callbacks:
            cb({"step": step, "loss": self.loss_value, "lr": lr, "model": p.model, "ema": p.ema, "out": run.out})
        if run.is_main:
            self._log(step, lr)
            if tr.sample_every and (step % tr.sample_every == 0 or step == tr.steps):
                _write_samples(run.out / "samples" / f"step-{step:08d}.png", self.sample_batch, p.ema, p.D,
                               run.autocast)
        if step % tr.checkpoint_every == 0 or step == tr.steps:
            self.save(step)

    def at_stop(self, step: int) -> None:
        """Asked to stop (Ctrl-C, SIGTERM): a checkpoint at this step boundary, never of a non-finite loss."""
        tr = self.run.cfg.train
        if not self.read_this_step:  # asked to stop during this step
            self._read_loss(step)
        if step % tr.checkpoint_every != 0 and step != tr.steps:
            self.save(step)

    def _read_loss(self, step: int) -> None:
        self.mean_loss, self.loss_value, bad_step = self.acc.read()
        _stop_if_not_finite(bad_step, self.loss_value, step, self.run.ckdir)

    def _log(self, step: int, lr: float) -> None:
        """The progress bar's postfix, and every train.log_every steps a log line (metrics.jsonl, ``--log``, logging)."""
        run, tr = self.run, self.run.cfg.train
        now = time.time()
        rate = self.imgs_log / max(now - self.t_log, 1e-9)
        if self.bar is not None:
            self.bar.update(1)
            if step % max(1, min(tr.log_every, 10)) == 0 and math.isfinite(self.loss_value):
                self.bar.set_postfix(loss=f"{self.loss_value:.4f}", img_s=f"{rate:.0f}")
        if tr.log_every and (step % tr.log_every == 0 or step == tr.steps):
            rec = {"step": step, "loss": self.mean_loss, "lr": lr, "images_per_s": rate,
                   "time": run.elapsed_before + (now - self.t_start), "epoch": run.parts.stream.epoch}
            _append_jsonl(run.out / "metrics.jsonl", rec)
            if self.bar is None:
                log.info("step %d/%d  loss %.4f  lr %.2e  %.0f images/s", step, tr.steps, self.mean_loss, lr, rate)
            if self.scalars is not None:
                self.scalars.log(rec, step)
            self.t_log, self.imgs_log = now, 0
            self.acc.reset()

    def save(self, step: int) -> Optional[Path]:
        """Checkpoint ``step`` (every process's RNG gathered; rank 0 writes it, then prunes to train.keep_last)."""
        run, p = self.run, self.run.parts
        rng_all = _gather_rng(_rng_state(p.gen, run.device), run.world > 1, run.world)
        if not run.is_main:
            return None
        state = {"step": step, **p.stream.state(), "elapsed": run.elapsed_before + (time.time() - self.t_start),
                 "world_size": run.world, "torch": torch.__version__,
                 "log_window": [float(self.acc.sum), self.acc.n]}  # a resumed run's next log line averages the same steps
        if p.scaler is not None:
            state["grad_scaler"] = p.scaler.state_dict()  # plain floats and ints
        try:
            path = ckpt_io.save_checkpoint(ckpt_io.checkpoint_path(run.ckdir, step), config=run.cfg.to_dict(),
                                           model=p.model.state_dict(), ema=p.ema.state_dict(),
                                           optimizer=p.opt.state_dict(), rng=rng_all, state=state)
        except OutputError as e:
            kept = ckpt_io.find_latest(run.ckdir)
            raise OutputError(f"{e}; training stopped at step {step}: "
                              + (f"continue from {kept.name} with `colddiff train --resume {run.out}` once it can be "
                                 "written" if kept else "no checkpoint was saved yet, start again once it can be "
                                 "written")) from None
        ckpt_io.prune(run.ckdir, run.cfg.train.keep_last)
        return path

    def finish(self, stopped_early: bool) -> Dict[str, Any]:
        """The summary (every process's weights digest; rank 0 writes train_summary.json); closes the bar and ``--log``."""
        run = self.run
        if self.bar is not None:
            self.bar.close()
        digests = _gather_digests(run.parts.model, run.world > 1, run.world)
        summary = {"preset": run.cfg.preset, "step": run.step, "steps": run.cfg.train.steps,
                   "stopped_early": stopped_early, "final_loss": self.last_loss,
                   "elapsed_s": run.elapsed_before + (time.time() - self.t_start),
                   "world_size": run.world, "device": str(run.device), "weights_sha256": digests,
                   "ranks_agree": len(set(digests)) == 1,
                   "checkpoint": str(ckpt_io.find_latest(run.ckdir)) if run.is_main else None}
        if run.is_main:
            with atomic_path(run.out / "train_summary.json") as tmp:
                Path(tmp).write_text(json.dumps(summary, indent=2))
        if self.scalars is not None:
            self.scalars.close()
        if run.world > 1:
            torch.distributed.barrier()
        return summary


# ---------------------------------------------------------------------------- one step
@dataclass
class StepParts:
    """What one optimizer step uses and changes.

    ``loss_fn(x_t, t, x0)`` is Eq. 1 on ``net`` (the DistributedDataParallel wrapper of ``model``
    when ``world`` > 1, else ``model`` itself): ``speed.compiled(objective.l1_loss(net, ...))``; ``scaler`` is fp16's
    GradScaler (None otherwise); ``stream``, ``D`` and ``gen`` give each micro-batch's x0, its t,
    context and input noise.
    """

    model: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    stream: BatchStream
    D: Any
    gen: torch.Generator
    net: Optional[torch.nn.Module] = None  # None: model
    scaler: Optional[torch.amp.GradScaler] = None
    world: int = 1


def train_step(cfg: RunConfig, step: int, p: StepParts) -> torch.Tensor:
    """Optimizer step ``step`` (0-based) as :func:`train` takes it; returns its loss, on the device.

    The learning rate of the step (``lr_at``); for each of ``grad_accum`` micro-batches: the next
    x0, ``objective.degrade_batch`` (input noise included), forward, L1 loss (Eq. 1), backward (scaled for
    fp16; under DDP the gradients are all-reduced on the last micro-batch only); then the loss
    averaged over the processes, (unscale,) gradient clipping, the Adam step, ``zero_grad`` and,
    every ``ema_every`` steps, the EMA update.  Nothing here reads a value back from the device
    (but fp16's ``GradScaler.step``, which checks for inf gradients on the host).
    """
    tr = cfg.train
    device = p.gen.device
    net = p.net if p.net is not None else p.model
    for group in p.opt.param_groups:
        group["lr"] = lr_at(cfg, step)
    loss_sum = torch.zeros((), device=device)
    for micro in range(tr.grad_accum):
        x0 = p.stream.next().to(device, non_blocking=True)
        x_t, t = degrade_batch(p.D, x0, p.gen, input_noise=cfg.degradation.input_noise)
        sync = (contextlib.nullcontext() if p.world == 1 or micro == tr.grad_accum - 1
                else net.no_sync())
        with sync:
            loss = p.loss_fn(x_t, t, x0) / tr.grad_accum  # Eq. 1
            (p.scaler.scale(loss) if p.scaler is not None else loss).backward()
        loss_sum += loss.detach()
    if p.world > 1:
        torch.distributed.all_reduce(loss_sum)
        loss_sum /= p.world
    if p.scaler is not None:
        p.scaler.unscale_(p.opt)
    if tr.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(p.model.parameters(), tr.grad_clip)
    if p.scaler is not None:
        p.scaler.step(p.opt)
        p.scaler.update()
    else:
        p.opt.step()
    p.opt.zero_grad(set_to_none=True)
    if step % tr.ema_every == 0:  # the authors' Trainer: after step s (0-based) when s % every == 0, a copy
        _update_ema(p.ema, p.model, tr.ema_decay, reset=step < tr.ema_start)  # before s = ema_start
    return loss_sum


# ---------------------------------------------------------------------------- pieces
def _stop_if_not_finite(bad_step: int, loss_value: float, step: int, ckdir: Path) -> None:
    """The TrainingError of a non-finite loss (first seen at ``bad_step``; 0 = none), naming what is kept."""
    if not bad_step:
        return
    kept = ckpt_io.find_latest(ckdir)
    raise TrainingError(
        f"loss became {loss_value if bad_step == step else 'non-finite'} at step {bad_step}; training stopped. "
        + (f"The last good checkpoint is {kept} (step {ckpt_io.list_checkpoints(ckdir)[-1][0]}); "
           if kept else "No checkpoint was written yet; ")
        + "lower train.lr or set train.grad_clip, then resume")


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, reset: bool) -> None:
    """EMA of the weights; before ``ema_start`` the EMA simply follows the weights (as the authors do).

    One fused ``foreach`` call for all floating-point tensors: a Python loop of per-tensor
    kernels cost ~10% of a small network's step on a GPU (launch overhead).
    """
    pairs = list(zip(ema.state_dict().values(), model.state_dict().values()))
    e_f = [e for e, p in pairs if e.is_floating_point()]
    p_f = [p for e, p in pairs if e.is_floating_point()]
    if reset:
        torch._foreach_copy_(e_f, p_f)
    else:
        torch._foreach_lerp_(e_f, p_f, 1 - decay)
    for e, p in pairs:
        if not e.is_floating_point():
            e.copy_(p)


def _gather_rng(snapshot: Dict[str, torch.Tensor], distributed: bool, world: int) -> Dict[str, torch.Tensor]:
    cpu = {k: v.cpu() for k, v in snapshot.items()}
    if not distributed:
        return {f"rank0.{k}": v for k, v in cpu.items()}
    gathered: List[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, cpu)
    return {f"rank{r}.{k}": v for r, st in enumerate(gathered) for k, v in st.items()}


def _gather_digests(model, distributed: bool, world: int) -> List[str]:
    d = weights_digest(model)
    if not distributed:
        return [d]
    gathered: List[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, d)
    return gathered


def _append_jsonl(path: Path, rec: Dict[str, Any]) -> None:
    try:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
    except OSError as e:
        raise OutputError(f"{os_problem(e, path)}; training stopped: continue from the last checkpoint with "
                          f"`colddiff train --resume {path.parent}` once it can be written") from None


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint we continue from."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        if isinstance(rec, dict) and _is_step(rec.get("step", 0)) and rec.get("step", 0) <= step:
            keep.append(line)  # lines that are no log record (a number, a list, a text step) are dropped
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(x + "\n" for x in keep))


def _is_step(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _on_terminal() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Scalars:
    """Where the log lines' scalars go besides metrics.jsonl (``--log``): TensorBoard or Weights & Biases.

    Both are optional packages: :meth:`require` checks, before the run folder exists, that the package
    imports and has what is called; :meth:`open` starts it, and a start that fails is one line that leaves
    nothing behind (the folder the back end began is removed again).
    """

    KEYS = ("loss", "lr", "images_per_s")
    # --log KIND: (package, module, the names used, install command, the folder it writes under the run)
    BACKENDS = {"tensorboard": ("tensorboard", "torch.utils.tensorboard", ("SummaryWriter",),
                                "pip install 'colddiff[tensorboard]' (or pip install tensorboard)", "tensorboard"),
                "wandb": ("wandb", "wandb", ("init",), "pip install 'colddiff[wandb]' (or pip install wandb)", "wandb")}

    def __init__(self, kind: str, writer):
        self.kind, self.writer = kind, writer

    @classmethod
    def require(cls, kind: str):
        """The back end's module, or one ConfigError line naming the package and how to install it."""
        package, module, names, how, _ = cls.BACKENDS[kind]
        how = f"{how}; or use --log none (metrics.jsonl is always written)"
        if module != package:  # torch.utils.tensorboard needs the tensorboard package: name that one when missing
            extras.require(package, package=package, needed_for=f"--log {kind}", install=how)
        return extras.require(module, package=package, needed_for=f"--log {kind}", install=how, attrs=names)

    @classmethod
    def open(cls, kind: str, out: Path, cfg: RunConfig, resume: bool) -> Optional["_Scalars"]:
        """A started back end for ``--log kind`` (None for ``none``)."""
        if kind == "none":
            return None
        mod = cls.require(kind)
        package, _, _, _, folder = cls.BACKENDS[kind]
        new = not (out / folder).exists()
        try:
            if kind == "tensorboard":
                return cls(kind, mod.SummaryWriter(str(out / folder)))
            from .config import run_name

            return cls(kind, mod.init(project="colddiff", name=run_name(cfg), dir=str(out), config=cfg.to_dict(),
                                      resume="allow" if resume else None))
        except Exception as e:  # a broken installation, no login, no network: one line, nothing left
            if new:
                shutil.rmtree(out / folder, ignore_errors=True)
            raise extras.start_failed(package, f"--log {kind}", e, "fix it, or train with --log none "
                                      "(metrics.jsonl is always written)") from None

    def log(self, rec: Dict[str, Any], step: int) -> None:
        if self.kind == "tensorboard":
            for k in self.KEYS:
                self.writer.add_scalar(f"train/{k}", rec[k], step)
        else:
            self.writer.log({f"train/{k}": rec[k] for k in self.KEYS}, step=step)

    def close(self) -> None:
        if self.kind == "tensorboard":
            self.writer.close()
        else:
            self.writer.finish()


def _warn_channels(cfg: RunConfig, ds) -> None:
    """A warning when the data's files hold another number of channels than the run trains on."""
    have, want = getattr(ds, "native_channels", None), cfg.data.channels
    if have is None or have == want:
        return
    kind = {1: "grey", 3: "colour"}
    src = f" (preset {cfg.preset})" if cfg.preset != "custom" else ""
    hint = ("; for colour use --preset folder-blur or --set data.channels=3" if have == 3 else
            "; --set data.channels=1 trains on them as they are")
    log.warning("%s holds %s images but this run trains on %d-channel (%s) ones, data.channels=%d%s: they are "
                "converted%s", cfg.data.name, kind.get(have, f"{have}-channel"), want, kind.get(want, "?"), want, src,
                hint)


def _fixed_batch(cfg: RunConfig, D, data_mod, train_ds, n: int = 8):
    """The fixed batch the PNG grids show: the first test images (training images if no test split)."""
    try:
        ds = data_mod.load(cfg.data.name, "test", root=cfg.data.root or None,
                           image_size=cfg.data.image_size, channels=cfg.data.channels)
    except ColddiffError:
        ds = train_ds
    x0 = torch.stack([ds[i][0] for i in range(min(n, len(ds)))])
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    return x0, ctx


@torch.no_grad()
def _write_samples(path: Path, batch, ema, D, autocast) -> None:
    """PNG grid: clean | degraded (t = T) | direct | Algorithm 2, one row per image."""
    x0, ctx = batch
    dev = next(ema.parameters()).device
    x0 = x0.to(dev)
    ctx = context_to(ctx, dev)

    def R(x, t):
        with autocast:
            return ema(x, t).float()

    x_t = D.observe(x0, D.T, ctx)
    cols = [x0, x_t, direct(R, D, x_t, D.T), algorithm2(R, D, x_t, D.T, ctx)]
    rows = [[c[i] for c in cols] for i in range(x0.shape[0])]
    atomic_save(make_grid(rows, col_labels=["clean", f"t={D.T}", "direct", "Alg. 2"]), path)

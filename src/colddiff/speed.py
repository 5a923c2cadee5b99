"""How fast the training step runs, never what it computes: compile, memory format, fused Adam,
a device-side loss accumulator, DataLoader settings.

Every switch here is a ``train.*`` key (``train.compile``, ``train.channels_last``,
``train.fused_adam``) or ``data.num_workers=-1`` (auto), is safe on a CPU (falls back to what
the CPU can do, with the reason in one log line) and keeps exact resume: the same settings
give the same kernels after a restart, and the checkpoint holds the plain module's weights
(``model``, never the compiled wrapper, whose state_dict keys carry ``_orig_mod.``).

Why each helps on a GPU (a measured H100 run was launch-bound: 385 images/s, <1% of peak):
``torch.compile`` fuses the U-Net's many small element-wise kernels (GroupNorm, SiLU, the time
scale/shift, the L1 loss of :mod:`colddiff.objective`) into few; channels_last lets cuDNN pick NHWC tensor-core kernels for
bf16 convolutions without transposes; fused Adam updates every parameter in one kernel instead
of a few per tensor; and the loss is summed on the device and read back only when it is logged,
so the host never waits for the GPU inside a step and keeps queueing work ahead of it.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional

import torch

from .errors import ConfigError

log = logging.getLogger("colddiff.speed")

COMPILE_MODES = ("off", "default", "max-autotune", "reduce-overhead")
FUSED_ADAM = ("auto", "on", "off")


def check_train_speed(tr, data) -> None:
    """One-line ConfigErrors for the speed keys (called by ``RunConfig.validate``)."""
    if tr.compile is False or tr.compile is None:
        tr.compile = "off"
    if tr.compile is True:
        tr.compile = "default"
    if tr.compile not in COMPILE_MODES:
        raise ConfigError(f"train.compile must be one of {', '.join(COMPILE_MODES)}, got {tr.compile!r}")
    if not isinstance(tr.channels_last, bool):
        raise ConfigError(f"train.channels_last must be true or false, got {tr.channels_last!r}")
    if isinstance(tr.fused_adam, bool):
        tr.fused_adam = "on" if tr.fused_adam else "off"
    if tr.fused_adam not in FUSED_ADAM:
        raise ConfigError(f"train.fused_adam must be one of {', '.join(FUSED_ADAM)}, got {tr.fused_adam!r}")
    if isinstance(data.num_workers, bool) or not isinstance(data.num_workers, int) or data.num_workers < -1:
        raise ConfigError(f"data.num_workers must be a whole number >= 0, or -1 for auto, got {data.num_workers!r}")


# ---------------------------------------------------------------------------- memory format
def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-D batch in the network's memory format (a no-op when it already is)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def match_optimizer_layout(opt: torch.optim.Optimizer) -> None:
    """Give every optimizer state tensor its parameter's strides.

    A checkpoint stores tensors contiguous (NCHW); after a resume of a channels_last run the Adam
    moments would differ in layout from their parameters, which a fused/foreach kernel either
    refuses or handles on a slow path.  The values are unchanged, so exact resume holds.
    """
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    opt.state[p][k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


# ---------------------------------------------------------------------------- optimizer
def fused_adam_ok(device: torch.device) -> bool:
    """Whether ``Adam(fused=True)`` runs on ``device`` (CUDA; torch >= 2.4 also has a CPU kernel)."""
    return device.type in ("cuda", "cpu", "mps", "xpu")


def make_adam(params, lr: float, device: torch.device, fused: str = "auto") -> torch.optim.Adam:
    """Adam as the paper trains (lr only); ``fused`` auto = one fused kernel on CUDA, torch's default
    elsewhere (on a CPU the default keeps the numbers of runs made before this switch existed)."""
    use = fused == "on" or (fused == "auto" and device.type == "cuda")
    if use and not fused_adam_ok(device):
        log.warning("train.fused_adam=on: no fused Adam on %s; using the default implementation", device.type)
        use = False
    return torch.optim.Adam(params, lr=lr, fused=True) if use else torch.optim.Adam(params, lr=lr)


# ---------------------------------------------------------------------------- compile
def compiler_available() -> tuple[bool, str]:
    """(ok, reason): torch.compile's inductor back end needs a C++ compiler on a CPU, Triton on CUDA."""
    import shutil

    if not hasattr(torch, "compile"):
        return False, "this torch has no torch.compile"
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not cxx:
        return False, "no C++ compiler (g++/clang++) found for torch.compile's CPU back end"
    return True, ""


def compiled(loss: Callable, mode: str) -> Callable:
    """``loss`` (the training objective, :func:`colddiff.objective.l1_loss`) compiled with ``mode``, or itself for ``off``.

    The network and the L1 loss are compiled together so the loss's element-wise kernels fuse
    into the network's last ones; autograd's backward is compiled with them (AOTAutograd).
    The network may be the DDP wrapper: torch.compile handles DDP's bucketing (DDPOptimizer).
    """
    if mode == "off":
        return loss
    inductor = os.environ.get("COLDDIFF_COMPILE_BACKEND", "inductor") == "inductor"
    ok, why = compiler_available() if inductor else (True, "")
    if not ok:
        raise ConfigError(f"train.compile={mode} needs torch.compile, but {why}; set train.compile=off")
    kwargs: dict[str, Any] = {"dynamic": False}
    backend = os.environ.get("COLDDIFF_COMPILE_BACKEND", "inductor")
    if backend != "inductor":  # e.g. aot_eager: the same graph capture without code generation (tests)
        kwargs["backend"] = backend
    elif mode != "default":
        kwargs["mode"] = mode
    return torch.compile(loss, **kwargs)


# ---------------------------------------------------------------------------- loss on the device
class LossAccumulator:
    """The training loss summed on the device, read back (one sync) only when it is needed.

    ``add(loss)`` queues one addition; ``first_bad`` remembers, on the device, the first step whose
    loss was not finite, so the error can name it even though it is read later.  float64 on
    devices that have it: the mean then equals Python's sum of the per-step floats.
    """

    def __init__(self, device: torch.device):
        dt = torch.float32 if device.type == "mps" else torch.float64
        self.sum = torch.zeros((), dtype=dt, device=device)
        self.last = torch.zeros((), dtype=dt, device=device)
        self.first_bad = torch.zeros((), dtype=torch.long, device=device)
        self.n = 0

    def add(self, loss: torch.Tensor, step: int) -> None:
        v = loss.detach().to(self.sum.dtype)
        self.sum += v
        self.last.copy_(v)
        bad = ~torch.isfinite(v) & (self.first_bad == 0)
        self.first_bad.copy_(torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad))
        self.n += 1

    def read(self) -> tuple[float, float, int]:
        """(mean since the last reset, last step's loss, first non-finite step or 0): one host sync."""
        vals = torch.stack([self.sum, self.last, self.first_bad.to(self.sum.dtype)]).tolist()
        return vals[0] / max(self.n, 1), vals[1], int(vals[2])

    def reset(self) -> None:
        self.sum.zero_()
        self.n = 0


# ---------------------------------------------------------------------------- data loading
def auto_workers(device: torch.device, lazy: bool, world: int = 1) -> int:
    """DataLoader workers for ``data.num_workers=-1``: none for in-memory or prepared arrays (a batch
    is one index operation) or on a CPU (workers would take cores from the network); on a GPU, for
    images decoded from files, the cores this process may use minus one, at most 8."""
    if not lazy or device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores // max(world, 1) - 1))


def loader_kwargs(num_workers: int, device: Optional[torch.device]) -> dict[str, Any]:
    """DataLoader settings: pinned memory for non-blocking copies to a GPU; with workers, 4 batches
    prefetched each and workers kept for the run (the loader lives as long as the stream)."""
    kw: dict[str, Any] = {"num_workers": num_workers,
                          "pin_memory": device is not None and device.type == "cuda"}
    if num_workers > 0:
        kw.update(prefetch_factor=4, persistent_workers=True)
    return kw

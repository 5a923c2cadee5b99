"""Device and precision policy, shared by training and by a loaded run.

``resolve_device`` turns ``auto | cpu | cuda | cuda:N`` into a device (a clear error when
CUDA is asked for and absent); ``autocast`` is the one mixed-precision rule: bf16/fp16
autocast on the device for ``precision`` bf16/fp16, nothing for fp32.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(spec: str = "auto", local_rank: int = 0, hint: str = "--device cpu") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a clear error otherwise."""
    spec = str(spec)
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec} was asked for but no CUDA GPU is available here; use {hint} (or auto)")
    if spec == "cuda":
        return torch.device(f"cuda:{local_rank}")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device {spec} (Apple GPU) was asked for but MPS is not available here; use {hint} "
                              "(or auto)")
        return dev
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {spec} was asked for but this machine has {torch.cuda.device_count()} CUDA "
                          f"GPU(s) (cuda:0..cuda:{torch.cuda.device_count() - 1}); use one of them or {hint}")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {spec!r} cannot run colddiff ({dev.type} "
                          f"{'holds no data: it only traces shapes' if dev.type == 'meta' else 'is not supported'}); "
                          "use auto, cpu, cuda or cuda:N")
    return dev


def available_memory(device: Optional[torch.device] = None) -> Optional[int]:
    """Bytes free for new tensors: on a CUDA device its free memory, else the system's MemAvailable
    (Linux); None where it cannot be told."""
    if device is not None and torch.device(device).type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_network_fits(cfg, device: torch.device, copies: int = 5) -> None:
    """Refuse, before allocating, a network whose training state cannot fit: ``copies`` float32 copies of
    its parameters (weights, gradients, EMA, Adam's two moments) must fit into the free memory."""
    with torch.device("meta"):  # shapes only: no memory is taken
        n = sum(p.numel() for p in cfg.build_model().parameters())
    need, free = n * 4 * copies, available_memory(device)
    if free is not None and need > free:
        m = cfg.model
        raise ConfigError(f"the network (model.dim={m.dim}, model.dim_mults={list(m.dim_mults)}, "
                          f"model.num_res_blocks={m.num_res_blocks}) has {n:,} parameters: training needs about "
                          f"{need / 2**30:.1f} GiB for its weights, gradients, EMA and Adam state alone and "
                          f"{free / 2**30:.1f} GiB are free on {device}; lower model.dim or model.num_res_blocks")


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

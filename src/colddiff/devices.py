"""Device and precision policy, shared by training and by a loaded run.

``resolve_device`` turns ``auto | cpu | cuda | cuda:N`` into a device (a clear error when
CUDA is asked for and absent); ``autocast`` is the one mixed-precision rule: bf16/fp16
autocast on the device for ``precision`` bf16/fp16, nothing for fp32.
"""
from __future__ import annotations

import contextlib

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
        return torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

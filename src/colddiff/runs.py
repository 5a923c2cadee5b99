"""A trained run, loaded for use: its config, degradation D, restorer R and data.

``load_run(path)`` takes a run folder (``colddiff train --out``) or one checkpoint file and
returns a :class:`Run`.  Evaluation, restoration, generation and the report all start here,
so they agree on which weights (EMA by default), device and precision are used.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from . import checkpoint as ckpt_io
from .config import RunConfig
from .errors import ConfigError, InputError

__all__ = ["Run", "load_run", "resolve_device"]


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a clear error otherwise."""
    from .training import resolve_device as _resolve

    return _resolve(spec)


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
    _cache: dict = field(default_factory=dict, repr=False)

    def R(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The restorer x0_hat = R(x_t, t), float32, under the run's mixed precision on CUDA."""
        if self.precision in ("bf16", "fp16") and self.device.type == "cuda":
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            ctx = torch.autocast("cuda", dtype=dtype)
        else:
            ctx = contextlib.nullcontext()
        with torch.no_grad(), ctx:
            return self.model(x.to(self.device), t.to(self.device)).float()

    def dataset(self, split: str = "test"):
        """The run's data set split (the test split when it has one, else an error naming the splits)."""
        if split not in self._cache:
            from . import data

            c = self.cfg.data
            self._cache[split] = data.load(c.name, split, root=c.root or None, image_size=c.image_size,
                                           channels=c.channels)
        return self._cache[split]

    def held_out(self):
        """(dataset, split name): the test split, or the training split (with a note) when there is none."""
        from .errors import ColddiffError

        try:
            return self.dataset("test"), "test"
        except ColddiffError:
            return self.dataset("train"), "train"

    @property
    def name(self) -> str:
        return self.cfg.preset if self.cfg.preset != "custom" else self.folder.name

    @property
    def T(self) -> int:
        return int(self.D.T)


def _find_checkpoint(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint file) for a run folder or a checkpoint file."""
    if path.is_file():
        folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return folder, path
    if path.is_dir():
        latest = ckpt_io.find_latest(path / "checkpoints") or ckpt_io.find_latest(path)
        if latest is None:
            raise InputError(f"{path} holds no checkpoint (looked in {path / 'checkpoints'}); train one with "
                             f"`colddiff train --preset NAME --out {path}` or give a run folder that has one")
        return path, latest
    raise InputError(f"run not found: {path}; give a run folder written by `colddiff train --out DIR` "
                     "or a checkpoint file (ckpt-XXXXXXXX.safetensors)")


def load_run(path, device: str = "auto", ema: bool = True, checkpoint: Optional[str] = None) -> Run:
    """Load a run folder (its latest checkpoint, or ``checkpoint``) or a checkpoint file."""
    folder, ck_path = _find_checkpoint(Path(path).expanduser())
    if checkpoint:
        ck_path = Path(checkpoint)
    dev = resolve_device(device)
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
               device=dev, ema=bool(ema and ck.ema), precision=cfg.train.precision)

"""Checkpoints: one safetensors file holding everything a run needs to continue exactly.

Also the reading side of exported model files (``colddiff export``): ``model.safetensors``
with the run configuration in its metadata, read back as a :class:`Checkpoint` with one set
of weights (writing them is :mod:`colddiff.export`'s job).

Tensors (weights, EMA weights, optimizer moments, RNG states) are safetensors entries; the
rest (config, step, data position, optimizer hyper-parameters) is JSON in the file's
metadata.  Loading never executes code from the file.  Files are written to a temporary
name and renamed, so a checkpoint is either complete or absent.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from .errors import InputError
from .fileio import atomic_path
from .validate import record

FORMAT = "colddiff-checkpoint-v1"
NAME = re.compile(r"^ckpt-(\d{8})\.safetensors$")
MODEL_FORMAT = "colddiff-model-v1"          # an exported model file (colddiff export)
WEIGHTS, CONFIG = "model.safetensors", "config.json"   # an exported model folder's weights and configuration


def checkpoint_path(folder, step: int) -> Path:
    return Path(folder) / f"ckpt-{step:08d}.safetensors"


def list_checkpoints(folder) -> List[Tuple[int, Path]]:
    """(step, path) of the complete checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _flatten_optimizer(opt_state: Dict[str, Any]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    tensors, scalars = {}, {}
    for idx, st in opt_state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> Dict[str, Any]:
    state: Dict[int, Dict[str, Any]] = {}
    for key, v in tensors.items():
        _, idx, k = key.split(".", 2)
        state.setdefault(int(idx), {})[k] = v
    for key, v in meta.get("scalars", {}).items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path, *, config: Dict[str, Any], model: Dict[str, torch.Tensor],
                    ema: Optional[Dict[str, torch.Tensor]] = None, optimizer: Optional[Dict[str, Any]] = None,
                    rng: Optional[Dict[str, torch.Tensor]] = None, state: Optional[Dict[str, Any]] = None) -> Path:
    """Write a checkpoint atomically (temporary file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: Dict[str, torch.Tensor] = {}
    for k, v in model.items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for k, v in (ema or {}).items():
        tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    opt_meta = None
    if optimizer is not None:
        t, opt_meta = _flatten_optimizer(optimizer)
        tensors.update(t)
    for k, v in (rng or {}).items():
        tensors[f"rng.{k}"] = v.detach().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config, sort_keys=True),
        "state": json.dumps(state or {}, sort_keys=True),
        "optimizer": json.dumps(opt_meta) if opt_meta is not None else "",
    }
    with atomic_path(path, fsync=True) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


class Checkpoint:
    """A loaded checkpoint: ``config``, ``state``, ``model``, ``ema``, ``optimizer``, ``rng``."""

    def __init__(self, path, config, state, model, ema, optimizer, rng):
        self.path, self.config, self.state = Path(path), config, state
        self.model, self.ema, self.optimizer, self.rng = model, ema, optimizer, rng

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))

    def weights(self, ema: bool = True) -> Dict[str, torch.Tensor]:
        """The EMA weights when present (what evaluation uses), else the raw weights."""
        return self.ema if ema and self.ema else self.model


def read_meta(path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(config, state) of a checkpoint from its header alone: no tensor is read."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise InputError(f"{path} is not a colddiff checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
        config, state = json.loads(meta["config"]), json.loads(meta.get("state") or "{}")
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                         "delete it to fall back to the previous one") from None
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise InputError(f"checkpoint {path} has malformed metadata (config and state must be JSON objects)")
    _check_state(state, path)
    return config, state


def _check_state(state, path) -> None:
    """The state's numbers must be numbers: a crafted ``"step": "abc"`` is an InputError, not a crash."""
    record(state, "checkpoint state", path, hint="delete it to fall back to the previous checkpoint")
    w = state.get("log_window", [0.0, 0])
    if not (isinstance(w, list) and len(w) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in w) and float(w[1]).is_integer() and w[1] >= 0):
        raise InputError(f"checkpoint {path}: field 'log_window' must be [loss sum, count], got {w!r:.60}")


def load_checkpoint(path, device="cpu") -> Checkpoint:
    """Read a checkpoint; a corrupt, truncated or foreign file gives one clear InputError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise InputError(f"{path} is not a colddiff checkpoint (format {meta.get('format')!r}, "
                                 f"expected {FORMAT!r})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        config = json.loads(meta["config"])
        state = json.loads(meta.get("state") or "{}")
        opt_meta = json.loads(meta["optimizer"]) if meta.get("optimizer") else None
    except InputError:
        raise
    except Exception as e:  # safetensors raises its own error types for bad headers/truncation
        raise InputError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                         "delete it to fall back to the previous one") from None
    if not isinstance(config, dict) or not isinstance(state, dict) or not isinstance(opt_meta, (dict, type(None))):
        raise InputError(f"checkpoint {path} has malformed metadata (config, state and optimizer must be JSON objects)")
    _check_state(state, path)
    groups: Dict[str, Dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optim": {}, "rng": {}}
    try:
        for k, v in tensors.items():
            head, rest = k.split(".", 1) if "." in k else (k, "")
            if head == "optim":
                groups["optim"][k] = v
            elif head in groups:
                groups[head][rest] = v
        optimizer = _unflatten_optimizer(groups["optim"], opt_meta) if opt_meta is not None else None
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise InputError(f"checkpoint {path} has malformed optimizer entries ({type(e).__name__}: {e}); "
                         "delete it to fall back to the previous one") from None
    return Checkpoint(path, config, state, groups["model"], groups["ema"], optimizer, groups["rng"])


def find_latest(folder) -> Optional[Path]:
    ckpts = list_checkpoints(folder)
    return ckpts[-1][1] if ckpts else None


def prune(folder, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (and stale temporary files)."""
    ckpts = list_checkpoints(folder)
    for _, p in ckpts[:-keep_last] if keep_last > 0 else []:
        p.unlink(missing_ok=True)
    for p in Path(folder).glob(".tmp-*"):
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- exported model files
def is_export(folder) -> bool:
    """Whether ``folder`` is an exported model folder (``model.safetensors`` + ``config.json``)."""
    folder = Path(folder)
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def _header(path: Path) -> Dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return f.metadata() or {}


def is_model_file(path) -> bool:
    """Whether ``path`` is an exported ``model.safetensors`` (not a training checkpoint): header only."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".safetensors":
        return False
    try:
        return _header(path).get("format") == MODEL_FORMAT
    except Exception:  # not a safetensors file at all: the checkpoint loader says so in its own words
        return False


def load_model_file(path) -> Checkpoint:
    """An exported ``model.safetensors`` as a :class:`Checkpoint` (weights, config, step).

    Only the EMA weights (or, for a run exported with ``--raw``, the raw ones) are in the file,
    so the checkpoint has one set of weights and no optimizer or RNG state.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()}
        config, state = json.loads(meta["config"]), json.loads(meta.get("state") or "{}")
    except Exception as e:
        raise InputError(f"model file {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                         "export it again or download it again") from None
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise InputError(f"model file {path} has malformed metadata (config and state must be JSON objects)")
    ema = state.get("weights", "ema") == "ema"
    return Checkpoint(path, config, state, model=weights, ema=weights if ema else {}, optimizer=None, rng={})

"""``colddiff import-official``: a checkpoint written by the authors' own Trainer as a colddiff run.

The authors' ``Trainer.save`` (arpitbansal297/Cold-Diffusion-Models, every folder) writes
``torch.save({'step': n, 'model': ..., 'ema': ...})`` where both state dicts are those of
``DataParallel(GaussianDiffusion(net))``: the network's keys sit under ``module.denoise_fn.`` and
beside them are the diffusion wrapper's own tensors (the blur kernels ``gaussian_kernels.*``, ...),
which are no part of R and are left out with a note.  The file is read with
``torch.load(weights_only=True)``: plain tensors and containers only, never code.

The preset names the network (``model.arch`` and its widths, ``--set`` changes them as in ``train``);
every tensor's name and shape is checked against it and the first mismatch is named.  The result is
an ordinary run folder (``config.toml``, ``checkpoints/ckpt-<step>.safetensors`` with the raw and EMA
weights, ``imported.json`` with the provenance: source file name, its sha256, the authors' step), so
``generate``, ``restore``, ``evaluate``, ``report`` and ``export`` take it as they take a trained run.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import torch

from . import checkpoint as ckpt_io
from .config import RunConfig
from .download import file_hash
from .errors import InputError
from .presets import resolve_config

WRAPPERS = ("module.", "denoise_fn.")   # DataParallel's and GaussianDiffusion's attribute prefixes
PROVENANCE = "imported.json"
FORMAT = "authors-trainer-checkpoint"   # what imported.json calls the source's format


def read_trainer_checkpoint(path) -> Tuple[int, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """(step, model state dict, EMA state dict) of an authors' Trainer checkpoint, keys as saved."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}" if not path.exists() else
                         f"{path} is a folder; give the authors' checkpoint file (e.g. model.pt)")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise InputError(f"{path} needs code to be loaded (it pickles objects, not just tensors); colddiff only "
                             "reads checkpoints of plain tensors, as the authors' Trainer.save writes them") from None
        raise InputError(f"{path} is not a PyTorch checkpoint ({str(e).splitlines()[0][:120]})") from None
    except Exception as e:  # torch.load raises what the bytes provoke (KeyError, EOFError, RuntimeError, ...)
        raise InputError(f"{path} is not a PyTorch checkpoint or is truncated "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if not isinstance(d, Mapping) or not isinstance(d.get("model"), Mapping):
        keys = ", ".join(map(str, list(d)[:5])) if isinstance(d, Mapping) else type(d).__name__
        raise InputError(f"{path} is not a checkpoint of the authors' Trainer (expected the keys step, model, ema; "
                         f"found {keys})")
    step = d.get("step", 0)
    if isinstance(step, torch.Tensor) and step.numel() == 1:
        step = step.item()
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(f"{path}: 'step' must be a whole number >= 0, got {step!r:.40}")
    ema = d.get("ema") if isinstance(d.get("ema"), Mapping) else {}
    return step, dict(d["model"]), dict(ema)


def network_state(state: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """The network's tensors of a Trainer state dict under colddiff's names, and the keys left out.

    ``module.`` and ``denoise_fn.`` are stripped wherever they lead (the resolution folder wraps the
    network in DataParallel as well); a key that never passed ``denoise_fn.`` belongs to the diffusion
    wrapper (e.g. the blur kernels) and is left out.
    """
    net, other = {}, []
    for key, value in state.items():
        k, through = str(key), False
        while k.startswith(WRAPPERS):
            through |= k.startswith("denoise_fn.")
            k = k[k.index(".") + 1:]
        if not isinstance(value, torch.Tensor):
            other.append(str(key))
        elif through:
            net[k] = value.detach().clone()  # its own storage: safetensors refuses tensors that share one
        else:
            other.append(str(key))
    return net, other


def check_shapes(state: Mapping[str, torch.Tensor], model: torch.nn.Module, source, preset: str) -> None:
    """One InputError naming the first tensor that the preset's network lacks, lacks in the file, or has
    with another shape."""
    own = model.state_dict()
    hint = "; pick the preset the checkpoint was trained with (or --set its widths: model.dim, model.dim_mults)"
    for k, v in state.items():
        if k not in own:
            raise InputError(f"{source} holds {k} {tuple(v.shape)}, which the network of {preset} "
                             f"({_arch_line(model)}) does not have{hint}")
        if tuple(v.shape) != tuple(own[k].shape):
            raise InputError(f"{source}: {k} has shape {tuple(v.shape)} but the network of {preset} "
                             f"({_arch_line(model)}) has {tuple(own[k].shape)}{hint}")
    missing = [k for k in own if k not in state]
    if missing:
        more = f" and {len(missing) - 1} more tensors" if len(missing) > 1 else ""
        raise InputError(f"{source} lacks {missing[0]}{more} "
                         f"of the network of {preset} ({_arch_line(model)}){hint}")


def _arch_line(model) -> str:
    c = getattr(model, "config", {})
    return ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in c.items()
                     if k in ("channels", "dim", "dim_mults"))


def sha256(path) -> str:
    return file_hash(path, "sha256")


def import_official(source, preset: str, out, sets: Sequence[str] = ()) -> Dict[str, object]:
    """Write the authors' checkpoint ``source`` as a run folder ``out`` of ``preset`` (+ ``--set``);
    returns a summary (step, tensors, ignored keys, paths)."""
    from .outputs import claim, write_result

    out = claim(out, "train")  # before the checkpoint is read; not claimed again
    if not preset:
        from .errors import ConfigError

        raise ConfigError("say which network the checkpoint holds: --preset NAME (e.g. celeba-blur-gen; "
                          "see `colddiff import-official --help`)")
    cfg: RunConfig = resolve_config(preset, None, sets)
    source = Path(source).expanduser()
    step, raw, ema = read_trainer_checkpoint(source)
    model_w, ignored = network_state(raw)
    ema_w, _ = network_state(ema)
    if not model_w:
        raise InputError(f"{source} holds no network weights (no key under denoise_fn.); is it a checkpoint of the "
                         "authors' Trainer?")
    with torch.device("meta"):
        model = cfg.build_model()
    name = f"{source.name}"
    check_shapes(model_w, model, f"{name} (model)", preset)
    if ema_w:
        check_shapes(ema_w, model, f"{name} (ema)", preset)
    digest = sha256(source)
    provenance = {"format": FORMAT, "source": source.name, "sha256": digest, "step": step, "preset": preset,
                  "set": list(sets), "ignored": ignored, "ema": bool(ema_w)}
    state = {"step": step, "imported": {"source": source.name, "sha256": digest, "step": step}}
    def write(stage):  # a run folder: `train --resume` may continue it
        cfg.save(stage / "config.toml")
        ckpt_io.save_checkpoint(ckpt_io.checkpoint_path(stage / "checkpoints", step), config=cfg.to_dict(),
                                model=model_w, ema=ema_w or None, state=state)
        (stage / PROVENANCE).write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")

    write_result(out, "train", write)
    return dict(provenance, out=str(out.path), tensors=len(model_w))

"""One validation layer for values that come from outside: command-line numbers, degradation
parameters, config values and the files of a run folder (checkpoint metadata, evaluation and
generation JSON, train_summary.json).

Every check returns the value (converted where that is lossless, e.g. ``11.0`` -> ``11``) or
raises a one-line :class:`~colddiff.errors.ConfigError` / :class:`~colddiff.errors.InputError`
that names the value, what it must be and, where it helps, how to fix it.  A NaN, an infinity,
a string where a number belongs or a list where a table belongs never reaches the arithmetic:
there it would give black images, a best-possible score or a traceback.
"""
from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, Dict, Mapping, Optional, Type

from .errors import ConfigError, InputError

__all__ = ["number", "whole", "typed", "degradation_params", "record", "RECORD_TYPES", "argtype"]


def number(v: Any, what: str, lo: Optional[float] = None, hi: Optional[float] = None, *,
           lo_open: bool = False, err: Type[Exception] = ConfigError) -> float:
    """A finite real number (not a bool) with ``lo <= v <= hi`` (``lo < v`` with ``lo_open``).

    numpy scalars (``np.float32(0.5)``, ``np.int64(5)``) are numbers too: returned as Python numbers."""
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise err(f"{what} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise err(f"{what} must be a finite number, got {v!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise err(f"{what} must be {'greater than' if lo_open else 'at least'} {lo:g}, got {v!r}")
    if hi is not None and v > hi:
        raise err(f"{what} must be at most {hi:g}, got {v!r}")
    return v


def whole(v: Any, what: str, lo: Optional[int] = None, hi: Optional[int] = None, *,
          err: Type[Exception] = ConfigError) -> int:
    """A whole number (``3``, ``3.0`` or ``np.int64(3)``, not ``3.5``, ``True`` or ``'3'``) with ``lo <= v <= hi``."""
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
        raise err(f"{what} must be a whole number, got {v!r}")
    v = int(v)
    if lo is not None and v < lo:
        raise err(f"{what} must be at least {lo}, got {v}")
    if hi is not None and v > hi:
        raise err(f"{what} must be at most {hi}, got {v}")
    return v


def _plain(v: Any) -> Any:
    """A numpy (or other) scalar registered as a real number -> the Python int or float; else ``v``."""
    if isinstance(v, (bool, int, float)) or type(v).__name__ == "bool_":
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return v


_NAMED = {"int": int, "float": float, "str": str, "bool": bool}


def _kind(param: inspect.Parameter) -> Optional[type]:
    """int, float, str or bool from a parameter's annotation (or, lacking one, its default); else None."""
    ann = param.annotation
    if isinstance(ann, str):
        ann = _NAMED.get(ann.strip())
    if ann in (int, float, str, bool):
        return ann
    if ann is inspect.Parameter.empty and param.default is not inspect.Parameter.empty:
        d = param.default
        return bool if isinstance(d, bool) else type(d) if isinstance(d, (int, float, str)) else None
    return None


def typed(v: Any, kind: type, what: str, err: Type[Exception] = ConfigError) -> Any:
    """``v`` as a value of ``kind`` (int, float, str or bool); numbers must be finite."""
    if kind is bool:
        if type(v).__name__ == "bool_":
            v = bool(v)
        if not isinstance(v, bool):
            raise err(f"{what} must be true or false, got {v!r}")
        return v
    if kind is int:
        return whole(v, what, err=err)
    if kind is float:
        return float(number(v, what, err=err))
    if kind is str:
        if not isinstance(v, str):
            raise err(f"{what} must be text, got {v!r}")
        return v
    return v


def degradation_params(name: str, init: Callable, params: Dict[str, Any]) -> Dict[str, Any]:
    """A family's keyword arguments typed by its ``__init__`` signature: ``sigma=abc``, ``sigma=nan``,
    ``sigma=inf`` and ``kernel_size=2.5`` are refused here, before any kernel is built.

    Parameters without a plain type (``partners``: a name, a folder or a tensor) are left to the family;
    ``image_size`` and ``channels`` are positive whole numbers (or None).
    """
    sig = inspect.signature(init).parameters
    out = {}
    for k, v in params.items():
        what = f"{name} parameter {k}"
        if k in ("image_size", "channels"):
            out[k] = None if v is None else whole(v, what, lo=1)
            continue
        p = sig.get(k)
        kind = _kind(p) if p is not None else None
        if kind is None or (v is None and p is not None and p.default is None):
            out[k] = v
            continue
        if k == "T":
            try:
                out[k] = whole(v, "T", lo=1)
            except ConfigError:
                raise ConfigError(f"T must be a positive integer number of steps, got {v!r}") from None
            continue
        out[k] = typed(v, kind, what)
    return out


# ---------------------------------------------------------------------------- run files
# The fields colddiff reads back from the files of a run folder, with their types.  A file whose
# values have other types (hand-edited, crafted, from another program) is an InputError naming
# the file and the field, never a crash halfway through a report.
_NUM = (int, float)
RECORD_TYPES: Dict[str, Dict[str, Any]] = {
    "checkpoint state": {"step": int, "epoch": int, "position": int, "elapsed": _NUM, "world_size": int,
                         "log_window": list},
    "evaluation": {"run": str, "folder": str, "checkpoint": str, "step": int, "degradation": str, "T": int,
                   "t": int, "n": int, "split": str, "ema": bool, "fid_backend": str, "fid_label": str,
                   "fid_small": bool, "classifier_accuracy": _NUM + (type(None),), "rows": list,
                   "seconds": _NUM, "device": str, "protocol": str, "enlarged": bool},
    "generation evaluation": {"run": str, "checkpoint": str, "step": int, "degradation": str, "n": int,
                              "fid_backend": str, "fid_label": str, "fid_small": bool,
                              "classifier_accuracy": _NUM + (type(None),), "num_classes": int, "rows": list,
                              "blank_definition": str, "seconds": _NUM},
    "train summary": {"step": int, "steps": int, "elapsed_s": _NUM, "device": str, "final_loss": _NUM,
                      "stopped_early": bool},
}


def _is(v: Any, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(v, bool) and bool not in types:
        return False
    if isinstance(v, float) and int in types and float not in types:
        return False
    return isinstance(v, types) and not (isinstance(v, float) and math.isnan(v) and types != (float,))


def record(d: Any, kind: str, path, required: tuple = (), hint: str = "") -> Dict[str, Any]:
    """``d`` (read from ``path``) checked against :data:`RECORD_TYPES` [kind]: an InputError otherwise."""
    fix = f"; {hint}" if hint else ""
    if not isinstance(d, Mapping):
        raise InputError(f"{path} holds no {kind} record (expected a JSON object, got {type(d).__name__}){fix}")
    types = RECORD_TYPES[kind]
    for k in required:
        if k not in d:
            raise InputError(f"{path} lacks the field {k!r} of a {kind} record{fix}")
    for k, t in types.items():
        if k in d and not _is(d[k], t):
            want = " or ".join(x.__name__ for x in (t if isinstance(t, tuple) else (t,)))
            raise InputError(f"{path}: field {k!r} must be {want}, got {d[k]!r:.60}{fix}")
    for i, row in enumerate(d.get("rows", []) if "rows" in types else []):
        if not isinstance(row, Mapping):
            raise InputError(f"{path}: rows[{i}] must be a JSON object, got {row!r:.60}{fix}")
        for k, v in row.items():
            if k in ("method", "setting", "sampler", "folder", "blank_definition", "paper_row", "sample_steps"):
                if not isinstance(v, str) and not (k == "sampler" and v is None):
                    raise InputError(f"{path}: rows[{i}].{k} must be text, got {v!r:.60}{fix}")
            elif k == "histogram":
                if not isinstance(v, list) or not all(_is(x, int) for x in v):
                    raise InputError(f"{path}: rows[{i}].histogram must be a list of counts{fix}")
            elif k == "noise":
                if v != "" and not _is(v, _NUM):
                    raise InputError(f"{path}: rows[{i}].noise must be a number, got {v!r:.60}{fix}")
            elif v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                raise InputError(f"{path}: rows[{i}].{k} must be a number, got {v!r:.60}{fix}")
    return dict(d)


# ---------------------------------------------------------------------------- argparse types
def argtype(kind: str, lo: Optional[float] = None, hi: Optional[float] = None) -> Callable[[str], Any]:
    """An argparse ``type=``: ``count`` (whole, >= 1), ``whole`` (lo..hi) or ``real`` (finite, lo..hi).

    argparse turns the ValueError's message into its one-line usage error (exit 2)."""
    def parse(text: str):
        import argparse

        try:
            v = float(text) if kind == "real" else int(text)
        except ValueError:
            v = None
        try:
            if kind == "real":
                return float(number(v if v is not None else text, "the value", lo=lo, hi=hi))
            return whole(v if v is not None else text, "the value", lo=1 if kind == "count" else lo, hi=hi)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e).replace("the value ", "")) from None

    parse.__name__ = {"count": "a positive whole number", "whole": "a whole number", "real": "a number"}[kind]
    return parse

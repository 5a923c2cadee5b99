"""The two rules for a step t of the paper's degradation D(x0, t), t = 0..T.

* :func:`library_t` – what the library accepts: a whole number 0..T (t = 0 is x0 itself).  Used by
  the degradations (``Degradation.as_t``), ``colddiff degrade --steps`` and the demo's degrade tab.
* :func:`user_t` – what a user restores *from*: a whole number 1..T, ``T`` (or nothing: T), or
  ``auto`` (estimate t per image) where that is allowed.  Used by ``restore``, ``evaluate``,
  ``quickstart``, the demo's restore tab and the Python API (:func:`colddiff.runs.check_t`).

Every t a user or a caller gives is checked by one of these two, so the range and the message
are the same everywhere.
"""
from __future__ import annotations

from typing import Union

from .errors import ConfigError

__all__ = ["library_t", "user_t"]


def _whole(t):
    """``t`` as an int when it is a whole number (Python or NumPy; not a bool); else None."""
    if isinstance(t, bool):
        return None
    if isinstance(t, int):
        return t
    try:
        v = int(t)
        return v if v == t else None
    except (TypeError, ValueError, OverflowError):
        return None


def _within(v, lo: int, T: int, not_whole: str, outside: str) -> int:
    """``v`` when it is a whole number in lo..T; else the ConfigError that says which rule it broke."""
    if v is None:
        raise ConfigError(not_whole)
    if not lo <= v <= T:
        raise ConfigError(outside.replace("{v}", str(v)))
    return v


def library_t(t, T: int, name: str = "this degradation") -> int:
    """A step of D as the library takes it: a whole number 0..T (``name`` says whose steps, for the message)."""
    return _within(_whole(t), 0, T, f"t must be an integer step, got {t!r}",
                   f"t out of range: got {{v}}, but {name} has steps 0..{T}")


def user_t(t, T: int, what: str = "--t", auto: bool = False) -> Union[int, str]:
    """A user's restoration step: a whole number 1..T (``T`` or ``None`` mean T; ``auto`` when allowed)."""
    if t is None or (isinstance(t, str) and t.strip().upper() == "T"):
        return int(T)
    if auto and isinstance(t, str) and t.strip().lower() == "auto":
        return "auto"
    if isinstance(t, str):
        try:
            v = int(t.strip())
        except ValueError:
            v = None
    else:
        v = _whole(t)
    return _within(v, 1, T, f"{what} takes a step number 1..{T}{' or auto' if auto else ''}, got {t!r}",
                   f"{what} must be between 1 and T={T} for this run{' (or auto)' if auto else ''}, got {{v}}")

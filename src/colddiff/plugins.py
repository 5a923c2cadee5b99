"""Degradations from outside the package: entry points, ``--plugin`` and ``COLDDIFF_PLUGINS``.

A plug-in is a Python module (an importable name or a ``.py`` file) that registers one or
more degradations with ``@colddiff.degradations.register("name")`` when it is imported.
colddiff finds plug-ins in three places, for every command:

* installed packages that declare an entry point in the group ``colddiff.degradations``
  (``[project.entry-points."colddiff.degradations"] mine = "mypkg.mine"``), loaded lazily:
  only when a name that is not built in is asked for;
* ``colddiff --plugin FILE_OR_MODULE`` (repeatable);
* the environment variable ``COLDDIFF_PLUGINS`` (paths or module names separated by
  ``os.pathsep``), which also reaches processes started by ``torchrun``.

Loading a plug-in runs its code: only name files you trust.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Iterable, List

from .errors import ConfigError

ENTRY_POINT_GROUP = "colddiff.degradations"
ENV = "COLDDIFF_PLUGINS"

_loaded: dict = {}          # spec -> module
_entry_points_loaded = False

__all__ = ["load_plugin", "load_plugins", "load_entry_points", "from_environment", "ENTRY_POINT_GROUP", "ENV"]


def load_plugin(spec: str):
    """Import one plug-in: a path to a ``.py`` file or an importable module name; a clear error otherwise."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("empty plug-in name; give a .py file or a module name")
    if spec in _loaded:
        return _loaded[spec]
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise ConfigError(f"plug-in file not found: {path}; give a .py file that registers a degradation")
        name = f"colddiff_plugin_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ConfigError(f"cannot load plug-in {path}: not a Python file")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module  # so dataclasses, pickling and DataLoader workers can find it
        try:
            mod_spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise ConfigError(f"plug-in {path} failed to load: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as e:
            raise ConfigError(f"plug-in module {spec!r} not found ({e}); give a .py file or a module on "
                              "the Python path") from None
        except Exception as e:
            raise ConfigError(f"plug-in {spec!r} failed to load: {type(e).__name__}: {e}") from None
    _loaded[spec] = module
    return module


def load_plugins(specs: Iterable[str]) -> List[object]:
    return [load_plugin(s) for s in specs if str(s).strip()]


def from_environment() -> List[object]:
    """The plug-ins named in ``COLDDIFF_PLUGINS`` (nothing when it is unset)."""
    return load_plugins(os.environ.get(ENV, "").split(os.pathsep))


def load_entry_points() -> int:
    """Import every plug-in declared in the ``colddiff.degradations`` entry-point group (once); how many."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return 0
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    n = 0
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:
            raise ConfigError(f"the installed plug-in {ep.name!r} ({ep.value}) failed to load: "
                              f"{type(e).__name__}: {e}") from None
        n += 1
    return n

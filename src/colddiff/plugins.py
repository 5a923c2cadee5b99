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

Loading a plug-in runs its code: only name files you trust.  Whatever that code raises (an exception,
or ``sys.exit()``) is the plug-in's failure: one line that names the plug-in, never colddiff ending with
nothing said.  :func:`guard` wraps a plug-in class's methods as it registers (the degradation
registry's seam, wired in :mod:`colddiff.degradations`), so a failure inside ``forward`` names the
class and its file too.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Iterable, List

from .errors import ColddiffError, ConfigError

ENTRY_POINT_GROUP = "colddiff.degradations"
ENV = "COLDDIFF_PLUGINS"

_loaded: dict = {}          # spec -> module
_entry_points_loaded = False

__all__ = ["load_plugin", "load_plugins", "load_entry_points", "from_environment", "load_installed", "guard",
           "ENTRY_POINT_GROUP", "ENV"]

# What plug-in code may raise and colddiff turns into the plug-in's failure: any exception, and SystemExit
# (a plug-in calling sys.exit() would otherwise end colddiff, with status 0 for sys.exit(0), nothing written)
PLUGIN_FAILURES = (Exception, SystemExit)


def failure(e: BaseException) -> str:
    """What plug-in code did, in one clause: ``RuntimeError: oops``, or that it called ``sys.exit``."""
    if isinstance(e, SystemExit):
        code = "" if e.code is None else repr(e.code)
        return f"it called sys.exit({code}) (a plug-in must raise an exception, not exit)"
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"


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
        except PLUGIN_FAILURES as e:
            sys.modules.pop(name, None)
            raise ConfigError(f"plug-in {path} failed to load: {failure(e)}") from None
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as e:
            raise ConfigError(f"plug-in module {spec!r} not found ({e}); give a .py file or a module on "
                              "the Python path") from None
        except PLUGIN_FAILURES as e:
            raise ConfigError(f"plug-in {spec!r} failed to load: {failure(e)}") from None
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
        except PLUGIN_FAILURES as e:
            raise ConfigError(f"the installed plug-in {ep.name!r} ({ep.value}) failed to load: {failure(e)}") from None
        n += 1
    return n


def load_installed() -> None:
    """The plug-ins that need no --plugin: installed ones (entry points) and those in ``COLDDIFF_PLUGINS``.
    The degradation registry asks for them when a name is not registered (its ``find`` seam)."""
    load_entry_points()
    from_environment()


# ---------------------------------------------------------------------------- a plug-in's failures name it
# The methods of a degradation that run a family's own code, as colddiff calls them.  ``__init__`` lets the
# errors of wrong arguments through: ``create`` words those itself ("cannot build degradation ...").
GUARDED = ("__init__", "context", "forward", "step", "finalize", "start", "start_statistic", "mixing_schedule",
           "tile_multiple", "_example", "_describe", "_native_size_problem")
_ARGUMENT_ERRORS = (TypeError, ValueError, OverflowError)


def guard(cls: type, interface: type) -> type:
    """Wrap the methods of a plug-in class (one defined outside colddiff) that replace ``interface``'s, in place:
    whatever they raise but a ColddiffError (an exception, ``sys.exit()``) becomes one ConfigError that names
    the degradation, its class and file, and the check to run.  A built-in class is returned untouched, and so
    is a method that ``interface`` itself defines (the registry tells "no step" by it being the interface's)."""
    if cls.__module__.startswith("colddiff."):
        return cls
    for what in GUARDED:
        attr = inspect.getattr_static(cls, what, None)
        if attr is None or attr is inspect.getattr_static(interface, what, None):
            continue
        is_classmethod = isinstance(attr, classmethod)
        fn = attr.__func__ if is_classmethod else attr
        if not inspect.isfunction(fn) or getattr(fn, "_plugin_guarded", False):
            continue                                   # (a static method or property is left as it is)
        wrapped = _guarded(fn, what)
        setattr(cls, what, classmethod(wrapped) if is_classmethod else wrapped)
    return cls


def _guarded(fn, what: str):
    lets_through = (ColddiffError, KeyboardInterrupt) + (_ARGUMENT_ERRORS if what == "__init__" else ())

    @functools.wraps(fn)
    def method(self_or_cls, *args, **kwargs):
        try:
            return fn(self_or_cls, *args, **kwargs)
        except lets_through:
            raise
        except PLUGIN_FAILURES as e:
            cls = self_or_cls if isinstance(self_or_cls, type) else type(self_or_cls)
            where = getattr(sys.modules.get(cls.__module__), "__file__", None) or cls.__module__
            raise ConfigError(f"the plug-in degradation {cls.name!r} ({cls.__name__} in {where}) failed in "
                              f"{what}(): {failure(e)}; fix the plug-in (check it with "
                              f"`colddiff --plugin {where} check-degradation {cls.name}`)") from None

    method._plugin_guarded = True
    return method

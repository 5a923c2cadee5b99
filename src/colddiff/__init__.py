"""colddiff: Cold Diffusion (Bansal et al., 2022) — restoration and generation with arbitrary degradations.

``from colddiff import load_run`` is the front door of the library.  It is resolved lazily (on
first use), so ``import colddiff`` stays light: torch is imported only when a run is loaded.
"""
__version__ = "0.1.0"

__all__ = ["load_run", "__version__"]


def __getattr__(name):
    if name == "load_run":
        from .runs import load_run

        return load_run
    raise AttributeError(f"module 'colddiff' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

"""Optional packages (TensorBoard, Weights & Biases, huggingface_hub, Gradio), imported when a command needs them.

Whatever goes wrong with one (not installed, an import that raises, an old version without the function
colddiff calls, a start-up that fails) is one :class:`ConfigError` line naming the package and the
command that installs it.  Callers ask before they create any output, so the failure leaves nothing.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Sequence

from .errors import ConfigError


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


def require(module: str, *, package: str, needed_for: str, install: str, attrs: Sequence[str] = ()) -> ModuleType:
    """``module`` imported, with every name in ``attrs`` present; otherwise one ConfigError line.

    ``package`` is the name a user installs (``tensorboard`` for ``torch.utils.tensorboard``),
    ``needed_for`` what asked for it (``--log tensorboard``), ``install`` the command that installs it.
    """
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name in (package, module):  # (a missing dependency of the package is a broken installation)
            raise ConfigError(f"{needed_for} needs the {package} package, which is not installed: {install}") from None
        raise _broken(package, needed_for, install, e) from None
    except Exception as e:  # raised while importing it: a broken or incompatible installation
        raise _broken(package, needed_for, install, e) from None
    for name in attrs:
        try:
            getattr(mod, name)
        except AttributeError:
            version = getattr(sys.modules.get(package), "__version__", None)
            raise ConfigError(f"{needed_for} needs {module}.{name}, which the installed {package}"
                              f"{f' {version}' if isinstance(version, str) else ''} lacks (too old or broken); install a "
                              f"current one: {install}") from None
        except Exception as e:
            raise _broken(package, needed_for, install, e) from None
    return mod


def _broken(package: str, needed_for: str, install: str, e: BaseException) -> ConfigError:
    return ConfigError(f"{needed_for} needs the {package} package, whose import fails here "
                       f"({type(e).__name__}: {_first_line(e)}); reinstall it: {install}")


def start_failed(package: str, needed_for: str, e: BaseException, hint: str) -> ConfigError:
    """The one line for an optional package that imported but failed to start (``hint``: what to check)."""
    return ConfigError(f"{needed_for}: {package} failed to start ({type(e).__name__}: {_first_line(e)}); {hint}")


__all__ = ["require", "start_failed"]

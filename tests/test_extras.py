"""Installing the optional extras never downgrades a core dependency, and the environment is consistent.

`make install` installs the core (and the test extra), `make test-all` then the demo, notebook and docs
extras.  An extra that caps a core dependency (gradio: pillow<13) would make pip downgrade it in the
second step, so the Makefile passes constraints.txt to every install: the core step already picks a
version every extra accepts.  These tests check that promise against what is installed here.
"""
import importlib.metadata as md
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _core() -> dict:
    """Core dependency name (normalised) -> Requirement."""
    reqs = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    return {_norm(r.name): r for r in reqs}


def _constraints() -> dict:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            out[_norm(r.name)] = r
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _upper_bound(req: Requirement):
    """The smallest version excluded from above by ``req`` ('<X', '<=X' -> X), or None."""
    bounds = [Version(s.version) for s in req.specifier if s.operator in ("<", "<=")]
    return min(bounds) if bounds else None


def _active_requirements():
    """(distribution, Requirement) for every requirement of every installed distribution that applies here
    (markers evaluated; requirements of an extra count when that extra's packages are installed)."""
    for dist in md.distributions():
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                yield dist.metadata["Name"], req


def _core_closure() -> set:
    """The core dependencies and everything they require (installed, markers evaluated): the packages pip
    resolves together in the core install, so their caps cannot cause a later downgrade."""
    todo, seen = list(_core()), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [_norm(Requirement(r).name) for r in reqs
                 if Requirement(r).marker is None or Requirement(r).marker.evaluate({"extra": ""})]
    return seen


def test_the_constraints_cap_every_core_dependency_an_installed_package_caps():
    """If an installed package outside the core (an extra's) caps a core dependency, constraints.txt caps it at
    least as tightly, so the core install never picks a version the extras then downgrade."""
    core, caps, resolved_with_core = _core(), _constraints(), _core_closure() | {"colddiff"}
    checked = 0
    for dist, req in _active_requirements():
        name = _norm(req.name)
        bound = _upper_bound(req)
        if name not in core or bound is None or _norm(dist) in resolved_with_core:
            continue
        checked += 1
        assert name in caps, f"{dist} requires {req}, but constraints.txt does not cap {req.name}"
        cap = _upper_bound(caps[name])
        assert cap is not None and cap <= bound, f"{dist} requires {req}; constraints.txt allows {caps[name]}"
    if importlib.util.find_spec("gradio") is not None:
        assert checked >= 1   # gradio caps pillow: this test really looked at it


def test_installed_core_dependencies_satisfy_the_core_the_constraints_and_every_package():
    core, caps = _core(), _constraints()
    pillow = Version(md.version("pillow"))
    assert pillow in core["pillow"].specifier and pillow in caps["pillow"].specifier
    for dist, req in _active_requirements():
        if _norm(req.name) == "pillow":
            assert req.specifier.contains(pillow, prereleases=True), f"{dist} requires {req}, installed {pillow}"


@pytest.mark.skipif(os.environ.get("COLDDIFF_REQUIRE_DEMO") != "1" and importlib.util.find_spec("gradio") is None,
                    reason="only where the extras are installed (make test-all)")
def test_pip_check_finds_no_broken_requirements():
    p = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_notebook_extra_brings_what_tqdm_needs_for_notebook_progress_bars():
    extra = [Requirement(r).name for r in _pyproject()["project"]["optional-dependencies"]["notebook"]]
    assert "ipywidgets" in extra
    if os.environ.get("COLDDIFF_REQUIRE_NOTEBOOK") == "1":
        assert importlib.util.find_spec("ipywidgets") is not None


def test_the_makefile_installs_everything_under_the_constraints():
    text = (ROOT / "Makefile").read_text()
    installs = [ln for ln in text.splitlines() if "pip install" in ln and "-e " in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs)

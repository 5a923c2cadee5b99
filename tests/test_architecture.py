"""The module layers of pyproject.toml's [tool.importlinter] hold: no import cycles, no module importing
one above it (function-local imports included), and a planted upward import is caught."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(__import__("colddiff").__file__).resolve().parent


def lint(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package found in ``src``, with the contracts of ``cwd``/pyproject.toml."""
    env = dict(os.environ, PYTHONPATH=str(src))
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_module_imports_only_from_the_layers_below_it():
    res = lint(ROOT, SRC.parent)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_an_upward_import_hidden_in_a_function_breaks_the_layers(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    pkg = tmp_path / "src" / "colddiff"
    shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    with open(pkg / "runs.py", "a", encoding="utf-8") as f:   # runs reaching up to the report: a loop
        f.write("\n\ndef _planted():\n    from .report import write_report\n    return write_report\n")
    res = lint(tmp_path, tmp_path / "src")
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and "colddiff.runs -> colddiff.report" in res.stdout

"""`colddiff --help` and `colddiff --version` start without the heavy libraries: building the parser and
answering them imports no torch, torchmetrics, scipy, scikit-learn or matplotlib (a fresh interpreter each)."""
import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchmetrics", "scipy", "sklearn", "matplotlib")

PROBE = """
import contextlib, io, json, sys
import colddiff.cli as cli
cli.build_parser()
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        cli.main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r), "out": out.getvalue()}))
""" % (HEAVY,)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []])
def test_building_the_parser_and_answering_help_or_version_imports_no_heavy_library(argv):
    res = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["loaded"] == [], f"`colddiff {' '.join(argv)}` imported {got['loaded']}"
    if argv == ["--version"]:
        assert got["out"].startswith("colddiff ")
    else:
        assert "quickstart" in got["out"] and "restore" in got["out"]   # the command list was printed


def test_a_command_still_checks_its_choices_from_the_registries():
    res = subprocess.run([sys.executable, "-m", "colddiff", "generate", "RUN", "--out", "o", "--sampler", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "invalid choice: 'nope'" in res.stderr and "'algorithm2'" in res.stderr and "'ddim'" in res.stderr

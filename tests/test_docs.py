"""The documentation site: its generated pages say what the code does, its examples run, and it builds strictly."""
import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REQUIRE = os.environ.get("COLDDIFF_REQUIRE_DOCS") == "1"   # CI: fail instead of skipping without the docs extra


def _hooks():
    spec = importlib.util.spec_from_file_location("colddiff_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def _options(parser: argparse.ArgumentParser):
    """Every option string of a parser and of its actions' parsers (data, weights)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        else:
            yield from (s for s in action.option_strings if s.startswith("--"))


def test_the_plugin_page_example_registers_its_degradation():
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "plugins.md").read_text(), re.S)
    example = next(b for b in blocks if "@register" in b)
    exec(compile(example, "docs/plugins.md", "exec"), {})
    import colddiff.degradations as deg

    assert "fade" in deg.names()


def test_every_command_page_holds_the_commands_help_with_every_option():
    from colddiff.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    found = hooks.commands()
    assert [name for name, _, _ in found] == list(sub.choices)
    for name, parser, help_line in found:
        prose = DOCS / "commands" / f"{name}.md"
        page = hooks.command_page(name, parser, help_line, prose.read_text() if prose.exists() else None)
        assert page.startswith(f"# `colddiff {name}`"), name
        assert f"`colddiff {name} --help`" in page and "usage: colddiff " + name in page, name
        for option in _options(parser):
            assert option in page, f"the page of `colddiff {name}` lacks {option}"


def test_a_command_without_prose_still_gets_a_titled_page():
    parser = argparse.ArgumentParser(prog="colddiff brand-new", description="Does something new.")
    parser.add_argument("--tile", type=int, help="tile size")
    page = hooks.command_page("brand-new", parser, "does something new", None)
    assert page.startswith("# `colddiff brand-new` — does something new")
    assert "--tile TILE" in page and "Does something new." in page


def test_provenance_page_has_every_paper_preset_with_its_files_and_settings():
    try:
        from colddiff.presets import preset
    except ImportError:
        from colddiff.config import preset
    from colddiff.paper import PROVENANCE

    section = hooks.provenance_markdown()
    shared = dict(re.findall(r"^- \*\*\[(\w+)\]\*\* (.*)\.$", section, re.M))
    assert shared == hooks.shared_differences()
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == set(PROVENANCE)
    for name, prov in PROVENANCE.items():
        row, d = rows[name], preset(name).degradation
        assert prov.experiment in row and prov.authors in row, name
        assert all(f"`{f}`" in row for f in prov.files), name
        assert f"`{d.name}` T={d.T}" in row and all(f"{k}={v}" in row for k, v in d.params.items()), name
        for diff in prov.differences:  # written out, or as a key of the shared list under the table
            assert diff in row or any(f"[{k}]" in row and text == diff for k, text in shared.items()), (name, diff)


def test_benchmark_page_renders_every_results_file():
    text = hooks.benchmark_results_markdown()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        assert f"`benchmarks/results/{path.name}`" in text
    assert "| preset |" in text


def test_docs_build_strictly_with_a_page_per_command(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            assert not REQUIRE, f"COLDDIFF_REQUIRE_DOCS=1 but {module} is not installed"
            pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    home = (site / "index.html").read_text()
    assert "make demo" in home and "make test" in home and "load_run" in home
    for name, _, _ in hooks.commands():
        page = site / "commands" / name / "index.html"
        assert page.exists(), f"no docs page for `colddiff {name}`"
        assert f"colddiff {name} --help" in page.read_text(), name
        assert f'href="commands/{name}/"' in home, f"`colddiff {name}` is not in the site's navigation"
    provenance = (site / "paper-presets" / "index.html").read_text()
    from colddiff.paper import PROVENANCE

    assert all(f"<code>{name}</code>" in provenance for name in PROVENANCE)

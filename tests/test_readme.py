"""The README is the front door: under 20 KB, the two set-up commands, every command linked to its
docs page, and a library example that runs as written."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_is_under_20_kb():
    size = len(README.read_bytes())
    assert size < 20_000, f"README.md is {size:,} bytes; move detail into a page under docs/"


def test_readme_names_the_two_commands_and_every_cli_command():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    from colddiff.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"colddiff {name}" in text, f"README does not document `colddiff {name}`"


def test_readme_links_every_command_to_its_docs_page_and_only_to_pages_that_exist():
    from colddiff.cli import build_parser

    text = README.read_text()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"[`colddiff {name}`](docs/commands/{name}.md)" in text, name
    generated = {f"docs/commands/{name}.md" for name in sub.choices}   # docs/hooks.py writes these at build time
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).exists() or target in generated, f"README links to {target}, which does not exist"


def test_the_package_imports_without_torch_and_load_run_comes_from_the_top_level():
    code = ("import sys, colddiff; assert 'torch' not in sys.modules, 'import colddiff imported torch'; "
            "from colddiff import load_run; from colddiff.runs import load_run as direct; "
            "assert load_run is direct; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_library_example_runs_on_a_run_folder(tmp_path, clf, monkeypatch):
    """The README's library example, on a tiny untrained quickstart-shaped run."""
    from conftest import make_run

    from colddiff.presets import preset

    from colddiff.quickstart import PRESET

    cfg = preset(PRESET)
    make_run(tmp_path / "runs" / "quickstart", dict(name=cfg.degradation.name, T=cfg.degradation.T,
                                                    params=cfg.degradation.params))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "load_run(" in b)
    assert example.startswith("from colddiff import load_run\n")
    example = example.replace("n=100", "n=8")
    env = {}
    exec(compile(example, "README.md", "exec"), env)
    assert env["ev"].n == 8 and env["images"].shape == (16, 1, 28, 28) and env["x0_hat"].shape == (1, 1, 28, 28)

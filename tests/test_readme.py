"""The README's code examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_custom_degradation_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "@register" in b)
    exec(compile(example, "README.md", "exec"), {})
    import colddiff.degradations as deg

    assert "fade" in deg.names()


def test_readme_names_the_two_commands_and_every_cli_command():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    from colddiff.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"colddiff {name}" in text, f"README does not document `colddiff {name}`"


def test_library_example_runs_on_a_run_folder(tmp_path, clf, monkeypatch):
    """The README's library example, on a tiny untrained quickstart-shaped run."""
    from conftest import make_run

    from colddiff.config import preset

    from colddiff.quickstart import PRESET

    cfg = preset(PRESET)
    make_run(tmp_path / "runs" / "quickstart", dict(name=cfg.degradation.name, T=cfg.degradation.T,
                                                    params=cfg.degradation.params))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "load_run(" in b).replace("n=100", "n=8")
    env = {}
    exec(compile(example, "README.md", "exec"), env)
    assert env["ev"].n == 8 and env["images"].shape == (16, 1, 28, 28) and env["x0_hat"].shape == (1, 1, 28, 28)

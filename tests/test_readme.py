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

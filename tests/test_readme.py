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

    from colddiff.presets import preset

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


def test_readme_provenance_table_has_every_paper_preset_with_its_files_and_settings():
    from colddiff.presets import preset
    from colddiff.paper import PROVENANCE

    text = README.read_text()
    section = text[text.index("#### Paper presets: provenance"):text.index("## Degradations")]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == set(PROVENANCE)
    for name, prov in PROVENANCE.items():
        row, d = rows[name], preset(name).degradation
        assert prov.experiment in row and prov.authors in row, name
        assert all(f"`{f}`" in row for f in prov.files), name
        assert f"`{d.name}` T={d.T}" in row and all(f"{k}={v}" in row for k, v in d.params.items()), name
        for diff in prov.differences:  # written out, or as a key of the shared list under the table
            assert diff in row or any(f"[{k}]" in row and f"**[{k}]** {diff}." in section
                                      for k in ("N1", "N2", "N3", "D1", "D2", "A1", "Q", "C", "G")), (name, diff)

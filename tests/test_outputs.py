"""The output rule (colddiff.outputs, docs/output-rules.md) as a specification.

1. claim: the one check of whether a command may write its result folder (new, empty, or its own
   earlier result); everything else is refused with one OutputError naming the reason.
2. write_result: claim, stage, write, commit; the manifest and the returned list name the files
   actually committed; a failure (or a kill) leaves the old result whole.
3. owned_files: a table, figure or report among other files replaces only a file colddiff wrote.
4. Every command of the CLI that writes refuses to overwrite a file it did not write (the list of
   commands is read from the argparse parser, so a new command fails here until it is classified).
5. ``--out .``: refused with the reason, nothing written.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colddiff.cli import build_parser, main
from colddiff.errors import OutputError
from colddiff.outputs import (MANIFEST, Output, check_files, claim, owned_files, read_manifest,
                              write_result)

from conftest import make_run

BLUR = dict(name="blur", T=4, params=dict(kernel_size=3, sigma=1.0, padding="reflect"))


def _write(names, text="x"):
    """A writer for write_result: these files (sub-folders allowed), with ``text`` in each."""
    def write(stage):
        for n in names:
            p = stage / n
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return len(names)
    return write


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------- 1. claim
def test_claim_allows_a_new_or_empty_folder_and_returns_a_claimed_output(tmp_path):
    out = claim(tmp_path / "new", "generate")
    assert isinstance(out, Output) and out.path == tmp_path / "new" and os.fspath(out) == str(tmp_path / "new")
    assert not (tmp_path / "new").exists()                    # claiming writes nothing
    (tmp_path / "empty").mkdir()
    assert claim(tmp_path / "empty", "restore").command == "restore"


@pytest.mark.parametrize("setup, command, inputs, fragment", [
    ("users_files", "generate", (), "already holds files colddiff did not write (e.g. photo.png)"),
    ("other_command", "generate", (), "holds the result of `colddiff restore`, not of `colddiff generate`"),
    ("added_file", "restore", (), "holds notes.txt, a file that colddiff did not write"),
    ("link", "generate", (), "is a symbolic link"),
    ("file", "generate", (), "is a file; give a folder"),
    ("input_itself", "restore", ("out",), "is the input folder itself"),
])
def test_claim_refuses_what_it_does_not_own_with_one_reason(tmp_path, setup, command, inputs, fragment):
    out = tmp_path / "out"
    if setup == "file":
        out.write_text("mine")
    elif setup == "link":
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real", target_is_directory=True)
    else:
        out.mkdir()
        (out / ("notes.txt" if setup == "added_file" else "photo.png")).write_text("mine")
        if setup in ("other_command", "added_file"):
            (out / "x.direct.png").write_text("ours")
            (out / MANIFEST).write_text(json.dumps({"format": "colddiff-output-v1", "command": "restore",
                                                    "files": ["x.direct.png"]}))
    before = _snapshot(tmp_path) if setup != "link" else None
    with pytest.raises(OutputError, match="^--out ") as e:
        claim(out, command, inputs=[tmp_path / i for i in inputs])
    assert fragment in str(e.value) and "\n" not in str(e.value)
    if before is not None:
        assert _snapshot(tmp_path) == before


def test_a_folder_inside_the_input_is_refused_and_named(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(OutputError, match="inside the input folder"):
        claim(tmp_path / "photos" / "restored", "restore", inputs=[tmp_path / "photos"])


def test_a_claimed_output_is_not_claimed_again_but_checked_again_before_the_commit(tmp_path):
    out = claim(tmp_path / "gen", "generate")
    assert claim(out, "generate") is out                     # passed on: the same claim
    with pytest.raises(OutputError, match="claimed for `colddiff generate`"):
        claim(out, "restore")

    def write(stage):                                        # the user drops a file in meanwhile
        (tmp_path / "gen").mkdir()
        (tmp_path / "gen" / "mine.txt").write_text("mine")
        return _write(["0000.png"])(stage)
    with pytest.raises(OutputError, match="already holds files colddiff did not write"):
        write_result(out, "generate", write)
    assert _snapshot(tmp_path / "gen") == {"mine.txt": b"mine"}
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]   # no stage left beside it


# ---------------------------------------------------------------------------- 2. write_result
def test_write_result_stages_beside_the_folder_and_commits_in_one_step(tmp_path):
    seen = {}

    def write(stage):
        seen["stage"] = stage.path
        assert stage.path.parent == tmp_path and stage.path.name.startswith(".res.tmp-")
        assert not (tmp_path / "res").exists()               # nothing visible until the commit
        (stage / "a.png").write_text("a")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.png").write_text("b")
        return str(stage.final(stage / "sub" / "b.png"))

    done = write_result(tmp_path / "res", "restore", write)
    assert done.folder == tmp_path / "res" and done.value == str(tmp_path / "res" / "sub" / "b.png")
    assert done.files == [tmp_path / "res" / "a.png", tmp_path / "res" / "sub" / "b.png"]
    assert all(p.is_file() for p in done.files) and not seen["stage"].exists()
    man = read_manifest(tmp_path / "res")
    assert man["command"] == "restore" and man["files"] == ["a.png", "sub/b.png"]


def test_the_record_can_only_name_files_that_were_written(tmp_path):
    with pytest.raises(OutputError, match="was not written"):
        write_result(tmp_path / "res", "restore", lambda stage: stage.final(stage / "planned.png"))
    assert list(tmp_path.iterdir()) == []


def test_a_second_result_replaces_the_first_whole(tmp_path):
    write_result(tmp_path / "g", "generate", _write(["0000.png", "0001.png", "grid.png"]))
    write_result(tmp_path / "g", "generate", _write(["0000.png", "grid.png"], "new"))
    assert _snapshot(tmp_path / "g") == {MANIFEST: (tmp_path / "g" / MANIFEST).read_bytes(),
                                         "0000.png": b"new", "grid.png": b"new"}


def test_a_failing_writer_leaves_the_old_result_whole_and_no_stage(tmp_path):
    write_result(tmp_path / "g", "generate", _write(["0000.png", "grid.png"], "old"))
    before = _snapshot(tmp_path / "g")

    def crash(stage):
        _write(["0000.png"], "half")(stage)
        raise RuntimeError("killed half way")
    with pytest.raises(RuntimeError):
        write_result(tmp_path / "g", "generate", crash)
    assert _snapshot(tmp_path / "g") == before
    assert [p.name for p in tmp_path.iterdir()] == ["g"]


def test_a_killed_writer_leaves_the_old_result_and_the_next_run_clears_its_stage(tmp_path):
    write_result(tmp_path / "g", "generate", _write(["0000.png"], "old"))
    before = _snapshot(tmp_path / "g")
    code = ("import os, signal, sys\nfrom pathlib import Path\nfrom colddiff.outputs import write_result\n"
            "def write(stage):\n    (stage / '0000.png').write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            f"write_result(Path({str(tmp_path / 'g')!r}), 'generate', write)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert p.returncode == -9
    assert _snapshot(tmp_path / "g") == before                # the old result, whole
    assert any(q.name.startswith(".g.tmp-") for q in tmp_path.iterdir())   # the killed writer's stage
    write_result(tmp_path / "g", "generate", _write(["0000.png"], "new"))
    assert [q.name for q in tmp_path.iterdir()] == ["g"] and (tmp_path / "g" / "0000.png").read_text() == "new"


# ---------------------------------------------------------------------------- 3. owned_files
def test_files_among_others_replace_only_what_colddiff_wrote(tmp_path):
    (tmp_path / "mine.md").write_text("mine")
    with pytest.raises(OutputError, match="mine.md already exists and colddiff did not write it"):
        check_files([tmp_path / "mine.md"], "reproduce")
    with pytest.raises(OutputError):
        with owned_files([tmp_path / "new.md", tmp_path / "mine.md"], "reproduce"):
            raise AssertionError("never reached: refused before the block")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.md"]   # nothing written, no manifest
    with owned_files([tmp_path / "table.md"], "reproduce") as (path,):
        path.write_text("1")
    assert read_manifest(tmp_path)["files"] == ["table.md"]
    with owned_files([tmp_path / "table.md"], "reproduce") as (path,):   # its own file: replaced
        path.write_text("2")
    assert (tmp_path / "table.md").read_text() == "2" and (tmp_path / "mine.md").read_text() == "mine"


def test_a_failed_write_of_files_among_others_leaves_no_trace(tmp_path):
    with pytest.raises(RuntimeError):
        with owned_files([tmp_path / "t.md"], "reproduce"):
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_files_are_never_written_into_another_commands_result(tmp_path):
    write_result(tmp_path / "restored", "restore", _write(["x.direct.png"]))
    with pytest.raises(OutputError, match="the result of `colddiff restore`"):
        check_files([tmp_path / "restored" / "strip.png"], "degrade")


def test_a_run_from_before_manifests_keeps_its_evaluation_files_as_colddiffs(tmp_path):
    run = make_run(tmp_path / "run", BLUR).folder             # a checkpoint, no manifest
    (run / "evaluation").mkdir()
    (run / "evaluation" / "restoration.md").write_text("old table")
    (run / "notes.md").write_text("mine")
    with owned_files([run / "evaluation" / "restoration.md"], "evaluate"):
        pass
    assert "evaluation/restoration.md" in read_manifest(run)["files"]
    with pytest.raises(OutputError, match="notes.md already exists"):
        check_files([run / "notes.md"], "report")


# ---------------------------------------------------------------------------- 4. every command that writes
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("world")
    make_run(w / "run", BLUR)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(w / "img.png")
    return w


# command -> (the user's file, relative to the test folder {tmp}, or to the run {run}; the command line)
WRITERS = {
    "degrade": ("{tmp}/photo.png", "degrade -d blur --input {img} --steps 0,2 --out {tmp}/photo.png"),
    "train": ("{tmp}/out/photo.png", "train --preset mnist5k-blur --set train.steps=1 --out {tmp}/out --no-progress"),
    "quickstart": ("{tmp}/out/photo.png", "quickstart --steps 1 --out {tmp}/out --no-progress"),
    "evaluate": ("{run}/evaluation/restoration.md", "evaluate {run} --n 2 --fid none --no-classifier --no-progress"),
    "report": ("{run}/report.html", "report {run} --no-eval --no-progress"),
    "restore": ("{tmp}/out/photo.png", "restore {run} --input {img} --t 1 --out {tmp}/out --no-progress"),
    "generate": ("{tmp}/out/0000.png", "generate {run} --n 2 --out {tmp}/out --no-progress"),
    "export": ("{tmp}/out/README.md", "export {run} --n 2 --out {tmp}/out --no-progress"),
    "reproduce": ("{tmp}/out/table1.md", "reproduce table1 --steps 1 --n 2 --out {tmp}/out --no-progress"),
    "import-official": ("{tmp}/out/photo.png", "import-official {tmp}/model.pt --preset mnist-blur --out {tmp}/out"),
}
# commands that write no file of a user's choosing, and why
NOT_WRITERS = {
    "degradations": "prints the registry",
    "check-degradation": "prints the property checks",
    "networks": "prints parameter counts",
    "presets": "prints configurations",
    "weights": "reads and checks the Inception weights file",
    "demo": "serves a web page; uploads and results stay in memory",
    "data": "download writes only a data set's published files into its own data folder (checksummed), prepare "
            "only colddiff's hidden .colddiff/ folder beside the data",
}


def test_every_command_of_the_cli_is_classified():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(WRITERS) | set(NOT_WRITERS), "a new command: add it to WRITERS (with a case) " \
                                                                "or NOT_WRITERS (with the reason)"


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_every_command_that_writes_refuses_to_overwrite_a_file_it_did_not_write(world, tmp_path, capsys,
                                                                                 monkeypatch, command):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    (run / MANIFEST).write_text(json.dumps({"format": "colddiff-output-v1", "command": "train", "files": [],
                                            "ledger": 1}))   # as `train` marks a run folder
    names = {"tmp": tmp_path, "run": run, "img": world / "img.png"}
    target, line = (s.format(**{k: str(v) for k, v in names.items()}) for s in WRITERS[command])
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(b"the user's own file")
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    assert main(shlex.split(line)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("did not write" in err[0] or "not a colddiff run" in err[0]), err
    assert Path(target).read_bytes() == b"the user's own file"
    assert _snapshot(tmp_path) == before, "a refused command changed files"


# ---------------------------------------------------------------------------- 5. --out .
@pytest.mark.parametrize("line", [
    "generate {run} --n 2 --out . --no-progress",
    "restore {run} --input {img} --t 1 --out . --no-progress",
    "export {run} --n 2 --out . --no-progress",
])
def test_out_dot_is_refused_with_the_reason(world, tmp_path, capsys, monkeypatch, line):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    argv = shlex.split(line.format(run=world / "run", img=world / "img.png"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out . is the folder you are working in" in err[0] and "give a new folder" in err[0]
    assert list(here.iterdir()) == [] and os.getcwd() == str(here)
    assert [p.name for p in tmp_path.iterdir()] == ["here"]


def test_out_parent_of_the_current_folder_is_refused_too(world, tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    with pytest.raises(OutputError, match="is the folder you are working in \\(or holds it\\)"):
        claim("..", "generate")

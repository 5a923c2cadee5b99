"""The train lock explains itself (issue 30, class 7): a lock file that is empty, garbage, unreadable, a folder or a
FIFO is named with what it holds; one that cannot belong to a running training is taken over with one warning."""
import json
import os
import socket
import time

import pytest

import colddiff.outputs as outputs
from colddiff.errors import OutputError
from colddiff.outputs import LOCK, RunLock

OLD = time.time() - 3600  # written an hour ago: long past the moment a training fills its lock


def lock_in(folder, content: bytes, mtime=OLD):
    """A training's run folder (marked by its manifest) whose lock file holds ``content``."""
    folder.mkdir(exist_ok=True)
    (folder / outputs.MANIFEST).write_text(json.dumps({"format": outputs.FORMAT, "command": "train", "files": []}))
    path = folder / LOCK
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def take(folder):
    with RunLock(folder) as lk:
        return json.loads(lk.path.read_text())


@pytest.mark.parametrize("content, holds", [(b"", "is empty"),
                                            (b"\x00\x17garbage{", "holds no lock record (10 bytes: '"),
                                            (b'{"pid": "x", "host": 3}', "holds no lock record"),
                                            (b'[1, 2]', "holds no lock record (6 bytes: '[1, 2]')"),
                                            (b'{"pid": -5, "host": "h"}', "holds no lock record")])
def test_an_old_empty_or_garbage_lock_is_taken_over_with_one_warning_naming_the_file(tmp_path, capsys, content,
                                                                                       holds):
    path = lock_in(tmp_path / "run", content)
    assert take(tmp_path / "run")["pid"] == os.getpid()      # the lock is ours while the block runs
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"colddiff: warning: took over the stale lock of {tmp_path / 'run'}")
    assert f"{path} {holds}" in err[0] and "no running training holds it" in err[0]
    assert not path.exists()                                  # released at the end


def test_a_fresh_garbage_lock_is_waited_for_then_taken_over(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(outputs, "LOCK_GRACE_S", 0.6)
    path = lock_in(tmp_path / "run", b"half a rec", mtime=time.time())
    t0 = time.monotonic()
    take(tmp_path / "run")
    assert time.monotonic() - t0 >= 0.4                       # its writer had the grace period to fill it
    assert f"{path} holds no lock record" in capsys.readouterr().err


def test_a_fresh_lock_filled_by_its_writer_meanwhile_is_respected(tmp_path, monkeypatch):
    path = lock_in(tmp_path / "run", b"", mtime=time.time())
    sleep = time.sleep

    def writer_finishes(s):  # the other training writes its record while we wait
        path.write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": "now"}))
        sleep(s)

    monkeypatch.setattr(outputs.time, "sleep", writer_finishes)
    with pytest.raises(OutputError, match=r"is locked by a training that is still running \(PID 1 on "):
        take(tmp_path / "run")


def test_an_unreadable_lock_of_ours_is_taken_over_naming_why(tmp_path, capsys, monkeypatch):
    path = lock_in(tmp_path / "run", b'{"pid": 99999999, "host": "x"}')
    if os.geteuid() == 0:  # root reads any file: make this one unreadable as it is for a user
        real = outputs.os.open

        def refuse(p, flags, *a):
            if str(p) == str(path) and not flags & os.O_CREAT:
                raise PermissionError(13, "Permission denied")
            return real(p, flags, *a)

        monkeypatch.setattr(outputs.os, "open", refuse)
    else:
        path.chmod(0)
    take(tmp_path / "run")
    err = capsys.readouterr().err
    assert f"{path} cannot be read (Permission denied)" in err and "took over the stale lock" in err


def test_an_unreadable_lock_of_another_user_is_refused(tmp_path, monkeypatch):
    path = lock_in(tmp_path / "run", b"secret")
    monkeypatch.setattr(outputs, "_lock_record", lambda p: (None, "cannot be read (Permission denied)"))
    monkeypatch.setattr(outputs.os, "getuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(OutputError) as e:
        take(tmp_path / "run")
    assert f"{path} cannot be read (Permission denied) and belongs to another user" in str(e.value)
    assert path.read_bytes() == b"secret"


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_lock_that_is_a_folder_or_a_fifo_is_refused_and_kept(tmp_path, kind):
    run = tmp_path / "run"
    lock_in(run, b"").unlink()
    path = run / LOCK
    if kind == "folder":
        path.mkdir()
        (path / "mine.txt").write_text("a user's file")
    else:
        os.mkfifo(path)
    with pytest.raises(OutputError) as e:  # never opened (a FIFO would block), never removed
        take(run)
    what = "a folder" if kind == "folder" else "a FIFO (named pipe)"
    assert str(e.value) == (f"cannot lock {run}: its lock file {path} is {what}, not a lock colddiff wrote; remove it "
                            "if no training is running there, then train again")
    assert path.exists() and (kind != "folder" or (path / "mine.txt").exists())


def test_a_live_lock_is_still_refused_and_a_dead_pid_taken_over(tmp_path, capsys):
    lock_in(tmp_path / "live", json.dumps({"pid": 1, "host": socket.gethostname(), "started": "then"}).encode())
    with pytest.raises(OutputError, match=r"locked by a training that is still running \(PID 1 on .*since then\)"):
        take(tmp_path / "live")
    lock_in(tmp_path / "dead", json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname()}).encode())
    take(tmp_path / "dead")
    assert f"(its training, PID {2 ** 22 + 12345} on {socket.gethostname()}, is no longer running)" in \
        capsys.readouterr().err


def test_a_lock_that_keeps_coming_back_is_reported_with_what_it_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "LOCK_GRACE_S", 0.0)
    lock_in(tmp_path / "run", b"")
    monkeypatch.setattr(RunLock, "_refuse_or_take_over", lambda self: None)  # another process re-creates it at once
    monkeypatch.setattr(outputs.time, "monotonic", iter([0.0, 1.0, 100.0, 200.0]).__next__)
    with pytest.raises(OutputError) as e:
        take(tmp_path / "run")
    assert str(e.value) == (f"cannot lock {tmp_path / 'run'}: another process keeps re-creating its lock file "
                            f"{tmp_path / 'run' / LOCK} (it is empty)")

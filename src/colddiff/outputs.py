"""The output rule: where a command may write, and how a result with many files is committed.

One rule for every command that writes a folder (``generate``, ``restore``, ``export``, ``train``):

* **ownership** – a command writes only into a folder it owns: one it creates, or one it marked
  earlier with a small manifest (:data:`MANIFEST`, a hidden JSON file listing the files it wrote).
  A folder that holds anything else (a user's photos, a symbolic link, a file the manifest does
  not list) is refused with one line before any work; nothing of the user's is ever deleted or
  overwritten.  An output folder that is, or is inside, the command's input is refused too
  (``restore --input photos --out photos/restored`` would restore its own outputs next time).
* **atomic results** – a result of several files (images + index) is written into a private
  temporary sibling folder and then swapped into place in one step (Linux ``renameat2``
  ``RENAME_EXCHANGE``; elsewhere two renames, recovered on the next run), so a command killed at
  any moment leaves the old complete result or the new complete one, never a mix.
* **run locks** – a training run folder is locked (:data:`LOCK`: PID and host) while ``train``
  writes it; a second ``train`` into it is refused, and a lock whose process is gone (same host)
  is taken over with a warning.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Set

from .errors import OutputError
from .fileio import current_umask, os_problem

__all__ = ["MANIFEST", "LOCK", "claim", "staged", "RunLock", "claim_run_folder", "read_manifest", "is_inside"]

MANIFEST = ".colddiff-output.json"
LOCK = ".colddiff-train.lock"
FORMAT = "colddiff-output-v1"
LegacyFiles = Callable[[Path], Optional[Set[str]]]


def is_inside(path, folder) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (symbolic links resolved)."""
    p, f = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return p == f or f in p.parents


def read_manifest(folder) -> Optional[dict]:
    """The manifest colddiff left in ``folder``, or None (absent, unreadable, or not colddiff's)."""
    path = Path(folder) / MANIFEST
    try:
        if path.is_symlink() or not path.is_file():
            return None
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(man, dict) or man.get("format") != FORMAT or not isinstance(man.get("command"), str) \
            or not isinstance(man.get("files", []), list):
        return None
    return man


def _entries(folder: Path) -> Iterator[Path]:
    """Everything under ``folder`` except directories (symbolic links reported, never followed)."""
    for root, dirs, files in os.walk(folder):
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                dirs.remove(d)
                yield Path(root, d)
        for f in files:
            yield Path(root, f)


def _rel(p: Path, folder: Path) -> str:
    return p.relative_to(folder).as_posix()


def claim(out, command: str, inputs: Iterable = (), what: str = "--out",
          legacy: Optional[LegacyFiles] = None) -> Path:
    """Check that ``command`` may write its result into the folder ``out``; return it (``~`` expanded).

    Allowed: a new folder, an empty one, or one holding exactly an earlier result of the same
    command (its manifest lists every file; ``legacy`` may name the files of a result written
    before manifests existed).  Refused with one :class:`OutputError`: a file, a symbolic link,
    a folder holding files colddiff did not write, a folder that is or is inside an input.
    """
    out = Path(out).expanduser()
    for src in inputs:
        if src is not None and Path(src).expanduser().is_dir() and is_inside(out, src):
            same = out.resolve() == Path(src).expanduser().resolve()
            raise OutputError(f"{what} {out} is {'the input folder itself' if same else f'inside the input folder {src}'}"
                              f"; write the results outside it (e.g. {Path(src).expanduser().resolve().parent / (Path(src).name + '-' + command)})")
    if out.is_symlink():
        raise OutputError(f"{what} {out} is a symbolic link; give the folder itself (colddiff replaces its output "
                          "folder as a whole and never writes through a link)")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out} is a file; give a folder (a new or empty one)")
    if not out.exists():
        return out
    entries = [p for p in _entries(out) if p.name != MANIFEST or p.parent != out]
    if not entries:
        return out
    man = read_manifest(out)
    if man is not None and man["command"] != command:
        raise OutputError(f"{what} {out} holds the result of `colddiff {man['command']}`, not of `colddiff {command}`; "
                          "give another folder")
    listed = set(man["files"]) if man is not None else (legacy(out) if legacy else None)
    if listed is None:
        first = _rel(sorted(entries)[0], out)
        raise OutputError(f"{what} {out} already holds files colddiff did not write (e.g. {first}); colddiff never "
                          "overwrites or deletes them: give a new or empty folder")
    foreign = sorted(p for p in entries if p.is_symlink() or _rel(p, out) not in listed)
    if foreign:
        kind = "a symbolic link" if foreign[0].is_symlink() else "a file"
        raise OutputError(f"{what} {out} holds {_rel(foreign[0], out)}, {kind} that colddiff did not write"
                          f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; move it out or give "
                          "another folder (the folder is replaced as a whole)")
    return out


# ---------------------------------------------------------------------------- atomic multi-file results
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _pid_of(name: str, tag: str) -> Optional[int]:
    try:
        return int(name.split(tag, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _recover(parent: Path, name: str) -> None:
    """Clear what a killed writer of ``parent/name`` left: its temporary folder, or the old result
    parked beside it between two renames (put back when the new one never arrived)."""
    if not parent.is_dir():
        return
    for tag in (".tmp-", ".old-"):
        for p in parent.glob(f".{name}{tag}*"):
            pid = _pid_of(p.name, f".{name}{tag}")
            if pid is None or (pid != os.getpid() and _alive(pid)) or not p.is_dir() or p.is_symlink():
                continue
            if tag == ".old-" and not (parent / name).exists():
                os.rename(p, parent / name)
            else:
                shutil.rmtree(p, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


def _swap_in(stage: Path, out: Path) -> None:
    if not out.exists():
        os.rename(stage, out)
        return
    if _exchange(stage, out):  # stage now holds the old result
        shutil.rmtree(stage, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    os.rename(stage, out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged(out, command: str, inputs: Iterable = (), what: str = "--out",
           legacy: Optional[LegacyFiles] = None) -> Iterator[Path]:
    """Yield a private folder beside ``out`` to write a whole result into; on success it replaces ``out``
    in one step, with a manifest listing its files.  On an error (or a kill) ``out`` is untouched."""
    out = claim(out, command, inputs, what, legacy)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _recover(parent, out.name)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as e:
        raise os_problem(e, out) from None
    try:
        yield stage
        files = sorted(_rel(p, stage) for p in _entries(stage) if p.is_file() and not p.is_symlink())
        from . import __version__

        (stage / MANIFEST).write_text(json.dumps({"format": FORMAT, "command": command, "files": files,
                                                  "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                  "colddiff_version": __version__}, indent=1) + "\n",
                                      encoding="utf-8")
        mode = 0o777 & ~current_umask()
        for root, dirs, _ in os.walk(stage):  # mkdtemp's 0700 -> what a new folder gets
            for d in dirs:
                os.chmod(os.path.join(root, d), mode)
        os.chmod(stage, mode)
        claim(out, command, inputs, what, legacy)  # nothing of the user's appeared meanwhile
        _swap_in(stage, out)
    except OSError as e:
        raise os_problem(e, out) from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


# ---------------------------------------------------------------------------- training run folders
def claim_run_folder(out, what: str = "--out") -> Path:
    """A training run folder: new, empty, marked by ``train``, or a run written before manifests existed
    (it has ``checkpoints/`` or ``config.toml``); anything else is refused (it holds the user's files)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out} is a file; give a folder (a new or existing one)")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    man = read_manifest(out)
    if man is not None:
        if man["command"] != "train":
            raise OutputError(f"{what} {out} holds the result of `colddiff {man['command']}`, not a training run; "
                              "give another folder")
        return out
    if (out / "checkpoints").is_dir() or (out / "config.toml").is_file():
        return out
    first = sorted(p.name for p in out.iterdir())[0]
    raise OutputError(f"{what} {out} already holds files that are not a colddiff run (e.g. {first}); give a new or "
                      "empty folder for the run")


LOCK_GRACE_S = 5.0  # a training fills its lock file as it creates it: one still without a record after this never will


def _lock_record(path: Path):
    """((pid, host, since), what the file holds) of a regular lock file; (None, what it holds) without a record."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError as e:
        return None, f"cannot be read ({e.strerror or type(e).__name__})"
    if not raw.strip():
        return None, "is empty"
    try:
        other = json.loads(raw.decode("utf-8"))
        pid, host = int(other["pid"]), str(other["host"])
        if pid <= 0:
            raise ValueError(pid)
        return (pid, host, str(other.get("started", "?"))), f"holds PID {pid} on {host}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        text = raw[:40].decode("utf-8", "replace")
        return None, f"holds no lock record ({len(raw)}{'+' if len(raw) == 4096 else ''} bytes: {text!r})"


def _file_kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode) else
            "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device file")


class RunLock:
    """``with RunLock(folder):`` – the folder is this process's training run until the block ends.

    The lock file holds the PID, the host and the start time.  Another live process's lock is an
    :class:`OutputError`; a lock left by a process that is gone (same host) is taken over with a
    warning.  A folder this lock created, and that nothing else was written into, is removed again.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.created = False

    def __enter__(self) -> "RunLock":
        claim_run_folder(self.folder)
        try:
            self.created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_problem(e, self.folder) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        give_up = time.monotonic() + LOCK_GRACE_S + 5
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if time.monotonic() > give_up:
                    raise OutputError(f"cannot lock {self.folder}: another process keeps re-creating its lock file "
                                      f"{self.path} (it {_lock_record(self.path)[1]})") from None
                self._refuse_or_take_over()
                continue
            except OSError as e:
                self._cleanup()
                raise os_problem(e, self.path) from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
            break
        if read_manifest(self.folder) is None:
            try:
                (self.folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "command": "train", "files": []})
                                                    + "\n", encoding="utf-8")
            except OSError as e:
                self.__exit__()
                raise os_problem(e, self.folder / MANIFEST) from None
        return self

    def _refuse_or_take_over(self) -> None:
        """Another lock file is there: refuse (its training runs, or it cannot be judged) or take it over.

        A record whose process is gone (same host), and a lock that still holds no record once its writer
        had time to fill it (:data:`LOCK_GRACE_S`; empty, garbage, or unreadable and ours), cannot belong to
        a running training: taken over with one warning.  Anything else is refused naming the file and
        what it holds."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return  # released meanwhile: try again
        except OSError as e:
            raise os_problem(e, self.path) from None
        if not stat.S_ISREG(st.st_mode):  # never read (a FIFO would block) nor removed (a folder may hold files)
            raise OutputError(f"cannot lock {self.folder}: its lock file {self.path} is {_file_kind(st.st_mode)}, not "
                              "a lock colddiff wrote; remove it if no training is running there, then train again")
        record, holds = _lock_record(self.path)
        here = socket.gethostname()
        if record is None:
            if 0 <= time.time() - st.st_mtime < LOCK_GRACE_S:  # its writer may be filling it right now
                time.sleep(0.2)
                return
            if holds.startswith("cannot be read") and hasattr(os, "getuid") and st.st_uid != os.getuid():
                raise OutputError(f"cannot lock {self.folder}: its lock file {self.path} {holds} and belongs to "
                                  f"another user (uid {st.st_uid}), whose training may be running; ask them, or "
                                  "delete the file if it is not")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime))
            self._take_over(f"{self.path} {holds} (last written {since}), and a training writes its PID there as it "
                            "starts, so no running training holds it")
            return
        pid, host, since = record
        if host == here and pid != os.getpid() and not _alive(pid):
            self._take_over(f"its training, PID {pid} on {host}, is no longer running")
            return
        raise OutputError(f"{self.folder} is locked by a training that is still running (PID {pid} on {host}, since "
                          f"{since}); wait for it to finish or train into another --out (if it is really gone, "
                          f"delete {self.path})")

    def _take_over(self, why: str) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(f"cannot take over the stale lock {self.path} ({why}): {os_problem(e, self.path)}") \
                from None
        print(f"colddiff: warning: took over the stale lock of {self.folder} ({why})", file=sys.stderr)

    def _cleanup(self) -> None:
        left = {p.name for p in self.folder.iterdir()} if self.folder.is_dir() else set()
        if left <= {MANIFEST, LOCK}:  # nothing was trained here: leave no trace
            for name in left:
                (self.folder / name).unlink(missing_ok=True)
            if self.created:
                try:
                    self.folder.rmdir()
                except OSError:
                    pass

    def __exit__(self, exc_type=None, exc=None, tb=None) -> None:
        from .errors import ColddiffError

        if self.created and exc is not None and isinstance(exc, ColddiffError) and not any(
                (self.folder / "checkpoints").glob("ckpt-*.safetensors")):
            # refused or failed before its first checkpoint: the folder this call made holds nothing to keep
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        try:
            other = json.loads(self.path.read_text(encoding="utf-8"))
            if other.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            pass
        self._cleanup()

"""The output rule: where a command may write, and how a result with many files is committed.

One rule for every command that writes (``generate``, ``restore``, ``export``, ``train``, ``evaluate``,
``report``, ``reproduce``, ``degrade``, ``quickstart``):

* **ownership** – a command writes only into a folder it owns: one it creates, or one it marked
  earlier with a small manifest (:data:`MANIFEST`, a hidden JSON file listing the files it wrote).
  A folder that holds anything else (a user's photos, a symbolic link, a file the manifest does
  not list) is refused with one line before any work; nothing of the user's is ever deleted or
  overwritten.  An output folder that is, or is inside, the command's input is refused too
  (``restore --input photos --out photos/restored`` would restore its own outputs next time), and
  so is the folder the command runs in (``--out .``: a result folder is replaced as a whole).
* **one path for a result folder** – :func:`write_result` claims the folder (:func:`claim`, the one
  function that decides whether a command may write there), stages the result in a private
  temporary sibling folder, lets the command write into it, and commits it in one step (Linux
  ``renameat2`` ``RENAME_EXCHANGE``; elsewhere two renames, recovered on the next run), so a
  command killed at any moment leaves the old complete result or the new complete one, never a
  mix.  The manifest, and the list it returns, name the files that were actually committed.
* **files among others** – a table, a figure or a report written into a folder that holds other
  things (a run folder, ``reproduce --out``, the folder of ``degrade --out FILE``) replaces only a
  file colddiff wrote there: :func:`owned_files` checks every name against the folder's manifest
  before any work and records the names before they are written.
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
from typing import Any, Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set

from .errors import OutputError
from .fileio import atomic_path, current_umask, os_problem

__all__ = ["MANIFEST", "LOCK", "Output", "Committed", "claim", "write_result", "owned_files", "check_files",
           "RunLock", "claim_run_folder", "read_manifest", "is_inside"]

MANIFEST = ".colddiff-output.json"
LOCK = ".colddiff-train.lock"
FORMAT = "colddiff-output-v1"


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


def _write_manifest(folder: Path, man: dict) -> None:
    with atomic_path(folder / MANIFEST) as tmp:
        Path(tmp).write_text(json.dumps(man, indent=1) + "\n", encoding="utf-8")


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


# ---------------------------------------------------------------------------- results written before manifests
def _legacy_generation(folder: Path) -> Optional[Set[str]]:
    """A generation written before manifests: its generation.json lists its images."""
    try:
        info = json.loads((folder / "generation.json").read_text())
        files = info.get("files") if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files) | {"grid.png", "generation.json"}


def _legacy_restore(folder: Path) -> Optional[Set[str]]:
    """A restoration written before manifests: its restore.json lists the images it wrote."""
    try:
        info = json.loads((folder / "restore.json").read_text())
        files = {Path(v).resolve().relative_to(folder.resolve()).as_posix()
                 for rec in info["images"] for k, v in rec.items() if k != "input" and isinstance(v, str)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return files | {"sheet.png", "restore.json"}


_EXPORT_FILES = {"model.safetensors", "config.json", "config.toml", "README.md", "samples.png"}


def _legacy_export(folder: Path) -> Optional[Set[str]]:
    """An export written before manifests: weights and config.json, and only names an export writes."""
    if not ((folder / "model.safetensors").is_file() and (folder / "config.json").is_file()):
        return None
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}
    return {f for f in files if f in _EXPORT_FILES or f.startswith("evaluation/") or
            (f.startswith("generation/gmm-k") and f.endswith(".json"))}


LEGACY = {"generate": _legacy_generation, "restore": _legacy_restore, "export": _legacy_export}


# ---------------------------------------------------------------------------- claiming a result folder
class Output:
    """A result folder that :func:`claim` allowed ``command`` to write (pass it on instead of the path:
    it is not claimed again).  ``os.fspath(output)`` is its path."""

    def __init__(self, path: Path, command: str, inputs: Sequence, what: str):
        self.path, self.command, self.inputs, self.what = path, command, tuple(inputs), what

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Output({str(self.path)!r}, {self.command!r})"


def _refusal(out: Path, command: str, inputs: Iterable, what: str) -> Optional[str]:
    """Why ``command`` may not write its result into ``out`` (None: it may)."""
    for src in inputs:
        if src is not None and Path(src).expanduser().is_dir() and is_inside(out, src):
            same = out.resolve() == Path(src).expanduser().resolve()
            return (f"{what} {out} is {'the input folder itself' if same else f'inside the input folder {src}'}"
                    f"; write the results outside it (e.g. {Path(src).expanduser().resolve().parent / (Path(src).name + '-' + command)})")
    if out.is_symlink():
        return (f"{what} {out} is a symbolic link; give the folder itself (colddiff replaces its output "
                "folder as a whole and never writes through a link)")
    if out.exists() and not out.is_dir():
        return f"{what} {out} is a file; give a folder (a new or empty one)"
    try:
        here = Path.cwd().resolve()
    except OSError:
        here = None
    if here is not None and out.exists() and is_inside(here, out):
        return (f"{what} {out} is the folder you are working in{'' if out.resolve() == here else ' (or holds it)'}; "
                f"colddiff replaces a result folder as a whole, which cannot be done to the current folder: "
                f"give a new folder inside it, e.g. {what} {Path(out) / (command + '-out')}")
    if not out.exists():
        return None
    entries = [p for p in _entries(out) if p.name != MANIFEST or p.parent != out]
    if not entries:
        return None
    man = read_manifest(out)
    if man is not None and man.get("ledger") and man["command"] not in RESULTS + ("train",):
        man = None  # a folder where colddiff wrote single files among the user's (degrade, reproduce)
    if man is not None and man["command"] != command:
        return (f"{what} {out} holds the result of `colddiff {man['command']}`, not of `colddiff {command}`; "
                "give another folder")
    legacy = LEGACY.get(command)
    listed = set(man["files"]) if man is not None else (legacy(out) if legacy else None)
    if listed is None:
        first = _rel(sorted(entries)[0], out)
        return (f"{what} {out} already holds files colddiff did not write (e.g. {first}); colddiff never "
                "overwrites or deletes them: give a new or empty folder")
    foreign = sorted(p for p in entries if p.is_symlink() or _rel(p, out) not in listed)
    if foreign:
        kind = "a symbolic link" if foreign[0].is_symlink() else "a file"
        return (f"{what} {out} holds {_rel(foreign[0], out)}, {kind} that colddiff did not write"
                f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; move it out or give "
                "another folder (the folder is replaced as a whole)")
    return None


def claim(out, command: str, inputs: Iterable = (), what: str = "--out") -> Output:
    """The one check of whether ``command`` may write its result into the folder ``out``.

    Allowed: a new folder, an empty one, or one holding exactly an earlier result of the same
    command (its manifest lists every file; results written before manifests existed are
    recognised by their index file, :data:`LEGACY`).  Refused with one :class:`OutputError`: a
    file, a symbolic link, a folder holding files colddiff did not write, a folder that is or is
    inside an input, the current folder.  An :class:`Output` given as ``out`` was claimed already
    and is returned as it is.
    """
    if isinstance(out, Output):
        if out.command != command:
            raise OutputError(f"{out.path} was claimed for `colddiff {out.command}`, not `colddiff {command}`")
        return out
    path = Path(out).expanduser()
    inputs = tuple(inputs)
    why = _refusal(path, command, inputs, what)
    if why:
        raise OutputError(why)
    return Output(path, command, inputs, what)


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


class Stage:
    """The private folder a result is written into before it is committed (``stage.path``);
    :meth:`final` names where a file written there will be once the result is committed."""

    def __init__(self, path: Path, out: Path):
        self.path, self.out = path, out

    def __truediv__(self, name) -> Path:
        return self.path / name

    def final(self, written) -> Path:
        """The committed path of ``written``, a file already written into the stage (refused if it is not there)."""
        written = Path(written)
        if not written.is_file():
            raise OutputError(f"{written} was not written, so it cannot be listed in the result {self.out}")
        return self.out / written.relative_to(self.path)


class Committed(NamedTuple):
    """What :func:`write_result` committed: the folder, its files (final paths, all present) and what
    the writer returned."""
    folder: Path
    files: List[Path]
    value: Any


def write_result(out, command: str, write: Callable[[Stage], Any], inputs: Iterable = (),
                 what: str = "--out") -> Committed:
    """The one output path of a result folder: claim ``out`` for ``command`` (unless it is an
    :class:`Output` claimed already), stage, let ``write(stage)`` write every file into
    ``stage.path``, and commit: add the manifest listing the staged files and swap the stage
    into place in one step.  On an error (or a kill) ``out`` is untouched.  Returns the committed
    files (final paths) and ``write``'s value.
    """
    dest = claim(out, command, inputs, what)
    out = dest.path
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _recover(parent, out.name)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as e:
        raise os_problem(e, out) from None
    try:
        value = write(Stage(stage, out))
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
        why = _refusal(out, command, dest.inputs, dest.what)  # nothing of the user's appeared meanwhile
        if why:
            raise OutputError(why)
        _swap_in(stage, out)
    except OSError as e:
        raise os_problem(e, out) from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    committed = [out / f for f in files]
    missing = [p for p in committed if not p.is_file()]
    if missing:  # another process replaced the result meanwhile
        raise OutputError(f"{out} changed while it was committed ({missing[0].name} is missing); run the command again")
    return Committed(out, committed, value)


# ---------------------------------------------------------------------------- files among others
RESULTS = ("generate", "restore", "export")   # commands whose folder is one result, replaced as a whole
RUN_PARTS = ("evaluation/", "figures/", "report.html")   # what evaluate and report wrote into a run before ledgers
RUN_COMMANDS = ("evaluate", "report")                    # commands that write their files into a run (or an export)


def _is_run(folder: Path) -> bool:
    man = read_manifest(folder)
    return (man is not None and man["command"] == "train") or (man is None and (
        (folder / "checkpoints").is_dir() or (folder / "config.toml").is_file()))


def _ledger_root(path: Path) -> Path:
    """The folder whose manifest lists ``path``: the nearest of its folder and the one above that colddiff
    marked (a manifest) or that is a run, else its own folder."""
    for folder in (path.parent, path.parent.parent):
        if read_manifest(folder) is not None or _is_run(folder):
            return folder
    return path.parent


def _listed(root: Path, command: str, legacy: Optional[Callable[[Path], bool]]) -> Set[str]:
    man = read_manifest(root) or {}
    if man.get("ledger") or man.get("command") in RESULTS:
        return set(man.get("files", []))
    if _is_run(root):  # a run from before ledgers belonged to colddiff as a whole: evaluate's and report's files
        return {_rel(p, root) for p in _entries(root) if not p.is_symlink() and
                any(_rel(p, root).startswith(part) for part in RUN_PARTS)}
    return {_rel(p, root) for p in _entries(root) if legacy is not None and not p.is_symlink() and legacy(p)}


def check_files(paths: Iterable, command: str, what: str = "--out",
                legacy: Optional[Callable[[Path], bool]] = None) -> List[Path]:
    """Refuse, before any work, to write a file that exists and that colddiff did not write.

    Each path may be written when it does not exist yet, or when the manifest of the folder it
    belongs to (its own folder, or the run or marked folder above) lists it; ``legacy(path)`` may
    recognise a file written before manifests existed.  A folder holding another command's
    result (replaced as a whole by that command) is refused.
    """
    out = []
    for p in paths:
        p = Path(p).expanduser()
        root = _ledger_root(p)
        man = read_manifest(root)
        if man is not None and man["command"] in RESULTS and man["command"] != command and not (
                man["command"] == "export" and command in RUN_COMMANDS):  # an export works wherever a run does
            raise OutputError(f"{what} {p} lies in {root}, the result of `colddiff {man['command']}` (replaced as a "
                              "whole by it); write somewhere else")
        if p.is_symlink():
            raise OutputError(f"{what} {p} is a symbolic link; colddiff never writes through one: give another name")
        if p.exists() and not p.is_dir() and _rel(p, root) not in _listed(root, command, legacy):
            raise OutputError(f"{what} {p} already exists and colddiff did not write it; colddiff never overwrites "
                              "a file it did not write: move it away or give another name")
        out.append(p)
    return out


@contextmanager
def owned_files(paths: Iterable, command: str, what: str = "--out",
                legacy: Optional[Callable[[Path], bool]] = None) -> Iterator[List[Path]]:
    """``with owned_files(paths, command) as paths:`` write each file (atomically) in the block.

    :func:`check_files` first; then the names are recorded in their folder's manifest before they
    are written (a kill never leaves a file of colddiff's unlisted), and the manifest is put back
    as it was when the block fails (a failed command leaves nothing)."""
    paths = check_files(paths, command, what, legacy)
    by_root: dict = {}
    for p in paths:
        by_root.setdefault(_ledger_root(p), []).append(p)
    before = {}
    for root, ps in by_root.items():
        man = read_manifest(root)
        names = sorted(_listed(root, command, legacy) | {_rel(p, root) for p in ps})
        if man is not None and man.get("ledger") and set(man.get("files", [])) >= set(names):
            continue
        before[root] = (root.exists(), man)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_problem(e, root) from None
        _write_manifest(root, {**(man or {"format": FORMAT, "command": command}), "files": names, "ledger": 1})
    try:
        yield paths
    except BaseException:
        for root, (existed, man) in before.items():
            try:
                if man is not None:
                    _write_manifest(root, man)
                else:
                    (root / MANIFEST).unlink(missing_ok=True)
                    if not existed:
                        root.rmdir()
            except (OSError, OutputError):
                pass
        raise


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
                (self.folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "command": "train", "files": [],
                                                                "ledger": 1}) + "\n", encoding="utf-8")
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

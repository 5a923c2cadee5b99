"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader (or a resumed run) therefore sees either the old complete file or the new complete
file, never a half-written one, whenever the writer is killed.  The finished file gets the
permissions of any newly created file (0666 minus the umask), not the temporary file's 0600,
so a shared results folder stays readable to collaborators.

File-system trouble (a read-only folder, a full disk, a path that is a folder) becomes one
:class:`~colddiff.errors.OutputError` naming the path; :func:`check_writable` asks the same
question *before* minutes of work, and :func:`remove_stale` clears what a killed writer left.
A library's own exception that carries an errno (safetensors reports a full disk as
``SafetensorError: ... (os error 28)``) gets the same one line.

Which folders a command may write, results of many files committed as a whole, and run-folder
locks are the output rule of :mod:`colddiff.outputs`, built on these writers.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .errors import OutputError

TMP_PREFIX = ".tmp-"


def current_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def os_problem(e: OSError, path, what: str = "write") -> OutputError:
    """One line for an OSError while writing ``path``: what happened and what to do."""
    hints = {errno.ENOSPC: "the disk is full; free some space", errno.EDQUOT: "the disk quota is exhausted",
             errno.EFBIG: "the file is larger than this system allows (ulimit -f); free space or raise the limit",
             errno.EROFS: "the file system is read-only; choose another folder",
             errno.EACCES: "permission denied; choose a folder you can write to",
             errno.EPERM: "permission denied; choose a folder you can write to",
             errno.EISDIR: "it is a folder; give a file name", errno.ENOTDIR: "a part of the path is a file, not a "
             "folder", errno.EEXIST: "a file of that name is in the way", errno.ENAMETOOLONG: "the name is too long"}
    reason = hints.get(e.errno, e.strerror or str(e))
    return OutputError(f"cannot {what} {path}: {reason} [{errno.errorcode.get(e.errno, e.errno)}]")


_ERRNO_IN_TEXT = re.compile(r"(?:os error |code: |\[Errno )(\d+)")


def embedded_os_error(e: BaseException) -> Optional[OSError]:
    """The OSError behind a library's own exception type, when its message carries the errno.

    safetensors (Rust) reports a full disk as ``SafetensorError: ... Os { code: 28, kind: StorageFull }``
    / ``No space left on device (os error 28)``, not as an OSError."""
    if isinstance(e, OSError):
        return e
    m = _ERRNO_IN_TEXT.search(str(e))
    if m:
        code = int(m.group(1))
        return OSError(code, os.strerror(code))
    return None


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR)


@contextmanager
def atomic_path(path, fsync: bool = False) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    With ``fsync`` the bytes are flushed to disk before the rename makes them visible.
    An OSError of the file system (not of the caller's own code) becomes an OutputError.
    """
    path = Path(path)
    tmp: Optional[str] = None
    try:
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a folder; give a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise os_problem(e, path) from None
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OutputError:
        raise
    except Exception as e:  # an OSError, or a writer library's own error type that carries one
        os_err = embedded_os_error(e)
        if os_err is not None and os_err.errno in _WRITE_ERRNOS:
            raise os_problem(os_err, path) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def check_writable(path, folder: bool = False, what: str = "--out") -> Path:
    """Refuse, before any work, an output that cannot be written: ``path`` (a file, or with ``folder``
    a folder) must not be the other kind, and its folder must accept a new file.

    The check writes and removes one empty temporary file, so it also catches read-only mounts
    and full disks, which permission bits alone do not show (and which root ignores).
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a folder (a new or existing one)")
    if not folder and path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name (e.g. {path / 'out.png'})")
    target = path if folder else path.parent
    probe = target
    while not probe.exists():  # the nearest existing folder decides whether the rest can be created
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write {path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".probe", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise os_problem(e, path) from None
    return path


def remove_stale(folder, patterns=(TMP_PREFIX + "*",), older_than: float = 0.0) -> int:
    """Delete temporary files a killed writer left in ``folder`` (those at least ``older_than`` seconds old)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n, now = 0, time.time()
    for pattern in patterns:
        for p in folder.glob(pattern):
            try:
                if p.is_file() and now - p.stat().st_mtime >= older_than:
                    p.unlink()
                    n += 1
            except OSError:
                pass
    return n

"""Downloading and checking data files against their published checksums.

A download streams into a hidden temporary file in the destination folder (``.NAME.XXXX.part``),
shows a tqdm progress bar, checks the size and the checksum, and only then renames the file
to its final name.  A loader looks for final names only, so an interrupted or corrupt download
can never be read as data; the temporary file is removed on every failure.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from .errors import InputError
from .fileio import current_umask, remove_stale

CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(InputError):
    """No mirror could deliver a file (offline, blocked, server error)."""


class ChecksumError(InputError):
    """A file's checksum differs from the published one."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a data set and its published checksum(s).

    ``md5``/``sha256`` are those of the file as published (for a ``.gz`` file: of the
    compressed bytes).  ``content_md5`` is the md5 of a ``.gz`` file's uncompressed content, so
    that a copy that was decompressed, or recompressed (Debian's Fashion-MNIST package ships
    re-gzipped files whose own md5 differs), can still be verified.
    """

    name: str
    md5: Optional[str] = None
    sha256: Optional[str] = None
    content_md5: Optional[str] = None
    size: Optional[int] = None

    @property
    def plain_name(self) -> str:
        """The file name without ``.gz`` (the uncompressed variant a loader also accepts)."""
        return self.name[:-3] if self.name.endswith(".gz") else self.name

    def sums(self) -> list[str]:
        """Human-readable published checksums, e.g. ``['md5 f68b…']``."""
        out = []
        if self.sha256:
            out.append(f"sha256 {self.sha256}")
        if self.md5:
            out.append(f"md5 {self.md5}")
        if self.content_md5:
            out.append(f"md5 of the uncompressed content {self.content_md5}")
        return out


@dataclass
class Check:
    """The result of checking one file: ``ok`` is True, False, or None (nothing to compare with)."""

    path: Path
    ok: Optional[bool]
    detail: str

    def __str__(self) -> str:
        mark = {True: "ok      ", False: "MISMATCH", None: "unchecked"}[self.ok]
        return f"{mark} {self.path}: {self.detail}"


def file_hash(path: os.PathLike | str, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def gunzip_hash(path: os.PathLike | str, algorithm: str = "md5") -> str:
    """Hex digest of a gzip file's uncompressed content."""
    h = hashlib.new(algorithm)
    with gzip.open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def is_gzip(path: os.PathLike | str) -> bool:
    """Whether a file starts with the gzip magic bytes (names can lie: browsers unpack .gz files)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def check_file(path: os.PathLike | str, spec: FileSpec) -> Check:
    """Compare a present file with the published checksums of ``spec``.

    The file's own bytes are compared with ``sha256``/``md5``; a gzip file that does not match
    is also accepted when its uncompressed content matches ``content_md5``, and an uncompressed
    copy of a ``.gz`` file is compared with ``content_md5``.
    """
    path = Path(path)
    gz = is_gzip(path)
    if not gz and spec.name.endswith(".gz"):
        if not spec.content_md5:
            return Check(path, None, "uncompressed copy; no published checksum of the uncompressed content")
        actual = file_hash(path, "md5")
        ok = actual == spec.content_md5
        return Check(path, ok, f"md5 of the uncompressed content {actual}"
                     + ("" if ok else f", expected {spec.content_md5}"))
    algorithm, expected = ("sha256", spec.sha256) if spec.sha256 else ("md5", spec.md5)
    if not expected:
        return Check(path, None, "no published checksum")
    actual = file_hash(path, algorithm)
    if actual == expected:
        return Check(path, True, f"{algorithm} {actual} (published checksum)")
    if gz and spec.content_md5:
        try:
            content = gunzip_hash(path, "md5")
        except (OSError, EOFError, zlib.error) as e:
            return Check(path, False, f"{algorithm} {actual}, expected {expected}; and it does not unpack ({e})")
        if content == spec.content_md5:
            return Check(path, True, f"recompressed copy: {algorithm} {actual} differs from the published "
                         f"{expected}, but the uncompressed content matches (md5 {content})")
        return Check(path, False, f"{algorithm} {actual}, expected {expected}; uncompressed content md5 "
                     f"{content}, expected {spec.content_md5}")
    return Check(path, False, f"{algorithm} {actual}, expected {expected}")


def _reason(e: BaseException) -> str:
    if isinstance(e, HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, URLError):
        return f"{e.reason}"
    return f"{type(e).__name__}: {e}"


def download(urls: Sequence[str], dest: os.PathLike | str, spec: Optional[FileSpec] = None,
             progress: Optional[bool] = None) -> Path:
    """Download the first of ``urls`` that delivers a good copy to ``dest``; return ``dest``.

    Each mirror is tried in turn; a copy whose size or checksum (``spec``) is wrong is thrown
    away and the next mirror tried.  ``progress`` None shows the bar only on a terminal.
    Raises :class:`ChecksumError` if a mirror delivered a wrong file and none a good one,
    :class:`DownloadError` if none could be reached.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the folder {dest.parent} for {dest.name}: {e.strerror or e}") from None
    # a download killed earlier left its hidden .part file: clear those not written to for a minute
    remove_stale(dest.parent, (f".{dest.name}.*.part",), older_than=60.0)
    failures: list[str] = []
    mismatches: list[str] = []
    for url in urls:
        tmp: Optional[str] = None
        try:
            request = Request(url, headers={"User-Agent": "colddiff (python urllib)"})
            with urlopen(request, timeout=TIMEOUT_S) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
                received = 0
                with os.fdopen(fd, "wb") as f, tqdm(
                        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                        file=sys.stderr, leave=True, disable=None if progress is None else not progress) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        received += len(block)
                        bar.update(len(block))
                    f.flush()
                    os.fsync(f.fileno())
            if total is not None and received != total:
                failures.append(f"{url}: incomplete ({received} of {total} bytes)")
                continue
            if spec is not None:
                check = check_file(tmp, spec)
                if check.ok is False:
                    mismatches.append(f"{url}: {check.detail}")
                    continue
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide the data from other users
            os.replace(tmp, dest)
            tmp = None
            return dest
        except (URLError, OSError, http.client.HTTPException, ValueError) as e:
            # ValueError: a malformed URL; OSError covers timeouts and resets mid-transfer
            failures.append(f"{url}: {_reason(e)}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    if mismatches:
        raise ChecksumError(f"checksum mismatch for {dest.name}, the download was discarded: "
                            + "; ".join(mismatches + failures))
    raise DownloadError(f"cannot download {dest.name}: " + "; ".join(failures or ["no address to download from"]))

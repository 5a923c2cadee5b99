"""MNIST and Fashion-MNIST from their standard IDX files (gzipped or not), loaded into memory.

Checksums: the md5 of each published ``.gz`` file (as torchvision and the data sets' own
pages list them) and the md5 of its uncompressed content.  The latter lets ``verify`` accept
copies that were unpacked, or repacked: Debian's ``dataset-fashion-mnist`` package installs
the four files re-gzipped (their own md5 differs from the published one; their content is
identical), in ``/usr/share/datasets/fashion-mnist``.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from ..download import Check, FileSpec, check_file, download, is_gzip
from ..errors import InputError
from .base import Source
from .common import ArrayImages, download_dir, find_file, show

# Debian's dataset-fashion-mnist package (checked with `apt-get download` + `dpkg -c`, version
# 0.0~git20200523.55506a9-1) installs exactly the four official file names here.
# A dict so that tests (and unusual systems) can point it elsewhere.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

IMAGE_FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}
LABEL_FILES = {"train": "train-labels-idx1-ubyte.gz", "test": "t10k-labels-idx1-ubyte.gz"}

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": FileSpec("train-images-idx3-ubyte.gz", md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                           content_md5="6bbc9ace898e44ae57da46a324031adb", size=9912422),
    "train-labels-idx1-ubyte.gz": FileSpec("train-labels-idx1-ubyte.gz", md5="d53e105ee54ea40749a09fcbcd1e9432",
                                           content_md5="a25bea736e30d166cdddb491f175f624", size=28881),
    "t10k-images-idx3-ubyte.gz": FileSpec("t10k-images-idx3-ubyte.gz", md5="9fb629c4189551a2d022fa330f9573f3",
                                          content_md5="2646ac647ad5339dbf082846283269ea", size=1648877),
    "t10k-labels-idx1-ubyte.gz": FileSpec("t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c",
                                          content_md5="27ae3e4e09519cfbb04c329615203637", size=4542),
}
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": FileSpec("train-images-idx3-ubyte.gz", md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                           content_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a", size=26421880),
    "train-labels-idx1-ubyte.gz": FileSpec("train-labels-idx1-ubyte.gz", md5="25c81989df183df01b3e8a0aad5dffbe",
                                           content_md5="9018921c3c673c538a1fc5bad174d6f9", size=29515),
    "t10k-images-idx3-ubyte.gz": FileSpec("t10k-images-idx3-ubyte.gz", md5="bef4ecab320f06d8554ea6380940ec79",
                                          content_md5="8181f5470baa50b63fa0f6fddb340f0a", size=4422102),
    "t10k-labels-idx1-ubyte.gz": FileSpec("t10k-labels-idx1-ubyte.gz", md5="bb300cfdad3c16e7a12a480ee83cd310",
                                          content_md5="15d484375f8d13e6eb1aabb0c3f46965", size=5148),
}


def read_idx(path: Path, dataset: str = "") -> np.ndarray:
    """An IDX file (gzipped or not: told by its first bytes, not its name) as a uint8 array."""
    path = Path(path)
    hint = f"delete it and load again to download a fresh copy, or check it with `colddiff data verify {dataset}`" \
        if dataset else "replace it with a good copy"
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot read {path}: {e} (truncated or corrupt?); {hint}") from None
    # magic: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[3] == 0:
        raise InputError(f"{path} is not an IDX file (wrong header); {hint}")
    if raw[2] != 0x08:
        raise InputError(f"{path} holds IDX type 0x{raw[2]:02x}, not unsigned bytes (0x08); {hint}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise InputError(f"{path} is truncated (incomplete IDX header); {hint}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    payload = memoryview(raw)[4 + 4 * ndim:]
    expected = int(np.prod(dims, dtype=np.int64))
    if len(payload) != expected:
        raise InputError(f"{path} is truncated or padded: its header says {'x'.join(map(str, dims))} "
                         f"= {expected:,} bytes, it holds {len(payload):,}; {hint}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims).copy()


class IdxSource(Source):
    """A data set of four IDX files: train/t10k images and labels."""

    native = (1, 28, 28)

    def __init__(self, name: str, title: str, table: dict[str, FileSpec], mirrors: tuple[str, ...],
                 licence: str, homepage: str, classes: tuple[str, ...], aliases: tuple[str, ...] = (),
                 citation: str = "", system_package: str = "", short_licence: str = "", hub_id: str = "",
                 hub_licence: str = ""):
        self.name, self.title, self.table, self.mirrors = name, title, table, mirrors
        self.licence, self.homepage, self.classes, self.aliases = licence, homepage, classes, aliases
        self.citation, self.system_package, self.short_licence = citation, system_package, short_licence
        self.hub_id, self.hub_licence = hub_id, hub_licence
        self.counts = {"train": 60000, "test": 10000}

    def system_dirs(self):
        return SYSTEM_DIRS.get(self.name, ())

    def files(self, split: str) -> list[FileSpec]:
        return [self.table[IMAGE_FILES[split]], self.table[LABEL_FILES[split]]]

    def _paths(self, folder: Path, split: str) -> Optional[tuple[Path, Path]]:
        images, labels = (find_file(folder, f) for f in self.files(split))
        return (images, labels) if images and labels else None

    def find(self, split, root=None):
        for loc in self.locations(root):
            if self._paths(loc.path, split):
                return loc.path
        return None

    def placement(self, root=None):
        text = (f"put the files (gzipped or not) in {show(download_dir(self.name, root))} "
                f"(or pass root=DIR, --root DIR)")
        if self.system_package:
            text += f", or install Debian's package (`sudo apt install {self.system_package}`)"
        return text

    def fetch_split(self, split, root=None, progress=None):
        dest = download_dir(self.name, root)
        for spec in self.files(split):
            if find_file(dest, spec) is None:
                download([m + spec.name for m in self.mirrors], dest / spec.name, spec, progress)
        return dest

    def load(self, split, root=None, image_size=None, channels=None, download=True):
        folder = self.find_or_fetch(split, root, download)
        images_path, labels_path = self._paths(folder, split)
        x, y = read_idx(images_path, self.name), read_idx(labels_path, self.name)
        if x.ndim != 3 or y.ndim != 1:
            raise InputError(f"{images_path} and {labels_path} are not an image file (3 dimensions) and a "
                             f"label file (1 dimension); are they swapped or from another data set?")
        if x.shape[0] != y.shape[0]:
            raise InputError(f"{images_path} has {x.shape[0]:,} images but {labels_path} has {y.shape[0]:,} labels; "
                             f"check them with `colddiff data verify {self.name}`")
        return ArrayImages(x[:, None], y, self.name, image_size, channels, self.classes)

    def verify(self, root=None) -> list[Check]:
        checks = []
        for split in self.splits():
            folder = self.find(split, root)
            for spec in self.files(split):
                path = find_file(folder, spec) if folder else None
                if path is None:
                    checks.append(Check(Path(spec.name), False, "missing"))
                else:
                    checks.append(check_file(path, spec))
        return checks


MNIST = IdxSource(
    "mnist", "MNIST handwritten digits (LeCun, Cortes & Burges), 28x28 grey",
    MNIST_FILES,
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    licence="CC BY-SA 3.0 (Y. LeCun and C. Cortes)",
    short_licence="CC BY-SA 3.0",
    hub_id="ylecun/mnist",
    hub_licence="cc-by-sa-3.0",
    homepage="http://yann.lecun.com/exdb/mnist/",
    classes=tuple("0123456789"),
    aliases=("MNIST/raw",),
)
FASHION_MNIST = IdxSource(
    "fashion-mnist", "Fashion-MNIST clothing images (Zalando Research), 28x28 grey",
    FASHION_FILES,
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    licence="MIT (Zalando SE)",
    short_licence="MIT",
    hub_id="zalando-datasets/fashion_mnist",
    hub_licence="mit",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"),
    aliases=("FashionMNIST/raw",),
    citation="Xiao, Rasul & Vollgraf, arXiv:1708.07747 (2017)",
    system_package="dataset-fashion-mnist",
)

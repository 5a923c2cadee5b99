"""Image-folder data sets, decoded lazily: CelebA, AFHQ and ``folder:PATH``.

Files are checked cheaply when the dataset is built (PIL reads the header and, for PNG,
verifies the chunk checksums); an unreadable or non-image file is skipped with one warning
line naming it and listed in ``.skipped``.  A file that only fails when decoded in
``__getitem__`` (a truncated JPEG, say) does not stop an epoch either: the next readable
image takes its place, the file is named in one warning line and listed in ``.bad_at_read``
(per process: DataLoader workers keep their own lists).
"""
from __future__ import annotations

import bisect
import collections
import itertools
import os
import stat
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..download import Check, FileSpec, check_file
from ..errors import ConfigError, InputError
from ..images import DECODE_ERRORS, IMAGE_EXTENSIONS, high_depth_to_float, to_tensor, upright, upright_size
from .base import Source
from .common import check_image_size, download_dir, log, show, warn_skipped
from .prepared import attach

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# Photos cut into crops as they are read are decoded once and kept (per process) up to this many
# pixels, the most recently used first: a batch of crops from a few photos decodes each photo once.
PICTURE_CACHE_PIXELS = 48_000_000


def inside(path, root) -> bool:
    """Whether the real path ``path`` is ``root`` or under it (both real paths, as :func:`os.path.realpath` gives)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def list_image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; hidden files and folders (``.x``,
    e.g. macOS's ``._photo.jpg`` companions) are left out.

    Data folders never lead outside themselves: only regular files inside the folder's real path
    are listed.  Symbolic links (to files or folders) that leave it (a link to ``/``, ``/proc/self``'s
    ``cwd``) and special files (FIFOs, devices, sockets: reading one blocks) are skipped with one
    warning line that counts them; links inside the folder are followed once."""
    root = os.path.realpath(folder)
    out: list[Path] = []
    seen: set[str] = set()
    outside = special = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if inside(os.path.realpath(os.path.join(dirpath, d)), root):
                keep.append(d)
            else:
                outside += 1
        dirnames[:] = keep
        for f in filenames:
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            p = os.path.join(dirpath, f)
            if not inside(os.path.realpath(p), root):
                outside += 1
                continue
            try:
                mode = os.stat(p).st_mode
            except OSError:  # a broken link: listed, and reported as unreadable by the probe
                mode = stat.S_IFREG
            if not stat.S_ISREG(mode):
                special += 1
                continue
            out.append(Path(p))
    if outside or special:
        log.warning("%s: skipped %d symbolic link(s) leading outside the folder and %d special file(s) (FIFOs, "
                    "devices, sockets); only regular files inside the data folder are read", show(folder),
                    outside, special)
    return sorted(out)


def check_out_outside(name: str, out) -> None:
    """Refuse a run folder ``out`` inside its own ``folder:PATH`` data: later trainings on that folder
    would read the run's figures and samples as training images."""
    if not isinstance(name, str) or not name.startswith("folder:") or not name[len("folder:"):]:
        return
    data_root = os.path.realpath(os.path.expanduser(name[len("folder:"):]))
    if inside(os.path.realpath(os.path.expanduser(str(out))), data_root):
        raise ConfigError(f"the run folder {out} is inside its own data folder {name[len('folder:'):]}: later "
                          "trainings on that folder would read the run's figures as images; give --out outside it")


def probe(path: Path) -> Tuple[Optional[Tuple[int, int, str]], str]:
    """((width, height, mode), "") for a readable image header, else (None, reason)."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:  # verify() leaves the image unusable: the header again
            info = (*upright_size(im), im.mode)  # as the picture is shown (EXIF orientation)
        return info, ""
    except DECODE_ERRORS as e:
        return None, f"not a readable image ({type(e).__name__}: {e})"


class ImageFiles(Dataset):
    """Image files decoded on demand into (C, H, W) tensors in [-1, 1], with integer labels.

    ``crop`` takes a centred square of that side first (CelebA); otherwise, when
    ``image_size`` is given, non-square images are centre-cropped to a square.  Then images
    are resized to ``image_size``² (PIL bicubic, which filters when shrinking).  Without
    ``image_size`` all images must share one size.  ``check`` probes every file now (skipping
    bad ones); without it only decoding at read time guards against bad files.

    ``native_crops`` (``folder:PATH``, checked files): an image at least twice ``image_size`` on both
    sides (a photo: it holds 4 or more whole tiles) is not resized but cut into ``image_size``² crops at
    its own scale.  Such an image counts
    as one item per whole tile it holds ((W // n)·(H // n)), so an epoch sees about as many pixels as
    the photos hold.  Item ``ds[i]`` is that tile of a fixed, centred grid (evaluation, sample
    grids); ``ds[(i, key)]`` is a crop at a random place drawn from a generator seeded by ``key``
    (training: the key is a function of the item's place in the seeded data order, so a resumed
    run cuts exactly the same crops).  Smaller images (a folder of images made at about the run's size)
    take the centre-crop-and-resize path, one item each.  ``crops_at_load`` says whether any image is cut that way.
    """

    def __init__(self, files: Sequence[Path], labels: Sequence[int], name: str, image_size: Optional[int] = None,
                 channels: Optional[int] = None, crop: Optional[int] = None, classes: Sequence[str] = (),
                 check: bool = True, skipped: Sequence[Tuple[Path, str]] = (), native_crops: bool = False):
        self.name, self.image_size, self.crop, self.classes = name, image_size, crop, list(classes)
        self.native_crops = bool(native_crops and image_size and crop is None)
        self.skipped: list[Tuple[Path, str]] = list(skipped)
        self.bad_at_read: list[Path] = []
        keep_files, keep_labels, sizes, modes, file_sizes = [], [], {}, set(), []
        for f, y in zip(files, labels):
            if check:
                info, why = probe(f)
                if info is None:
                    self.skipped.append((Path(f), why))
                    continue
                sizes.setdefault(info[:2], f)
                modes.add(info[2])
                file_sizes.append(info[:2])
            keep_files.append(Path(f))
            keep_labels.append(int(y))
        warn_skipped(self.skipped[len(skipped):])
        if not keep_files:
            raise InputError(self._none_usable())
        self.files, self.labels = keep_files, keep_labels
        # what the files hold (checked files only): 1 when all are grey, 3 otherwise
        self.native_channels = (1 if modes <= GREY_MODES else 3) if modes else None
        if channels is None:
            if not modes:  # unchecked: look at the first file
                modes = {(probe(self.files[0])[0] or (0, 0, "RGB"))[2]}
            channels = 1 if modes <= GREY_MODES else 3
        self.channels = channels
        if image_size is None and crop is None:
            if len(sizes) > 1:
                (s1, f1), (s2, f2) = list(sizes.items())[:2]
                raise InputError(f"images of {name} differ in size ({show(f1)} is {s1[0]}x{s1[1]}, {show(f2)} is "
                                 f"{s2[0]}x{s2[1]}); pass image_size=N (--size N) to centre-crop and resize them")
            w, h = next(iter(sizes)) if sizes else (probe(self.files[0])[0] or (0, 0))[:2]
            self.shape = (channels, h, w)
        else:
            side = image_size if image_size is not None else crop
            self.shape = (channels, side, side)
        self._bad: set[int] = set()
        n = self.image_size
        # items per file: every whole n x n tile of a photo cut at its own scale, else the file once
        self.tiles = [(w // n) * (h // n) if self._at_own_scale(w, h) else 1
                      for w, h in (file_sizes or [(0, 0)] * len(self.files))]
        self.crops_at_load = any(self._at_own_scale(w, h) for w, h in sizes)
        self._ends = list(itertools.accumulate(self.tiles))
        self._pictures: collections.OrderedDict = collections.OrderedDict()  # path -> decoded picture

    def _at_own_scale(self, w: int, h: int) -> bool:
        """Whether a w x h image is cut at its own scale: a photo at least twice the run's size on both sides."""
        n = self.image_size
        return self.native_crops and w >= 2 * n and h >= 2 * n

    @property
    def n_skipped(self) -> int:
        """Files left out: unusable when the dataset was built, or when decoded (this process)."""
        return len(self.skipped) + len(self.bad_at_read)

    def _none_usable(self) -> str:
        shown = ", ".join(show(p) for p, _ in self.skipped[:3]) + (" ..." if len(self.skipped) > 3 else "")
        return f"data set {self.name} has no usable images: all {len(self.skipped)} files were unreadable ({shown})"

    def __len__(self) -> int:
        return self._ends[-1]

    def decode(self, path: Path, key: Optional[int] = None, tile: int = 0) -> torch.Tensor:
        """One file as a tensor of this dataset's shape (a photo cut at its own scale: the crop seeded by
        ``key``, or without a key grid tile number ``tile``)."""
        img = self._pictures.get(path) if self.crops_at_load else None
        if img is None:
            img = self.picture(path)
            if self.crops_at_load:
                self._remember(path, img)
        else:
            self._pictures.move_to_end(path)
        w, h = img.size
        n = self.image_size
        if self._at_own_scale(w, h):  # a crop at the photo's own scale
            img = img.crop(self.crop_box(w, h, key, tile))
        else:  # a centred square, resized to the run's size
            side = min(self.crop, w, h) if self.crop else (min(w, h) if n and w != h else None)
            if side:
                left, top = (w - side) // 2, (h - side) // 2
                img = img.crop((left, top, left + side, top + side))
            if n and img.size != (n, n):
                img = img.resize((n, n), Image.Resampling.BICUBIC)
        x = to_tensor(img, self.channels)
        if tuple(x.shape) != self.shape:
            raise ValueError(f"decoded to {tuple(x.shape)}, expected {self.shape}")
        return x

    def picture(self, path: Path) -> Image.Image:
        """One file decoded, upright (EXIF orientation), in this dataset's channels."""
        with Image.open(path) as opened:
            opened.load()
            im = upright(opened)
            return im.convert("L" if self.channels == 1 else "RGB") if not im.mode.startswith("I") else \
                high_depth_to_float(im)  # 16-bit files scaled, not clipped to white

    def _remember(self, path: Path, img: Image.Image) -> None:
        self._pictures[path] = img
        while len(self._pictures) > 1 and sum(p.width * p.height for p in self._pictures.values()) \
                > PICTURE_CACHE_PIXELS:
            self._pictures.popitem(last=False)

    def __getstate__(self):  # DataLoader workers start with an empty cache
        d = dict(self.__dict__)
        d["_pictures"] = collections.OrderedDict()
        return d

    def crop_box(self, w: int, h: int, key: Optional[int], tile: int = 0) -> Tuple[int, int, int, int]:
        """(left, top, right, bottom) of the image_size² crop of a w×h image: drawn uniformly from a
        generator seeded by ``key``, or with ``key`` None tile number ``tile`` of the centred grid of
        whole tiles (row by row)."""
        n = self.image_size
        if key is None:
            cols, rows = w // n, h // n
            tile %= cols * rows
            left = (w - cols * n) // 2 + (tile % cols) * n
            top = (h - rows * n) // 2 + (tile // cols) * n
        else:
            g = torch.Generator().manual_seed(int(key))
            top = int(torch.randint(0, h - n + 1, (1,), generator=g))
            left = int(torch.randint(0, w - n + 1, (1,), generator=g))
        return left, top, left + n, top + n

    def __getitem__(self, item) -> Tuple[torch.Tensor, int]:
        i, key = item if isinstance(item, tuple) else (item, None)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i %= n
        for k in range(n):  # the next readable image stands in for an unreadable one
            j = bisect.bisect_right(self._ends, (i + k) % n)  # the file of item i + k
            if j in self._bad:
                continue
            try:
                tile = (i + k) % n - (self._ends[j] - self.tiles[j])
                return self.decode(self.files[j], key, tile), self.labels[j]
            except DECODE_ERRORS as e:
                self._bad.add(j)
                self.bad_at_read.append(self.files[j])
                log.warning("skipping unreadable image %s (%s: %s); another image takes its place",
                            self.files[j], type(e).__name__, e)
        raise InputError(f"data set {self.name} has no readable image left ({len(self._bad)} failed to decode)")


# ---------------------------------------------------------------------------- folder:PATH
SPLIT_DIRS = {"train": ("train",), "test": ("test",), "valid": ("valid", "val")}


def labelled_files(folder: Path, classes: Optional[Sequence[str]] = None) -> tuple[list[Path], list[int], list[str]]:
    """Image files under ``folder`` with labels from their first-level sub-folder (sorted
    names -> 0, 1, ...; ``classes`` fixes the names and ignores other sub-folders).
    Files directly in ``folder`` get -1, as do all files when there are no sub-folders."""
    files = list_image_files(folder)
    if classes is None:
        classes = sorted({f.relative_to(folder).parts[0] for f in files if len(f.relative_to(folder).parts) > 1})
    index = {c: k for k, c in enumerate(classes)}
    out_f, out_y = [], []
    for f in files:
        parts = f.relative_to(folder).parts
        if len(parts) == 1:
            label = -1
        elif parts[0] in index:
            label = index[parts[0]]
        else:
            continue
        out_f.append(f)
        out_y.append(label)
    return out_f, out_y, list(classes)


def folder_splits(path: Path) -> dict[str, Path]:
    """Split sub-folders of ``path`` (train/, test/, valid/ or val/), if it has any."""
    out = {}
    for split, names in SPLIT_DIRS.items():
        for n in names:
            if (path / n).is_dir():
                out[split] = path / n
                break
    return out


def load_folder(spec: str, split: str = "train", image_size=None, channels=None) -> ImageFiles:
    """``folder:PATH``: any folder of images, recursively, labels from sub-folders.

    A folder with ``train/`` and ``test/`` (and ``valid/`` or ``val/``) sub-folders is split by
    them; any other folder is one split, ``train`` (also called ``all``).
    """
    if not spec:
        raise InputError("folder: needs a path, e.g. folder:~/pictures/faces")
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"folder not found: {spec}")
    if not path.is_dir():
        raise InputError(f"folder:{spec} is a file; give the folder that holds the images")
    image_size = check_image_size(f"folder:{spec}", image_size)
    splits = folder_splits(path)
    if splits:
        if split not in splits:
            raise InputError(f"folder:{spec} has split sub-folders {', '.join(splits)}, not {split!r}")
        if not inside(os.path.realpath(splits[split]), os.path.realpath(path)):
            raise InputError(f"folder:{spec}: {splits[split].name}/ is a link to {os.path.realpath(splits[split])}, "
                             f"outside the data folder; colddiff reads only files inside it: copy the images in, or "
                             f"give folder:{os.path.realpath(splits[split])}")
        path = splits[split]
    elif split not in ("train", "all"):
        raise InputError(f"folder:{spec} has no {split!r} split: without train/ and test/ sub-folders all its "
                         f"images form the 'train' split (also called 'all')")
    files, labels, classes = labelled_files(path)
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {show(path)}")
    # a prepared copy (colddiff data prepare) when one is valid, else the files decoded per item
    return attach(lambda: ImageFiles(files, labels, f"folder:{spec}", image_size, channels, classes=classes,
                                     native_crops=True),
                  Path(spec).expanduser(), split if splits else "train", image_size, channels, files)


# ---------------------------------------------------------------------------- CelebA
class CelebA(Source):
    """CelebA's aligned-and-cropped faces (178x218 JPEGs) with the official partition.

    Each image is centre-cropped to 128x128 and resized to image_size (64 or 128), as in the
    Cold Diffusion authors' code (decolor-diffusion/diffusion/get_dataset.py: CenterCrop(128),
    then Resize(64) for 64x64).  202,599 files are too many to probe one by one at every load:
    the folder listing is checked against the partition file, and decoding guards the rest.
    """

    name = "celeba"
    title = "CelebA aligned & cropped faces (Liu et al., 2015), centre-cropped to 128x128"
    licence = "non-commercial research and education only (CelebA agreement)"
    short_licence = "non-commercial research"
    hub_id = "celeba"
    homepage = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
    citation = "Z. Liu, P. Luo, X. Wang, X. Tang, Deep Learning Face Attributes in the Wild, ICCV 2015"
    native = (3, 218, 178)
    counts = {"train": 162770, "valid": 19867, "test": 19962}
    default_size = 128
    CROP = 128
    SIZES = (64, 128)
    IMAGES = "img_align_celeba"
    PARTITION = FileSpec("list_eval_partition.txt", md5="d32c9cbf5e040fd4025c592c306e6668")
    ZIP = FileSpec("img_align_celeba.zip", md5="00d2c5bc6d35e252742224ab0c1e8fcb")
    SPLIT_CODES = {"train": "0", "valid": "1", "test": "2"}

    def size_rule(self):
        return f"64 or 128 (default 128), after a centre crop of {self.CROP}x{self.CROP}"

    def check_size(self, image_size):
        return check_image_size(self.name, image_size, allowed=self.SIZES)

    def files(self, split):
        return [FileSpec(self.IMAGES + "/"), self.PARTITION, self.ZIP]

    def wanted(self, split):
        return f"the folder {self.IMAGES}/ (000001.jpg ...) and {self.PARTITION.name}"

    def find(self, split, root=None):
        for loc in self.locations(root):
            if (loc.path / self.IMAGES).is_dir() and (loc.path / self.PARTITION.name).is_file():
                return loc.path
        return None

    def status(self, root=None):
        st = super().status(root)
        if not st.where:
            zips = [loc.path for loc in self.locations(root) if (loc.path / self.ZIP.name).is_file()]
            if zips:
                st.note = f"{self.ZIP.name} found in {show(zips[0])} but not unzipped"
        return st

    def placement(self, root=None):
        dest = show(download_dir(self.name, root))
        return (f"download {self.ZIP.name} (Align&Cropped Images) and {self.PARTITION.name} (Eval) from "
                f"{self.homepage} (Google Drive/Baidu links), unzip the images so that {dest}/{self.IMAGES}/000001.jpg "
                f"exists and put {self.PARTITION.name} beside that folder in {dest}")

    def missing(self, split, root=None, reason=None, download=True):
        msg = super().missing(split, root, reason, download)
        note = self.status(root).note
        return msg + (f"; note: {note}" if note else "")

    def partition(self, folder: Path) -> dict[str, list[str]]:
        """Split name -> file names, from the official partition file (``000001.jpg 0``)."""
        path = folder / self.PARTITION.name
        codes = {v: k for k, v in self.SPLIT_CODES.items()}
        out: dict[str, list[str]] = {s: [] for s in self.SPLIT_CODES}
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in codes:
                raise InputError(f"{path} line {n} is {line.strip()!r}, expected 'NAME.jpg 0|1|2'; "
                                 f"check it with `colddiff data verify {self.name}`")
            out[codes[parts[1]]].append(parts[0])
        return out

    def load(self, split, root=None, image_size=None, channels=None, download=True):
        folder = self.find_or_fetch(split, root, download=False)
        names = self.partition(folder)[split]
        present = set(os.listdir(folder / self.IMAGES))  # one listing, not 200,000 stat calls
        files, skipped = [], []
        for n in names:
            if n in present:
                files.append(folder / self.IMAGES / n)
            else:
                skipped.append((folder / self.IMAGES / n, "listed in the partition file but missing"))
        warn_skipped(skipped)
        if not files:
            raise InputError(f"data set 'celeba' ({split} split): none of the {len(names):,} images listed for it in "
                             f"{show(folder / self.PARTITION.name)} is in {show(folder / self.IMAGES)}")
        image_size = self.default_size if image_size is None else image_size
        return attach(lambda: ImageFiles(files, [-1] * len(files), self.name, image_size, channels or 3, crop=self.CROP,
                                         check=False, skipped=skipped),
                      folder, split, image_size, channels or 3, files)

    def verify(self, root=None) -> list[Check]:
        folder = self.find("train", root)
        if folder is None:
            return [Check(Path(self.wanted("train")), False, "missing")]
        checks = [check_file(folder / self.PARTITION.name, self.PARTITION)]
        if (folder / self.ZIP.name).is_file():
            checks.append(check_file(folder / self.ZIP.name, self.ZIP))
        listed = sum(len(v) for v in self.partition(folder).values())
        present = set(os.listdir(folder / self.IMAGES))
        lacking = sum(n not in present for names in self.partition(folder).values() for n in names)
        checks.append(Check(folder / self.IMAGES, lacking == 0,
                            f"{listed - lacking:,} of the {listed:,} images listed in the partition file are present"
                            + ("" if lacking == 0 else f" ({lacking:,} missing)")))
        return checks


# ---------------------------------------------------------------------------- AFHQ
class AFHQ(Source):
    """Animal Faces-HQ (StarGAN v2): 512x512 cats, dogs and wild animals in
    ``train|test/cat|dog|wild/*.jpg|png``; labels from the sub-folder."""

    name = "afhq"
    title = "AFHQ animal faces (Choi et al., 2020): cat, dog, wild; 512x512 colour"
    licence = "CC BY-NC 4.0 (NAVER Corp.)"
    short_licence = "CC BY-NC 4.0"
    hub_id, hub_licence = "afhq", "cc-by-nc-4.0"
    homepage = "https://github.com/clovaai/stargan-v2#animal-faces-hq-dataset-afhq"
    citation = "Y. Choi, Y. Uh, J. Yoo, J.-W. Ha, StarGAN v2: Diverse Image Synthesis for Multiple Domains, CVPR 2020"
    native = (3, 512, 512)
    counts = {"train": 14630, "test": 1500}
    classes = ("cat", "dog", "wild")
    default_size = 128

    def size_rule(self):
        return "any image_size from 4 to 512 (default 128), resized after a centre square crop"

    def check_size(self, image_size):
        return check_image_size(self.name, image_size, largest=512, why="its images are 512x512")

    def files(self, split):
        return [FileSpec(f"{split}/{c}/") for c in self.classes]

    def wanted(self, split):
        return f"the folders {split}/cat, {split}/dog and {split}/wild"

    def find(self, split, root=None):
        for loc in self.locations(root):
            if any((loc.path / split / c).is_dir() for c in self.classes):
                return loc.path
        return None

    def placement(self, root=None):
        dest = show(download_dir(self.name, root))
        return (f"download afhq.zip as StarGAN v2's download.sh does (bash download.sh afhq-dataset, "
                f"{self.homepage}) and unzip it so that {dest}/train/cat/ exists")

    def load(self, split, root=None, image_size=None, channels=None, download=True):
        folder = self.find_or_fetch(split, root, download=False)
        files, labels, _ = labelled_files(folder / split, self.classes)
        files, labels = [f for f, y in zip(files, labels) if y >= 0], [y for y in labels if y >= 0]
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {show(folder / split)}/cat|dog|wild")
        image_size = self.default_size if image_size is None else image_size
        return attach(lambda: ImageFiles(files, labels, self.name, image_size, channels or 3, classes=self.classes),
                      folder, split, image_size, channels or 3, files)

    def verify(self, root=None) -> list[Check]:
        checks = []
        for split in self.splits():
            folder = self.find(split, root)
            if folder is None:
                checks.append(Check(Path(self.wanted(split)), False, "missing"))
                continue
            files, labels, _ = labelled_files(folder / split, self.classes)
            counts = {c: labels.count(k) for k, c in enumerate(self.classes)}
            total = sum(counts.values())
            checks.append(Check(folder / split, None if total else False,
                                f"{total:,} images ({', '.join(f'{c} {n:,}' for c, n in counts.items())}); "
                                f"official v1: {self.counts[split]:,}; AFHQ publishes no checksums"))
        return checks


CELEBA = CelebA()
AFHQ_SOURCE = AFHQ()

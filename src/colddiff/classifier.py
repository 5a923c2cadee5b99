"""A small CNN classifier, trained by colddiff on a labelled data set and cached.

It serves two purposes where Inception-v3 is unavailable or unsuitable:

- an offline FID back end: the Fréchet distance is computed on its penultimate (128-d)
  features instead of Inception's 2048-d pool features (``colddiff.metrics``).  The numbers
  are on a different scale from the paper's, so every such FID says which back end and which
  classifier accuracy it comes from;
- a semantic check of restorations: "does the deblurred 7 still read as a 7?" — class
  accuracy of restored test images, and class histograms of generated ones.

One classifier per (data set, image size, channels), trained once (about 20 s on two CPU
cores for mnist-5k) and kept as a single safetensors file with JSON metadata in
``<cache_root()>/classifiers/``, so that loading never runs code from the file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import data
from .data.common import cache_root, show
from .data.folders import folder_splits
from .errors import ConfigError, InputError
from .fileio import atomic_path

log = logging.getLogger("colddiff.classifier")

FORMAT = "colddiff-classifier/1"
FEATURE_DIM = 128
# Larger images are resized to this side inside the network: a 4-conv CNN sees the class of a
# 128px face as well at 64px, at a sixteenth of the CPU time.
MAX_WORK_SIZE = 64
BATCH_SIZE = 128
MIN_STEPS = 300
LR = 3e-3
HOLDOUT = 0.1                 # fraction of train held out for the accuracy when there is no test split
# Seconds per image per epoch of the 16-wide net on 28px images on two CPU cores (measured on
# mnist-5k), for the "about N s" estimate only.
CPU_SECONDS_PER_IMAGE = 4e-4
LABELLED_SETS = "mnist-5k, mnist, fashion-mnist, cifar10, afhq, or a folder with class sub-folders"


def default_epochs(n_train: int) -> int:
    """Fewer passes over larger sets (mnist-5k: 10 epochs, 360 steps; 50,000 images: 4 epochs,
    1,564 steps), but at least MIN_STEPS optimizer steps however small the set."""
    base = 10 if n_train <= 10_000 else 6 if n_train <= 30_000 else 4
    return max(base, math.ceil(MIN_STEPS / math.ceil(n_train / BATCH_SIZE)))


def architecture(image_size: int, channels: int) -> dict:
    """The network's settings (stored in the cache file; a change in code means retraining).

    Grey images (digits, clothes) need fewer filters than colour photographs."""
    return dict(name="cnn4", width=16 if channels == 1 else 32, dim=FEATURE_DIM, dropout=0.3,
                work_size=min(image_size, MAX_WORK_SIZE))


# ---------------------------------------------------------------------------- the network
def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class Net(nn.Module):
    """conv w, conv w, pool, conv 2w, conv 2w, pool, adaptive 4x4 average, fc 128, fc K.

    The adaptive pooling makes the same layers work for any image size >= 8 (4x4 cells of
    the last feature map), and the 128-d ReLU layer before the last is the FID feature space.
    """

    def __init__(self, channels: int, num_classes: int, width: int = 16, dim: int = FEATURE_DIM,
                 dropout: float = 0.3, work_size: int = 28, name: str = "cnn4"):
        super().__init__()
        w = width
        self.work_size = work_size
        self.body = nn.Sequential(
            *conv_bn_relu(channels, w), *conv_bn_relu(w, w), nn.MaxPool2d(2),
            *conv_bn_relu(w, 2 * w), *conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(2 * w * 16, dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.work_size or x.shape[-2] != self.work_size:
            x = F.interpolate(x, size=(self.work_size, self.work_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def random_shift(x: Tensor, s: int, generator: torch.Generator) -> Tensor:
    """Translate each image by up to ``s`` pixels each way (edges repeated): digits and
    objects keep their class when moved a little, and the classifier learns not to care."""
    n, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s), mode="replicate")
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------- the classifier
class Classifier:
    """A trained :class:`Net` with what it was trained for, as a FID feature extractor and a
    class predictor.  Inputs are image batches (N, C, H, W) in [-1, 1] on any device."""

    name = "classifier"

    def __init__(self, net: Net, data_name: str, image_size: int, channels: int, num_classes: int,
                 accuracy: float, meta: Optional[dict] = None, device="cpu", batch_size: int = 500):
        self.net = net.to(device).eval()
        self.data_name, self.image_size, self.channels = data_name, image_size, channels
        self.num_classes, self.accuracy = num_classes, float(accuracy)
        self.dim = net.body[-2].out_features
        self.meta = dict(meta or {})
        self.classes: list[str] = list(self.meta.get("classes") or [])
        self.device, self.batch_size = torch.device(device), batch_size

    def __repr__(self) -> str:
        return (f"Classifier({self.data_name!r}, {self.channels}x{self.image_size}x{self.image_size}, "
                f"{self.num_classes} classes, test accuracy {100 * self.accuracy:.1f}%)")

    def _batches(self, x: Tensor, fn) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, self.image_size, self.image_size):
            raise InputError(f"the {self.data_name} classifier takes images shaped (N, {self.channels}, "
                             f"{self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                xb = x[i:i + self.batch_size].to(self.device, torch.float32).clamp(-1, 1)
                out.append(fn(xb).cpu())
        return torch.cat(out) if out else fn(x[:0].to(self.device, torch.float32)).cpu()

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features, (N, dim) float64 on the CPU: the FID feature space."""
        return self._batches(x, self.net.features).double()

    def logits(self, x: Tensor) -> Tensor:
        return self._batches(x, self.net).float()

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities (softmax), (N, num_classes) float32 on the CPU."""
        return self.logits(x).softmax(1)

    def predict(self, x: Tensor) -> Tensor:
        """Most likely class, (N,) int64."""
        return self.logits(x).argmax(1)


# ---------------------------------------------------------------------------- data
def _is_folder(name: str) -> bool:
    return name.startswith(data.FOLDER_PREFIX)


def cache_key(data_name: str) -> str:
    """The identity of a data set in the cache: its name, or a folder's resolved path."""
    if _is_folder(data_name):
        return data.FOLDER_PREFIX + str(Path(data_name[len(data.FOLDER_PREFIX):]).expanduser().resolve())
    return data_name


def cache_path(data_name: str, image_size: int, channels: int) -> Path:
    """``<cache_root()>/classifiers/<name>-<size>px-<channels>c.safetensors``; a ``folder:PATH``
    is named by the folder's base name and a short hash of its resolved path."""
    if _is_folder(data_name):
        key = cache_key(data_name)
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(key[len(data.FOLDER_PREFIX):]).name).strip("-.") or "root"
        stem = f"folder-{base}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    else:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", data_name).strip("-.")
    return cache_root() / "classifiers" / f"{stem}-{image_size}px-{channels}c.safetensors"


def _has_test_split(data_name: str) -> bool:
    if _is_folder(data_name):
        return "test" in folder_splits(Path(data_name[len(data.FOLDER_PREFIX):]).expanduser())
    return "test" in data.get(data_name).splits()


def _class_names(ds: Dataset, data_name: str) -> list[str]:
    names = list(getattr(ds, "classes", None) or [])
    if not names and not _is_folder(data_name):
        names = list(data.get(data_name).classes)
    return names


def _labels_of(ds: Dataset) -> np.ndarray:
    labels = getattr(ds, "labels", None)
    if labels is None:
        return np.array([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)
    return np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels, dtype=np.int64)


def _images_of(ds: Dataset, keep: np.ndarray, desc: str, progress: bool) -> Tensor:
    """The images at indices ``keep`` as 8-bit (N, C, H, W): a quarter of float32's memory,
    and exact for 8-bit sources."""
    def quantize(x: Tensor) -> Tensor:
        return ((x + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)

    images = getattr(ds, "images", None)
    if isinstance(images, Tensor):  # in-memory sets (mnist-5k)
        return quantize(images[torch.from_numpy(keep)].float())
    if isinstance(ds, data.ArrayImages):  # MNIST, Fashion-MNIST, CIFAR-10: convert in chunks
        out = []
        for i in range(0, len(keep), 4096):
            x = torch.from_numpy(ds.pixels[keep[i:i + 4096]]).float().div_(127.5).sub_(1)
            out.append(quantize(data.convert(x, ds.image_size, ds.channels)))
        return torch.cat(out)
    subset = torch.utils.data.Subset(ds, keep.tolist())  # image files: decode them once
    # its own generator: iterating a DataLoader draws a seed, which must not move the global RNG
    loader = DataLoader(subset, batch_size=256, shuffle=False, num_workers=0, generator=torch.Generator())
    shown = None if progress else True  # tqdm: None = a bar on a terminal only
    return torch.cat([quantize(x) for x, _ in tqdm(loader, desc=desc, disable=shown, leave=False)])


def _labelled(data_name: str, split: str, root, image_size: int, channels: int,
              progress: bool) -> tuple[Tensor, Tensor, list[str]]:
    """A split as (uint8 images, int64 labels, class names), unlabelled images left out."""
    ds = data.load(data_name, split, root=root, image_size=image_size, channels=channels)
    labels = _labels_of(ds)
    keep = np.flatnonzero(labels >= 0)
    if keep.size == 0:
        raise ConfigError(f"the classifier FID back end needs a labelled data set ({LABELLED_SETS}); "
                          f"{data_name} has no labels: use --fid inception or --fid none")
    if keep.size < labels.size:
        log.warning("%s (%s split): leaving out %d unlabelled images (files outside class sub-folders)",
                    data_name, split, labels.size - keep.size)
    images = _images_of(ds, keep, f"reading {data_name} ({split})", progress)
    return images, torch.from_numpy(labels[keep]), _class_names(ds, data_name)


def _to_float(x: Tensor) -> Tensor:
    return x.float().div_(127.5).sub_(1)


def _accuracy(net: Net, x: Tensor, y: Tensor, device) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            correct += (net(_to_float(x[i:i + 500]).to(device)).argmax(1).cpu() == y[i:i + 500]).sum().item()
    return correct / max(len(x), 1)


def _about(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(10, int(round(seconds, -1)))} s"
    return f"about {int(math.ceil(seconds / 60))} min"


# ---------------------------------------------------------------------------- training
def train_classifier(data_name: str, image_size: int, channels: int, root=None, epochs: Optional[int] = None,
                     device="cpu", progress: bool = True, seed: int = 0) -> Classifier:
    """Train the classifier of a labelled data set; deterministic on the CPU given ``seed``.

    Adam with a one-cycle learning rate (peak 3e-3), batch 128, cross-entropy, random shifts
    of up to 1/14 of the image side.  Accuracy is measured on the test split, or, for data
    sets without one, on 10% of train held out (seeded) and not trained on.
    """
    x_train, y_train, classes = _labelled(data_name, "train", root, image_size, channels, progress)
    if _has_test_split(data_name):
        x_test, y_test, test_classes = _labelled(data_name, "test", root, image_size, channels, progress)
        if classes and test_classes and test_classes != classes:  # folder splits list their own sub-folders
            index = {c: k for k, c in enumerate(classes)}
            if not set(test_classes) <= set(index):
                raise InputError(f"{data_name}: the test split has classes the train split lacks: "
                                 f"{', '.join(sorted(set(test_classes) - set(index)))}")
            y_test = torch.tensor([index[test_classes[k]] for k in y_test.tolist()], dtype=torch.int64)
        held_out = "test split"
    else:
        perm = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))
        n_test = max(1, int(round(HOLDOUT * len(y_train))))
        if len(y_train) - n_test < 2:
            raise InputError(f"{data_name} has only {len(y_train)} labelled images; too few to train a classifier")
        x_test, y_test = x_train[perm[:n_test]], y_train[perm[:n_test]]
        x_train, y_train = x_train[perm[n_test:]], y_train[perm[n_test:]]
        held_out = f"{n_test} train images held out"
    num_classes = max(len(classes), int(y_train.max()) + 1, int(y_test.max()) + 1)
    if num_classes < 2:
        raise ConfigError(f"the classifier FID back end needs at least 2 classes; {data_name} has 1: "
                          "use --fid inception or --fid none")
    n = len(y_train)
    epochs = default_epochs(n) if epochs is None else int(epochs)
    if epochs < 1:
        raise ConfigError(f"classifier epochs must be at least 1, got {epochs}")
    arch = architecture(image_size, channels)
    device = torch.device(device)
    steps_per_epoch = math.ceil(n / BATCH_SIZE)
    shift = max(1, round(image_size / 14))

    # All randomness (initial weights, dropout, order, shifts) comes from `seed`, and the
    # caller's global RNG state is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = Net(channels, num_classes, **arch).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs * steps_per_epoch)
        bar = tqdm(total=epochs * steps_per_epoch, desc=f"classifier {data_name}",
                   disable=None if progress else True,
                   unit="step", leave=False)
        try:
            for _ in range(epochs):
                net.train()
                order = torch.randperm(n, generator=gen)
                for i in range(0, n, BATCH_SIZE):
                    idx = order[i:i + BATCH_SIZE]
                    if len(idx) < 2:  # BatchNorm needs two images
                        continue
                    x = random_shift(_to_float(x_train[idx]), shift, gen).to(device)
                    loss = F.cross_entropy(net(x), y_train[idx].to(device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.update()
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        finally:
            bar.close()
    accuracy = _accuracy(net, x_test, y_test, device)
    log.info("classifier for %s: test accuracy %.1f%% on %d images (%s)", data_name, 100 * accuracy,
             len(y_test), held_out)
    meta = dict(format=FORMAT, data_name=data_name, key=cache_key(data_name), image_size=image_size,
                channels=channels, num_classes=num_classes, classes=classes, accuracy=accuracy,
                accuracy_on=held_out, n_test=len(y_test), n_train=n, epochs=epochs, seed=seed,
                architecture=arch, torch=torch.__version__)
    return Classifier(net, data_name, image_size, channels, num_classes, accuracy, meta, device)


# ---------------------------------------------------------------------------- the cache
def save_classifier(clf: Classifier, path) -> Path:
    """Write one safetensors file (weights + JSON metadata), atomically."""
    from safetensors.torch import save_file
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in clf.net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, tmp, metadata={"colddiff": json.dumps(clf.meta, sort_keys=True)})
    return path


def _unreadable(path: Path, why: str) -> InputError:
    return InputError(f"cached classifier {show(path)} is unreadable ({why}); delete the file: the next "
                      "evaluation trains a new one (in Python: get_classifier(..., retrain=True))")


def load_classifier(path, device="cpu") -> Classifier:
    """Read a cached classifier; an unreadable file is an :class:`InputError` naming it."""
    from safetensors import safe_open
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["colddiff"])
            state = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        net = Net(int(meta["channels"]), int(meta["num_classes"]), **meta["architecture"])
        net.load_state_dict(state)
        return Classifier(net, str(meta["data_name"]), int(meta["image_size"]), int(meta["channels"]),
                          int(meta["num_classes"]), float(meta["accuracy"]), meta, device)
    except Exception as e:  # safetensors, JSON, missing keys, shapes: all mean the same to the user
        raise _unreadable(path, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'bad contents'}") \
            from None


def _differences(meta: dict, data_name: str, image_size: int, channels: int) -> Sequence[str]:
    """What differs between a cached classifier and the one asked for (empty: it fits)."""
    want = dict(key=cache_key(data_name), image_size=image_size, channels=channels,
                architecture=architecture(image_size, channels))
    return [k for k, v in want.items() if meta.get(k) != v]


def get_classifier(data_name: str, image_size: int, channels: int, root=None, device="cpu",
                   progress: bool = True, retrain: bool = False) -> Classifier:
    """The cached classifier of a data set at this size, trained and saved first if missing.

    A cache file for other settings (an older architecture, a different folder with the same
    hash prefix) is replaced; an unreadable one is an error unless ``retrain``.  A folder whose
    images changed is not noticed: pass ``retrain=True``.
    """
    path = cache_path(data_name, image_size, channels)
    if path.exists() and not retrain:
        clf = load_classifier(path, device)
        differs = _differences(clf.meta, data_name, image_size, channels)
        if not differs:
            if _is_folder(data_name):
                clf.data_name = data_name
            return clf
        log.info("cached classifier %s was trained with other settings (%s); training a new one",
                 show(path), ", ".join(differs))
    else:
        log.info("no cached classifier for %s at %s; training one (%s)", data_name, show(path),
                 _estimate(data_name, image_size, channels, device))
    clf = train_classifier(data_name, image_size, channels, root=root, device=device, progress=progress)
    save_classifier(clf, path)
    log.info("saved the %s classifier (test accuracy %.1f%%) to %s", data_name, 100 * clf.accuracy, show(path))
    return clf


def _estimate(data_name: str, image_size: int, channels: int, device) -> str:
    """A rough training time for the log line, from the split sizes the data set states."""
    if torch.device(device).type != "cpu":
        return "a minute or less on a GPU"
    counts = {} if _is_folder(data_name) else dict(data.get(data_name).counts)
    n = counts.get("train")
    if not n:
        return "time depends on the number of images"
    arch = architecture(image_size, channels)
    cost = (arch["work_size"] / 28) ** 2 * (arch["width"] / 16) ** 2
    return _about(CPU_SECONDS_PER_IMAGE * n * default_epochs(n) * cost) + " on CPU"

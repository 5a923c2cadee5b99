"""The standard FID feature extractor: TensorFlow's 2015-12-05 Inception-v3, in plain PyTorch.

FID numbers are only comparable between papers when they come from the same network: the
Inception-v3 graph of 2015-12-05 that the original TensorFlow FID code used, not
torchvision's ImageNet Inception-v3 (whose weights and pooling differ).  pytorch-fid ported
that graph to PyTorch and publishes its weights as ``pt_inception-2015-12-05-6726825d.pth``;
this module rebuilds the network without torchvision (which cannot be a dependency here) with
module names equal to that file's keys, so the file loads with ``strict=True``.

What makes it the *FID* Inception and not torchvision's (facts checked against pytorch-fid's
``FIDInceptionA/C/E_1/E_2`` and torchvision's ``Inception3``):

* the average pools inside the Inception blocks do not count the zero padding
  (``count_include_pad=False``), as TensorFlow's pools do not;
* the last block (``Mixed_7c``) max-pools in its pool branch;
* the classifier has 1008 classes and there is no auxiliary classifier;
* BatchNorm eps is 0.001; the input is a 299x299 image in [-1, 1].

The features are the 2048 outputs of the final global average pool.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.common import cache_root, show
from .download import ChecksumError, DownloadError, FileSpec, download, file_hash
from .errors import InputError
from .validate import whole

log = logging.getLogger("colddiff.inception")

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
ENV_VAR = "COLDDIFF_INCEPTION_WEIGHTS"
# The full SHA-256 of the published file (95,628,359 bytes).  torch.hub only checks the 8 hex
# digits in the name; the full digest is the one recorded for this URL by independent projects
# (genforce's inception model table, torch-fidelity users pinning the identical file).
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_SIZE = 95_628_359
SPEC = FileSpec(WEIGHTS_NAME, sha256=WEIGHTS_SHA256, size=WEIGHTS_SIZE)
# Where load_inception downloads from, in order (a module attribute so tests can serve a mirror).
MIRRORS: Sequence[str] = (WEIGHTS_URL,)

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
BN_EPS = 0.001

assert WEIGHTS_SHA256.startswith(WEIGHTS_NAME.rsplit("-", 1)[1].split(".")[0])


# ---------------------------------------------------------------------------- network
class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: TensorFlow's conv unit.

    The submodules are named ``conv`` and ``bn`` because those are the weight file's keys.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _tf_avg_pool(x: Tensor) -> Tensor:
    """3x3 stride-1 average pool that, like TensorFlow's, leaves the zero padding out of the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b/5c/5d): 1x1, 5x5, double 3x3 and pool branches; 224 + pool_features out."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): strided 3x3, strided double 3x3, max pool; 480 + in out."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 1x7/7x1 convolutions; 768 out."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a); 512 + in out."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c) with split 1x3/3x1 outputs; 2048 out.

    ``max_pool``: the 2015-12-05 graph's last block max-pools in its pool branch where the
    paper (and Mixed_7b) average-pool; FID features depend on reproducing that quirk.
    """

    def __init__(self, in_channels: int, max_pool: bool = False):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], 1)


class FIDInceptionV3(nn.Module):
    """TensorFlow's 2015-12-05 Inception-v3 as used by FID; ``forward`` returns the 2048-d pool features.

    Attribute names follow torchvision's ``Inception3`` (without ``AuxLogits``) because the
    published weight file is keyed that way.  ``fc`` (1008 classes) is unused by FID; it is kept
    so that the file loads strictly, and for :meth:`logits`.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 299, 299) in [-1, 1] -> (N, 2048) final average-pool features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))   # 64 x 147 x 147
        x = F.max_pool2d(x, kernel_size=3, stride=2)                          # 64 x 73 x 73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))                        # 192 x 71 x 71
        x = F.max_pool2d(x, kernel_size=3, stride=2)                          # 192 x 35 x 35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d,           # 288 x 35 x 35
                      self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,  # 768 x 17 x 17
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):          # 2048 x 8 x 8
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def logits(self, features: Tensor) -> Tensor:
        """The 1008 class logits of pool features (what an Inception Score would use)."""
        return self.fc(features)


# ---------------------------------------------------------------------------- feature extractor
class InceptionFeatures:
    """Turns image batches in [-1, 1] into FID features: float64 (N, 2048) on the CPU.

    Any size and 1 or 3 channels are accepted, because the data sets here are small and often
    grey (MNIST 28x28): grey is repeated to RGB and everything is resized to 299x299 bilinearly
    (``align_corners=False``, no antialiasing) exactly as pytorch-fid does.  pytorch-fid resizes
    [0, 1] images and then maps them to [-1, 1]; both steps are linear, so resizing images that
    are already in [-1, 1] gives the same input.  Features come back in float64 because the FID's
    covariances and matrix square root need the precision.
    """

    name = "inception"
    dim = FEATURE_DIM
    accuracy = None

    def __init__(self, net: FIDInceptionV3, device: Union[str, torch.device] = "cpu", batch_size: int = 50):
        self.batch_size = whole(batch_size, "batch_size", 1, err=ValueError)
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    def features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) images in [-1, 1], C in {1, 3} -> (N, 2048) float64 CPU features."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"Inception features need images shaped (N, 1 or 3, H, W), got {shape}")
        if not x.is_floating_point():
            raise InputError(f"Inception features need float images in [-1, 1], got dtype {x.dtype}")
        self.net.eval()   # BatchNorm must use the stored statistics, whatever the caller did to the net
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                batch = x[start:start + self.batch_size].to(self.device, torch.float32)
                if tuple(batch.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
                    batch = F.interpolate(batch, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                                          align_corners=False)
                if batch.shape[1] == 1:
                    batch = batch.expand(-1, 3, -1, -1)
                out.append(self.net(batch).to("cpu", torch.float64))
        return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)


# ---------------------------------------------------------------------------- weights
def weights_path() -> Path:
    """Where the weight file is expected: ``$COLDDIFF_INCEPTION_WEIGHTS``, else ``<cache>/weights/``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return cache_root() / "weights" / WEIGHTS_NAME


def weights_present() -> bool:
    """Whether a weights file is at :func:`weights_path` (not checked here: loading checks it)."""
    try:
        return weights_path().is_file()
    except OSError:
        return False


def weights_info() -> list:
    """Lines for ``colddiff weights info``: where the file goes, what it must be, whether it is there."""
    path = weights_path()
    present = path.is_file()
    state = (f"present ({path.stat().st_size:,} bytes; `colddiff weights verify` checks its SHA-256)" if present
             else "missing: without it FID falls back to the classifier (labelled data sets) or none")
    return [f"FID Inception-v3 weights (the standard pytorch-fid port of TensorFlow's FID network)",
            f"  file:     {WEIGHTS_NAME}",
            f"  place:    {show(path)}  (set ${ENV_VAR} to use another path)",
            f"  status:   {state}",
            f"  sha256:   {WEIGHTS_SHA256}",
            f"  size:     {WEIGHTS_SIZE:,} bytes",
            f"  download: {WEIGHTS_URL}",
            "  used by:  evaluate/generate/report --fid auto (the default) whenever the file is present"]


def verify_weights(path: Union[str, os.PathLike, None] = None) -> Path:
    """Check the weights file at ``path`` (default :func:`weights_path`): present, the published bytes
    (when named like the published file), and loadable into the network; a one-line InputError otherwise."""
    path = Path(path).expanduser() if path is not None else weights_path()
    if path.is_dir():
        raise InputError(f"{show(path)} is a folder; the Inception weights path must name the file {WEIGHTS_NAME}")
    if not path.is_file():
        raise _missing(path, "no file there")
    _verify(path)
    net = FIDInceptionV3()
    net.load_state_dict(_fit(net, _read_state(path), path), strict=True)
    return path


def _missing(path: Path, reason: str) -> InputError:
    return InputError(f"the FID Inception weights {WEIGHTS_NAME} are missing ({reason}): put the file at "
                      f"{show(path)} (or point ${ENV_VAR} at it); on a machine with network fetch it from "
                      f"{WEIGHTS_URL}; `--fid classifier` works offline without it")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _read_state(path: Path) -> dict:
    """The tensors of a weight file, read without unpickling any code (``weights_only``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # truncated zip, legacy-format garbage, forbidden pickle globals, ...
        raise InputError(f"cannot read the Inception weights {show(path)}: {_first_line(e)}; "
                         f"delete it and fetch it again from {WEIGHTS_URL}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"{show(path)} is not a PyTorch state dict of tensors, so not the FID Inception "
                         f"weights ({WEIGHTS_URL})")
    return dict(state)


def _fit(net: FIDInceptionV3, state: dict, path: Path) -> dict:
    """``state`` checked against ``net``'s keys and shapes, with BatchNorm counters filled in.

    ``num_batches_tracked`` (a BatchNorm training counter PyTorch added in 0.4.1) does not affect
    inference; a file may have it or not depending on the PyTorch that wrote it, so missing ones
    are taken from the network and present ones are accepted.
    """
    own = net.state_dict()
    counter = "num_batches_tracked"
    state = dict(state)
    for key, value in own.items():
        if key.endswith(counter) and key not in state:
            state[key] = value.clone()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise InputError(f"{show(path)} does not hold the FID Inception-v3 weights: {'; '.join(parts)}; "
                         f"the expected file is {WEIGHTS_NAME} from {WEIGHTS_URL}")
    return state


def _verify(path: Path) -> None:
    """A file named like the published one must be it: a damaged or substituted copy would
    silently give FIDs that differ from everybody else's."""
    if path.name != WEIGHTS_NAME:
        log.info("%s is not named %s, so its checksum is not compared with the published one", path, WEIGHTS_NAME)
        return
    size = path.stat().st_size
    digest = file_hash(path, "sha256") if SPEC.size in (None, size) else None
    if digest != SPEC.sha256:
        got = f"sha256 {digest}" if digest else f"{size:,} bytes instead of {SPEC.size:,}"
        raise InputError(f"{show(path)} is not the published {WEIGHTS_NAME} ({got}; expected sha256 "
                         f"{SPEC.sha256}): delete it and fetch it again from {WEIGHTS_URL}")


def load_inception(path: Union[str, os.PathLike, None] = None, download: bool = True,
                   device: Union[str, torch.device] = "cpu", progress: Optional[bool] = True) -> InceptionFeatures:
    """The FID feature extractor with the published weights.

    Uses the file at ``path`` (default :func:`weights_path`); when it is absent and ``download``
    is true, fetches it from :data:`MIRRORS` into that place, checksum-checked.  A file named
    ``pt_inception-2015-12-05-6726825d.pth`` must have the published SHA-256; a file under any
    other name (e.g. a re-saved copy) is only checked for the right keys and shapes.
    """
    path = Path(path).expanduser() if path is not None else weights_path()
    if path.is_dir():
        raise InputError(f"{show(path)} is a folder; the Inception weights path must name the file {WEIGHTS_NAME}")
    if not path.is_file():
        if not download:
            raise _missing(path, "download=False, so nothing was downloaded")
        try:
            _download(path, progress)
        except ChecksumError as e:
            raise InputError(f"the download of the FID Inception weights to {show(path)} was rejected: {e}; "
                             f"fetch {WEIGHTS_URL} by hand and put it there") from None
        except DownloadError as e:
            raise _missing(path, str(e)) from None
    else:
        _verify(path)   # a fresh download was checked on arrival
    state = _read_state(path)
    net = FIDInceptionV3()
    net.load_state_dict(_fit(net, state, path), strict=True)
    log.info("FID Inception weights loaded from %s", path)
    return InceptionFeatures(net, device=device)


def _download(path: Path, progress: Optional[bool]) -> None:
    """Fetch the published file to ``path``, checksum-checked whatever name ``path`` gives it."""
    log.info("downloading the FID Inception weights to %s", path)
    download(list(MIRRORS), path, replace(SPEC, name=path.name), progress)

"""Image metrics of the paper's evaluation protocol: RMSE, PSNR, SSIM and FID.

The paper measures restorations against the clean test images "with pixel values in [0, 1]"
(PAPER.md, Evaluation protocol); colddiff's images live in [-1, 1], so every metric first maps
them with :func:`to_unit`.  Per-image metrics return one float64 value per image, on the CPU,
so callers can average, take medians or bootstrap as they like.

FID is the Fréchet distance between Gaussians fitted to features of two image sets
(Heusel et al., 2017).  Its features come from an *extractor*: Inception-v3's 2048-d pool
features (the paper's choice, ``colddiff.inception``) or, offline, the penultimate layer of
a small classifier colddiff trains on the data set itself (``colddiff.classifier``).  The two
give numbers on different scales, so an :class:`FID` carries its back end and set sizes and
says so in its :meth:`FID.label`.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
from scipy import linalg
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from .errors import ConfigError, InputError

log = logging.getLogger("colddiff.metrics")

# FID's estimate of the covariance is biased upward on small sets; pytorch-fid and
# clean-fid warn below the feature dimension of Inception's pool layer, 2048.
MIN_FID_IMAGES = 2048
FID_BACKENDS = ("inception", "classifier", "none")

# Wang et al. (2004)'s gaussian SSIM window and constants.
SSIM_KERNEL, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


# ---------------------------------------------------------------------------- per-image metrics
def to_unit(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> [0, 1], clamped (restorations may overshoot a little)."""
    return ((x + 1) / 2).clamp(0, 1)


def _pair(x: Tensor, y: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """The two batches in [0, 1] as float64 CPU tensors, after checking their shapes agree."""
    if x.ndim != 4 or x.shape != y.shape:
        raise InputError(f"{what} needs two image batches of one shape (N, C, H, W), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    return (to_unit(x.detach().to("cpu", torch.float64)), to_unit(y.detach().to("cpu", torch.float64)))


def rmse(x: Tensor, y: Tensor) -> Tensor:
    """Per-image root mean squared error on [0, 1] pixel values: (N,) float64."""
    x, y = _pair(x, y, "RMSE")
    return (x - y).pow(2).flatten(1).mean(1).sqrt()


def rmse_global(x: Tensor, y: Tensor) -> float:
    """The authors' RMSE: the square root of the mean squared error over every pixel of every image,
    on [0, 1] values *without* clamping (their test scripts: sqrt(mean((x0 - y)^2)) over the whole set)."""
    if x.ndim != 4 or x.shape != y.shape:
        raise InputError(f"RMSE needs two image batches of one shape (N, C, H, W), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = (x.detach().to("cpu", torch.float64) + 1) / 2, (y.detach().to("cpu", torch.float64) + 1) / 2
    return float((x - y).pow(2).mean().sqrt())


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image peak signal-to-noise ratio in dB with data range 1: -10 log10(MSE), (N,) float64.

    Identical images have MSE 0 and PSNR +inf, which is the true value and is returned as
    is; average with ``v[torch.isfinite(v)]`` (or report the count of exact matches).
    """
    x, y = _pair(x, y, "PSNR")
    mse = (x - y).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse)  # log10(0) = -inf -> +inf, without a warning


def ssim(x: Tensor, y: Tensor, clamp: bool = True) -> Tensor:
    """Per-image SSIM (Wang et al., 2004) on [0, 1]: (N,) float64.

    ``clamp=False``: map [-1, 1] to [0, 1] without clamping overshoots (the authors' test scripts).

    Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, computed per channel
    and averaged over the channels and over the *valid* region, the pixels whose whole window
    lies inside the image (as Wang et al.'s MATLAB code, scikit-image and pytorch-msssim do).
    torchmetrics computes the SSIM map on a reflect-padded image; we crop its 5-pixel border,
    which for 28x28 MNIST digits would otherwise be mostly black-on-black background and lift
    every score.  Images under 11 pixels have no valid region: there the whole
    (reflect-padded) map is averaged, and under 6 pixels SSIM is undefined.
    """
    if x.ndim != 4 or x.shape != y.shape:
        raise InputError(f"SSIM needs two image batches of one shape (N, C, H, W), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    pad = (SSIM_KERNEL - 1) // 2
    if min(x.shape[-2:]) <= pad:
        raise InputError(f"SSIM needs images of at least {pad + 1}x{pad + 1} pixels, got "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    unit = to_unit if clamp else (lambda v: (v + 1) / 2)
    x, y = unit(x.detach().to(dtype)), unit(y.detach().to(x.device, dtype))
    _, ssim_map = structural_similarity_index_measure(
        x, y, gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_KERNEL, data_range=1.0,
        k1=SSIM_K1, k2=SSIM_K2, reduction="none", return_full_image=True)
    if min(x.shape[-2:]) >= SSIM_KERNEL:
        ssim_map = ssim_map[..., pad:-pad, pad:-pad]
    return ssim_map.flatten(1).mean(1).to("cpu", torch.float64)


# ---------------------------------------------------------------------------- FID
def feature_stats(feats: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64 (N - 1 normalisation)."""
    f = np.asarray(feats.detach().to("cpu", torch.float64).numpy() if isinstance(feats, Tensor) else feats,
                   dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise InputError(f"FID needs features shaped (N, D) with N >= 2 images, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½).

    As in the reference implementations (TTUR, pytorch-fid): a near-singular product whose
    square root comes out non-finite is retried with eps·I added to both covariances, and the
    tiny imaginary part that rounding leaves in the root is dropped; a large one means the
    statistics are broken (e.g. NaN features) and is an error.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise InputError(f"Fréchet distance needs statistics of one dimension, got means {mu1.shape}, {mu2.shape} "
                         f"and covariances {sigma1.shape}, {sigma2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise InputError("Fréchet distance of statistics containing NaN or inf: the features are broken")
    diff = mu1 - mu2
    # Features that never fire (dead ReLUs) or fewer images than dimensions make the product
    # singular; its square root is still well defined, so scipy's warning is noise here.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            log.warning("Fréchet distance: singular covariance product; adding %g to the diagonals", eps)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise InputError(f"Fréchet distance: the covariance product's square root has an imaginary part of "
                             f"{imag:.3g}; the feature statistics are degenerate")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@dataclass
class FID:
    """A Fréchet Inception (or classifier) Distance with what it takes to read it."""

    value: float
    backend: str                       # "inception" | "classifier"
    n: int                             # images in the set measured
    n_ref: int                         # reference images
    accuracy: Optional[float] = None   # the classifier back end's test accuracy (fraction)

    @property
    def small(self) -> bool:
        """Fewer than 2,048 images on either side: the estimate is biased upward; mark it."""
        return min(self.n, self.n_ref) < MIN_FID_IMAGES

    def label(self) -> str:
        """E.g. ``FID (classifier features, classifier test accuracy 98.4%, 500 vs 500 images:
        fewer than 2,048, biased upward)``."""
        if self.backend == "inception":
            parts = ["Inception-v3 pool features"]
        else:
            parts = [f"{self.backend} features"]
            if self.accuracy is not None:
                parts.append(f"{self.backend} test accuracy {100 * self.accuracy:.1f}%")
        sizes = f"{self.n:,} vs {self.n_ref:,} images"
        if self.small:
            sizes += f": fewer than {MIN_FID_IMAGES:,}, biased upward"
        return f"FID ({', '.join(parts + [sizes])})"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(small=self.small, label=self.label())
        return d


def fid(feats: Tensor, ref_feats: Tensor, backend: str, accuracy: Optional[float] = None) -> FID:
    """FID between the images behind ``feats`` (N, D) and the reference images behind ``ref_feats``."""
    mu, sigma = feature_stats(feats)
    mu_ref, sigma_ref = feature_stats(ref_feats)
    return FID(frechet_distance(mu, sigma, mu_ref, sigma_ref), backend, int(feats.shape[0]),
               int(ref_feats.shape[0]), accuracy)


# ---------------------------------------------------------------------------- feature extractors
def resolve_backend(fid: str, labelled: bool) -> str:
    """The FID back end for a ``--fid`` choice.

    ``auto``: the standard Inception FID whenever its weights file is in place (every data set, so
    the numbers compare with the paper's); otherwise, offline, the classifier FID on labelled data
    sets and none on the others.  The weights are not downloaded for ``auto``: ``colddiff weights
    info`` says where the file goes.
    """
    if fid == "auto":
        from .inception import weights_present

        if weights_present():
            return "inception"
        return "classifier" if labelled else "none"
    if fid not in FID_BACKENDS:
        raise ConfigError(f"--fid must be auto, classifier, inception or none, got {fid!r}")
    return fid


def get_extractor(backend: str, data_name: str, image_size: int, channels: int, root=None, device="cpu",
                  progress: bool = True):
    """The feature extractor of a FID back end, or None for ``"none"``.

    Every extractor has ``name``, ``dim``, ``accuracy`` (None for Inception) and
    ``features(x)``: images (N, C, H, W) in [-1, 1] -> (N, dim) float64 on the CPU.
    ``"classifier"`` loads (or trains once and caches) colddiff's classifier for the data set;
    ``"inception"`` loads Inception-v3's weights (downloaded once).
    """
    if backend == "classifier":
        from .classifier import get_classifier
        return get_classifier(data_name, image_size, channels, root=root, device=device, progress=progress)
    if backend == "inception":
        from .inception import load_inception  # lazily: it loads torchvision and a weights file
        return load_inception(device=device, progress=progress)
    if backend == "none":
        return None
    raise ConfigError(f"unknown FID back end {backend!r}; choose one of {', '.join(FID_BACKENDS)}")

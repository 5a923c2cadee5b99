"""Image metrics and the Fréchet distance against closed forms and an independent SSIM."""
import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from colddiff import metrics
from colddiff.errors import ConfigError, InputError
from colddiff.metrics import FID, fid, frechet_distance, psnr, rmse, ssim, to_unit


def unit_images(n=4, c=1, h=28, seed=0, high=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, h, generator=g, dtype=torch.float64) * high


def signed(u):
    """[0, 1] -> colddiff's [-1, 1]."""
    return u * 2 - 1


# ---------------------------------------------------------------------------- RMSE, PSNR
def test_to_unit_maps_and_clamps():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.5, 1.0, 1.2])
    assert torch.equal(to_unit(x), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))


def test_identical_images():
    x = signed(unit_images(c=3))
    assert torch.equal(rmse(x, x), torch.zeros(4, dtype=torch.float64))
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64), atol=1e-6)
    for v in (rmse(x, x), psnr(x, x), ssim(x, x)):
        assert v.shape == (4,) and v.dtype == torch.float64 and v.device.type == "cpu"


@pytest.mark.parametrize("c", [0.01, 0.1, 0.25, 0.5])
def test_constant_offset_in_unit_range(c):
    u = unit_images(high=1 - c)  # room for the offset: no clamping
    x, y = signed(u), signed(u + c)
    assert torch.allclose(rmse(x, y), torch.full((4,), c, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.allclose(psnr(x, y), torch.full((4,), -20 * math.log10(c), dtype=torch.float64), atol=1e-9)


def test_float32_inputs_and_clamping():
    u = unit_images(n=2).float()
    over = signed(u) + 5  # clamped to 1 everywhere
    assert torch.allclose(rmse(over, signed(u)), (1 - u.double()).pow(2).flatten(1).mean(1).sqrt())


def test_mismatched_shapes_are_errors():
    with pytest.raises(InputError, match="one shape"):
        rmse(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9))
    with pytest.raises(InputError, match="one shape"):
        ssim(torch.zeros(2, 1, 28, 28), torch.zeros(3, 1, 28, 28))
    with pytest.raises(InputError, match="at least 6x6"):
        ssim(torch.zeros(2, 1, 5, 5), torch.zeros(2, 1, 5, 5))


# ---------------------------------------------------------------------------- SSIM
def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. (2004), written from the paper in float64: an 11x11 gaussian window
    (sigma 1.5) at every position where it fits inside the image, K1 = 0.01, K2 = 0.03, L = 1,
    averaged over those positions and the channels.  x, y: (C, H, W) in [0, 1]."""
    k = np.arange(11) - 5.0
    g = np.exp(-k ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for a, b in zip(x, y):
        pa, pb = sliding_window_view(a, (11, 11)), sliding_window_view(b, (11, 11))  # (H-10, W-10, 11, 11)
        mean = lambda p: (p * w).sum((-2, -1))  # noqa: E731
        mu_a, mu_b = mean(pa), mean(pb)
        var_a = mean(pa * pa) - mu_a ** 2
        var_b = mean(pb * pb) - mu_b ** 2
        cov = mean(pa * pb) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        out.append(s.mean())
    return float(np.mean(out))


@pytest.mark.parametrize("c,h", [(1, 28), (3, 32), (1, 11)])
def test_ssim_matches_an_independent_implementation(c, h):
    u = unit_images(n=3, c=c, h=h, seed=1)
    v = (u + 0.2 * unit_images(n=3, c=c, h=h, seed=2) - 0.1).clamp(0, 1)  # correlated, not equal
    v[2] = unit_images(n=1, c=c, h=h, seed=3)[0]  # and an unrelated pair
    ref = [reference_ssim(a.numpy(), b.numpy()) for a, b in zip(u, v)]
    for dtype in (torch.float64, torch.float32):
        got = ssim(signed(u).to(dtype), signed(v).to(dtype))
        assert np.allclose(got.numpy(), ref, atol=1e-4, rtol=0), (got, ref)
    assert ref[0] < 1 and ref[2] < 0.2


def test_ssim_of_a_digit_like_image():
    """A bright stroke on black, and the same stroke dimmed: structure kept, luminance and
    contrast changed, so SSIM is below 1; SSIM is symmetric."""
    u = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    u[0, 0, 6:22, 12:16] = 1.0
    u[0, 0, 6:10, 8:20] = 0.8
    dim = u * 0.5
    s = ssim(signed(u), signed(dim))
    assert 0.5 < s.item() < 0.99
    assert torch.allclose(s, ssim(signed(dim), signed(u)), atol=1e-12)
    assert np.isclose(s.item(), reference_ssim(u[0].numpy(), dim[0].numpy()), atol=1e-4)
    # torchmetrics 1.9 alone would average the reflect-padded map, black-on-black border included
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    padded = tm_ssim(u, dim, data_range=1.0, reduction="none").item()
    assert padded > s.item() + 0.01


def test_ssim_of_small_images_averages_the_padded_map():
    u, v = unit_images(n=2, h=8, seed=4), unit_images(n=2, h=8, seed=5)
    s = ssim(signed(u), signed(v))
    assert s.shape == (2,) and torch.isfinite(s).all() and (s < 1).all()
    assert torch.allclose(ssim(signed(u), signed(u)), torch.ones(2, dtype=torch.float64), atol=1e-6)


# ---------------------------------------------------------------------------- Fréchet distance
def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu = rng.normal(size=6)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    d = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.5])
    assert np.isclose(frechet_distance(mu, np.eye(6), mu + d, np.eye(6)), d @ d)
    va, vb = rng.uniform(0.1, 4, 6), rng.uniform(0.1, 4, 6)
    expect = d @ d + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)
    assert np.isclose(frechet_distance(mu, np.diag(va), mu + d, np.diag(vb)), expect)
    # invariant under a rotation applied to both: the closed form holds for rotated diagonals
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert np.isclose(frechet_distance(q @ mu, q @ np.diag(va) @ q.T, q @ (mu + d), q @ np.diag(vb) @ q.T), expect)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert np.isclose(frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])),
                      4 + 1)


def test_frechet_distance_of_singular_covariances():
    """Rank-deficient covariances (fewer images than dimensions, dead features) still give
    the closed form: here both live in the first 2 of 5 dimensions."""
    va, vb = np.diag([1.0, 4.0, 0, 0, 0]), np.diag([9.0, 1.0, 0, 0, 0])
    value = frechet_distance(np.zeros(5), va, np.ones(5), vb)
    assert np.isclose(value, 5 + (1 - 3) ** 2 + (2 - 1) ** 2, atol=1e-5)
    rng = np.random.default_rng(1)
    f = rng.normal(size=(10, 32))  # 10 samples in 32 dimensions
    mu, sigma = metrics.feature_stats(torch.from_numpy(f))
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-5


def test_frechet_distance_errors():
    with pytest.raises(InputError, match="one dimension"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(InputError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))
    with pytest.raises(InputError, match="N >= 2"):
        metrics.feature_stats(torch.zeros(1, 8))


def test_fid_of_sampled_gaussians_approaches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    n, dim = 40_000, 4
    va, vb = torch.tensor([1.0, 2.0, 0.5, 1.0]), torch.tensor([1.5, 1.0, 0.5, 3.0])
    d = torch.tensor([0.5, 0.0, -1.0, 0.25])
    fa = torch.randn(n, dim, generator=g, dtype=torch.float64) * va.sqrt()
    fb = torch.randn(n, dim, generator=g, dtype=torch.float64) * vb.sqrt() + d
    expect = float(d @ d + ((va.sqrt() - vb.sqrt()) ** 2).sum())
    mu, sigma = metrics.feature_stats(fa)
    assert mu.dtype == np.float64 and sigma.shape == (dim, dim)
    assert np.allclose(mu, 0, atol=0.03) and np.allclose(sigma, np.diag(va.numpy()), atol=0.05)
    result = fid(fa, fb, "classifier", accuracy=0.99)
    assert isinstance(result, FID) and abs(result.value - expect) < 0.03
    assert (result.n, result.n_ref, result.accuracy, result.small) == (n, n, 0.99, False)
    same = fid(fa[: n // 2], fa[n // 2:], "classifier")
    assert 0 <= same.value < 0.01


# ---------------------------------------------------------------------------- FID records
def test_fid_small_sets_are_marked():
    small = FID(12.345, "classifier", 500, 500, accuracy=0.984)
    assert small.small
    assert small.label() == ("FID (classifier features, classifier test accuracy 98.4%, "
                             "500 vs 500 images: fewer than 2,048, biased upward)")
    assert FID(1.0, "classifier", 5000, 2047).small and FID(1.0, "classifier", 2047, 5000).small
    big = FID(3.2, "inception", 10_000, 2048)
    assert not big.small and metrics.MIN_FID_IMAGES == 2048
    assert big.label() == "FID (Inception-v3 pool features, 10,000 vs 2,048 images)"
    d = small.to_dict()
    assert d == dict(value=12.345, backend="classifier", n=500, n_ref=500, accuracy=0.984, small=True,
                     label=small.label())


def test_get_extractor_choices(monkeypatch):
    assert metrics.get_extractor("none", "mnist-5k", 28, 1) is None
    with pytest.raises(ConfigError, match="unknown FID back end 'fancy'; choose one of inception, classifier, none"):
        metrics.get_extractor("fancy", "mnist-5k", 28, 1)
    seen = {}

    def fake(data_name, image_size, channels, root=None, device="cpu", progress=True):
        seen.update(data_name=data_name, image_size=image_size, channels=channels, root=root, device=device,
                    progress=progress)
        return "the classifier"

    import colddiff.classifier
    monkeypatch.setattr(colddiff.classifier, "get_classifier", fake)
    assert metrics.get_extractor("classifier", "cifar10", 32, 3, root="/data", progress=False) == "the classifier"
    assert seen == dict(data_name="cifar10", image_size=32, channels=3, root="/data", device="cpu", progress=False)

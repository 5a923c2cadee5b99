"""Property tests of every degradation family (closed form == step-by-step, D(x, 0) == x, ...)."""
import math

import pytest
import torch

import colddiff.degradations as deg
from colddiff.degradations.base import Degradation
from colddiff.degradations.desaturate import gray
from colddiff.errors import ConfigError, InputError

from conftest import DEVICES, images, make

FAMILIES = deg.names()  # every registered family (a new one is property-tested without editing this file)


def build(name, C, H, **kw):
    if name == "animorph":
        kw.setdefault("partners", images(5, C, H, seed=99))
    return make(name, **kw)


def needs_step(D):
    """Skip the closed-form == steps properties for a family with only a closed form (the authors' snow:
    clipping at white makes x_t no function of x_{t-1}; their code, too, always starts from x0)."""
    if type(D).step is Degradation.step:
        pytest.skip(f"{D.name} has no single-step operator")


def test_registry_lists_every_family():
    assert set(FAMILIES) <= set(deg.names())


# --------------------------------------------------------------------------- the core property
@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("H", [28, 32, 64])
@pytest.mark.parametrize("C", [1, 3])
def test_closed_form_equals_step_by_step(name, H, C):
    D = build(name, C, H)
    needs_step(D)
    x0 = images(2, C, H, dtype=torch.float64)
    ctx = D.context(x0, torch.Generator().manual_seed(3))
    for t in sorted({1, 2, D.T // 2, D.T}):
        closed = D(x0, t, ctx)
        stepwise = deg.apply_stepwise(D, x0, t, ctx)
        assert closed.shape == x0.shape and closed.dtype == x0.dtype
        assert torch.allclose(closed, stepwise, atol=1e-9, rtol=0), (name, H, C, t, (closed - stepwise).abs().max())
        if t > 0 and name != "desaturate" or C == 3:
            assert not torch.equal(closed, x0), f"{name} at t={t} left the image unchanged"


@pytest.mark.parametrize("name", FAMILIES)
def test_closed_form_equals_step_by_step_per_sample_t_float32(name):
    D = build(name, 3, 32)
    needs_step(D)
    x0 = images(4, 3, 32, dtype=torch.float32)
    ctx = D.context(x0, torch.Generator().manual_seed(5))
    t = torch.tensor([0, 1, D.T // 2, D.T])
    closed, stepwise = D(x0, t, ctx), deg.apply_stepwise(D, x0, t, ctx)
    assert torch.allclose(closed, stepwise, atol=2e-5), (closed - stepwise).abs().max()
    assert torch.equal(closed[0], x0[0])


@pytest.mark.parametrize("name", FAMILIES)
def test_per_sample_t_matches_scalar_t(name):
    D = build(name, 3, 32)
    x0 = images(3, 3, 32, dtype=torch.float64)
    ctx = D.context(x0, torch.Generator().manual_seed(5))
    t = torch.tensor([D.T, 1, D.T // 2])
    batch = D(x0, t, ctx)
    for i in range(3):
        alone = D(x0, int(t[i]), ctx)[i]
        assert torch.allclose(batch[i], alone, atol=1e-12)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_identity_at_t0_and_dtype_device_follow_input(name, device, dtype):
    D = build(name, 3, 32)
    x0 = images(2, 3, 32, dtype=dtype, device=device)
    ctx = D.context(x0)
    out0 = D(x0, 0, ctx)
    assert torch.equal(out0, x0)
    out = D(x0, D.T // 2, ctx)
    assert out.dtype == dtype and out.device.type == device
    ref = D(x0.double(), D.T // 2, ctx)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(out.double(), ref, atol=tol), (out.double() - ref).abs().max()


@pytest.mark.parametrize("name", FAMILIES)
def test_closed_form_never_loops_over_steps(name, monkeypatch):
    """The closed form must not call the single-step operator (its cost may not grow with t)."""
    D = build(name, 3, 32)
    x0 = images(2, 3, 32, dtype=torch.float32)
    ctx = D.context(x0)

    def forbidden(*a, **k):
        raise AssertionError("forward() called step()")

    monkeypatch.setattr(D, "step", forbidden)
    D(x0, D.T, ctx)


@pytest.mark.parametrize("name", ["blur", "mask", "resolution", "snow", "desaturate"])
def test_cold_degradations_stay_in_range(name):
    D = build(name, 3, 32)
    x0 = images(3, 3, 32, dtype=torch.float64)
    ctx = D.context(x0)
    for t in (1, D.T // 2, D.T):
        out = D(x0, t, ctx)
        assert out.min() >= -1 - 1e-9 and out.max() <= 1 + 1e-9


def test_context_is_reproducible_from_the_generator():
    D = make("mask")
    x0 = images(4, 1, 28)
    a = D(x0, 10, D.context(x0, torch.Generator().manual_seed(7)))
    b = D(x0, 10, D.context(x0, torch.Generator().manual_seed(7)))
    c = D(x0, 10, D.context(x0, torch.Generator().manual_seed(8)))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- blur
def test_blur_schedules():
    assert deg.create("blur", T=5, sigma=7, schedule="constant").sigma_at(3) == 7
    assert deg.create("blur", T=5, sigma=0.5, schedule="incremental").sigma_at(3) == pytest.approx(1.5)
    assert deg.create("blur", T=5, sigma=1, schedule="exponential").sigma_at(101) == pytest.approx(math.e)
    assert deg.create("blur", T=50, schedule="cifar10").sigma_at(11) == pytest.approx(0.45)


@pytest.mark.parametrize("padding", ["circular", "reflect", "zero"])
def test_blur_matches_2d_convolution_for_every_padding(padding):
    D = deg.create("blur", T=6, kernel_size=9, sigma=2.0, padding=padding, schedule="incremental")
    x0 = images(2, 3, 28)
    s = torch.full((2,), 4)
    assert torch.allclose(D(x0, 1), D.step(x0, torch.ones(2, dtype=torch.long), None), atol=1e-12)
    assert torch.allclose(D(x0, s), deg.apply_stepwise(D, x0, s), atol=1e-12)


def test_blur_circular_keeps_channel_means_and_ends_constant():
    # the generation setting: 27x27 kernels, sigma_t = exp(0.01 t), circular padding, T = 300
    D = deg.create("blur", T=300, kernel_size=27, sigma=1.0, schedule="exponential", padding="circular")
    x0 = images(2, 3, 32)
    xT = D(x0, D.T)
    means = x0.mean((2, 3), keepdim=True)
    assert torch.allclose(D(x0, 17).mean((2, 3), keepdim=True), means, atol=1e-12)
    assert torch.allclose(xT, means.expand_as(xT), atol=1e-3)


def test_blur_zero_padding_darkens_borders_reflect_does_not():
    x0 = torch.ones(1, 1, 28, 28, dtype=torch.float64)
    assert torch.allclose(deg.create("blur", T=3, padding="reflect")(x0, 3), x0)
    assert deg.create("blur", T=3, padding="zero")(x0, 3)[0, 0, 0, 0] < 0.9


def test_blur_rejects_bad_settings():
    with pytest.raises(ConfigError, match="odd"):
        deg.create("blur", T=5, kernel_size=4)
    with pytest.raises(ConfigError, match="schedule"):
        deg.create("blur", T=5, schedule="wobbly")
    with pytest.raises(ConfigError, match="padding"):
        deg.create("blur", T=5, padding="mirror")
    with pytest.raises(ConfigError, match="kernel_size"):
        deg.create("blur", T=5, kernel_size=31, image_size=8)


# --------------------------------------------------------------------------- mask
def test_mask_centre_is_removed_and_mask_grows():
    D = deg.create("mask", T=30, position="center", quantize=False)
    x0 = torch.ones(1, 1, 31, 31, dtype=torch.float64)
    m = [D(x0, t) for t in (1, 10, 30)]
    assert m[0][0, 0, 15, 15] == 0  # the bump has peak 1, so the centre goes at step 1
    assert (m[2] <= m[1] + 1e-12).all() and (m[1] <= m[0] + 1e-12).all()
    assert m[2].sum() < m[1].sum() < m[0].sum()


def test_mask_random_centre_follows_context():
    D = deg.create("mask", T=20, quantize=False)
    x0 = torch.ones(3, 1, 28, 28, dtype=torch.float64)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    out = D(x0, 20, ctx)
    for b in range(3):
        cy, cx = ctx["center"][b].tolist()
        assert out[b, 0, cy, cx] == 0
        assert out[b].argmin() == cy * 28 + cx


def test_mask_quantize_rounds_observed_images_to_8_bit_levels_and_leaves_D_exact():
    D = deg.create("mask", T=20, quantize=True)
    exact = deg.create("mask", T=20, quantize=False)
    x0 = images(2, 3, 32)
    ctx = D.context(x0, torch.Generator().manual_seed(1))
    out = D.observe(x0, 7, ctx)
    levels = (out + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-9)
    assert torch.equal(D(x0, 7, ctx), exact(x0, 7, ctx))  # the sampler's D is not rounded
    assert not torch.equal(D(x0, 7, ctx), out)
    assert torch.equal(D.observe(x0, 0, ctx), x0)


def test_mask_generation_variant_ends_in_a_solid_colour():
    D = deg.create("mask", T=25, position="center", fill="random", quantize=False)
    x0 = images(3, 3, 32)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    xT = D(x0, D.T, ctx)
    assert torch.allclose(xT, ctx["color"].expand_as(xT))
    assert not torch.allclose(D(x0, D.T - 1, ctx), xT)


# --------------------------------------------------------------------------- resolution
def test_resolution_blocks_and_averages():
    D = deg.create("resolution", T=3)
    x0 = images(2, 3, 32)
    for t in (1, 2, 3):
        k = 2**t
        out = D(x0, t)
        blocks = out.unfold(2, k, k).unfold(3, k, k)  # (B, C, n, n, k, k)
        assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-12)
        pooled = torch.nn.functional.avg_pool2d(x0, k)
        assert torch.allclose(blocks[..., 0, 0], pooled, atol=1e-12)


def test_resolution_mnist_28_goes_down_to_4x4():
    D = deg.create("resolution", T=3)
    out = D(images(1, 1, 28), 3)
    assert len(torch.unique(out.round(decimals=9))) <= 16  # 4×4 blocks of 7 pixels


def test_resolution_rejects_too_many_halvings():
    with pytest.raises(ConfigError, match="T <= 5"):
        deg.create("resolution", T=6, image_size=32)


# --------------------------------------------------------------------------- snow (the authors')
def test_snow_is_additive_clipped_and_grows_with_t():
    D = deg.create("snow", T=50, level=4)
    x0 = images(2, 3, 32)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    xs = [D(x0, t, ctx) for t in (10, 25, 50)]
    for t, x in zip((10, 25, 50), xs):
        L = D.layer(torch.full((2,), t), x0, ctx)
        assert (L >= 0).all() and torch.equal(L, torch.flip(L, dims=(-2, -1)))  # S + its 180° rotation
        assert torch.allclose(x, (x0 + 2 * L).clamp(-1, 1), atol=1e-12)        # fix_brightness: clip(x0 + L)
        assert (x >= x0 - 1e-12).all()
    assert xs[0].mean() < xs[1].mean() < xs[2].mean()


def test_snow_streaks_run_one_way_per_trajectory():
    D = deg.create("snow", T=10, level=4)
    x0 = torch.zeros(8, 1, 32, 32, dtype=torch.float64)
    ctx = D.context(x0, torch.Generator().manual_seed(3))
    L = D.layer(torch.full((8,), 10), x0, ctx)
    # a horizontal streak varies less along rows than down columns, a vertical one the other way
    along_w = (L[..., :, 1:] - L[..., :, :-1]).abs().mean((1, 2, 3))
    along_h = (L[..., 1:, :] - L[..., :-1, :]).abs().mean((1, 2, 3))
    assert torch.equal(ctx["vertical"], along_h < along_w)
    assert 0 < int(ctx["vertical"].sum()) < 8


def test_snow_fixed_field_and_brightness_options():
    x0 = images(2, 3, 32)
    fixed = deg.create("snow", T=20, random=False, seed=0)
    a, b = fixed(x0, 20), deg.create("snow", T=20, random=False, seed=0)(x0, 20)
    assert torch.equal(a, b) and not torch.equal(a, deg.create("snow", T=20, random=False, seed=1)(x0, 20))
    black = torch.full_like(x0, -1.0)
    w = fixed(black, 20)
    assert torch.equal(w[0], w[1])  # one field for every image
    dim = deg.create("snow", T=20, random=False, fix_brightness=False)(black, 20)
    assert (dim >= w - 1e-12).all() and dim.mean() > w.mean()  # without fix_brightness the scene is whitened too


def test_snow_has_no_step_and_says_so():
    D = deg.create("snow", T=5)
    x0 = images(1, 3, 16)
    with pytest.raises(ConfigError, match="no single-step operator"):
        deg.apply_stepwise(D, x0, 3, D.context(x0))
    with pytest.raises(ConfigError, match="level"):
        deg.create("snow", T=10, level=5)


def test_snow_level4_at_128px_covers_most_of_the_image_like_the_authors():
    """The measure: share of pixels whose snow layer exceeds 0.25 at t = T, level 4, 128 px.
    The authors' snow (--random_snow --fix_brightness): about 94%; colddiff's earlier snow-c: about 47%."""
    x0 = torch.zeros(4, 3, 128, 128)
    D = deg.create("snow", T=200, level=4)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    share = float((D.layer(torch.full((4,), 200), x0, ctx) > 0.25).float().mean())
    assert 0.88 < share < 0.99, share
    old = deg.create("snow-c", T=200, level=4)
    assert float(((1 - old.retention(torch.full((4,), 200), x0, None)) > 0.25).float().mean()) < 0.6


# --------------------------------------------------------------------------- snow-c (colddiff's earlier snow)
def test_snow_c_only_brightens_and_grows_with_t():
    D = deg.create("snow-c", T=50, level=4)
    x0 = -torch.ones(2, 3, 32, 32, dtype=torch.float64)
    xs = [D(x0, t) for t in (10, 25, 50)]
    for x in xs:
        assert (x >= x0 - 1e-12).all()
    assert xs[0].mean() < xs[1].mean() < xs[2].mean()


def test_snow_c_fixed_pattern_depends_on_seed_only():
    x0 = images(2, 3, 32)
    a = deg.create("snow-c", T=20, seed=0)(x0, 20)
    b = deg.create("snow-c", T=20, seed=0)(x0, 20)
    c = deg.create("snow-c", T=20, seed=1)(x0, 20)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # fixed snow: both images get the same layer
    white = torch.full_like(x0, -1.0)
    w = deg.create("snow-c", T=20, seed=0)(white, 20)
    assert torch.equal(w[0], w[1])


def test_snow_c_random_differs_per_trajectory():
    D = deg.create("snow-c", T=20, random=True)
    white = torch.full((2, 3, 32, 32), -1.0, dtype=torch.float64)
    w = D(white, 20, D.context(white, torch.Generator().manual_seed(0)))
    assert not torch.equal(w[0], w[1])


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_snow_c_levels_get_heavier(level):
    x0 = -torch.ones(1, 3, 32, 32, dtype=torch.float64)
    D = deg.create("snow-c", T=10, level=level)
    assert (D(x0, 10) > -1).any()
    with pytest.raises(ConfigError):
        deg.create("snow-c", T=10, level=5)


# --------------------------------------------------------------------------- desaturate
@pytest.mark.parametrize("schedule", ["linear", "constant"])
def test_desaturate_removes_colour_and_keeps_luma(schedule):
    D = deg.create("desaturate", T=10, schedule=schedule)
    x0 = images(2, 3, 32)
    xT = D(x0, D.T)
    assert torch.allclose(xT[:, 0], xT[:, 1]) and torch.allclose(xT[:, 1], xT[:, 2])
    for t in (1, 5, 10):
        assert torch.allclose(gray(D(x0, t)), gray(x0), atol=1e-12)
    assert not torch.allclose(D(x0, 9)[:, 0], D(x0, 9)[:, 1])


def test_desaturate_linear_factor():
    D = deg.create("desaturate", T=4)
    x0 = images(1, 3, 8)
    assert torch.allclose(D(x0, 1), 0.75 * x0 + 0.25 * gray(x0), atol=1e-12)


# --------------------------------------------------------------------------- noise / animorph
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_noise_closed_form_and_schedule(schedule):
    D = deg.create("noise", T=100, schedule=schedule)
    ab = D.alpha_bar
    assert ab[0] == 1 and (ab[1:] < ab[:-1]).all() and ab[-1] < 0.01
    x0 = images(2, 3, 16)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    t = 37
    expected = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * ctx["z"]
    assert torch.allclose(D(x0, t, ctx), expected, atol=1e-6)
    assert abs(float(ctx["z"].std()) - 1) < 0.1


def test_noise_without_context_draws_fresh_noise():
    D = deg.create("noise", T=10)
    x0 = images(2, 1, 16)
    assert not torch.equal(D(x0, 5), D(x0, 5))


def test_animorph_ends_at_the_partner_and_checks_shapes():
    partners = images(6, 3, 32, seed=5)
    D = deg.create("animorph", T=100, partners=partners)
    x0 = images(3, 3, 32)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    z = partners[ctx["index"]]
    assert torch.allclose(D(x0, 100, ctx), z, atol=0.05)
    with pytest.raises(InputError, match="same size"):
        D.context(images(2, 3, 16))
    with pytest.raises(ConfigError, match="partner"):
        deg.create("animorph", T=10).context(x0)


def test_animorph_accepts_a_dataset_of_pairs():
    partners = images(4, 1, 28, seed=5)
    ds = [(partners[i], i) for i in range(4)]
    D = deg.create("animorph", T=10, partners=ds)
    x0 = images(2, 1, 28)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    assert torch.equal(ctx["z"], partners[ctx["index"]])


# --------------------------------------------------------------------------- interface and errors
def test_user_defined_degradation_via_register():
    @deg.register("test-darken")
    class Darken(Degradation):
        def __init__(self, T=10, amount=0.1, image_size=None, channels=None):
            super().__init__(T, image_size, channels)
            self.amount = amount

        def forward(self, x0, t, ctx):
            return x0 - self.amount * t.view(-1, 1, 1, 1)

        def step(self, x, s, ctx):
            return x - self.amount

    D = deg.create("test-darken", T=5, amount=0.2, image_size=32)
    assert "test-darken" in deg.names()
    x0 = images(2, 1, 8)
    assert torch.allclose(D(x0, 3), x0 - 0.6)
    assert torch.allclose(D(x0, 3), deg.apply_stepwise(D, x0, 3))
    assert torch.equal(D(x0, 0), x0)


def test_clear_errors():
    with pytest.raises(ConfigError, match="known degradations: .*blur"):
        deg.create("blurr")
    with pytest.raises(ConfigError, match="no parameter"):
        deg.create("blur", T=5, sigmaa=2)
    with pytest.raises(ConfigError, match="positive integer"):
        deg.create("blur", T=0)
    D = deg.create("blur", T=5)
    with pytest.raises(ConfigError, match="out of range"):
        D(images(1, 1, 28), 6)
    with pytest.raises(ConfigError, match="out of range"):
        D(images(2, 1, 28), torch.tensor([1, -1]))
    with pytest.raises(InputError, match="shape"):
        D(torch.zeros(1, 28, 28), 1)
    with pytest.raises(InputError, match="channels"):
        deg.create("blur", T=5, channels=3)(images(1, 1, 28), 1)


def test_snow_c_fft_motion_blur_equals_direct_convolution():
    from colddiff.degradations.snow import correlate_fft, motion_kernels

    x = images(3, 1, 30, W=26)
    ker = motion_kernels(7, torch.tensor([0.5, 2.0, 6.0], dtype=torch.float64),
                         torch.tensor([-135.0, -90.0, -50.0], dtype=torch.float64))
    assert torch.allclose(ker.sum((1, 2, 3)), torch.ones(3, dtype=torch.float64))
    direct = torch.nn.functional.conv2d(x.view(1, 3, 30, 26), ker, padding=7, groups=3).view(3, 1, 30, 26)
    assert torch.allclose(correlate_fft(x, ker), direct, atol=1e-12)


def test_blur_discrete_ends_in_the_channel_means_on_8_bit_levels():
    """The authors' --discrete: D(x0, T) is the channel mean of D(x0, T-1), every observed (training) image
    on 8-bit levels; D itself is not rounded."""
    D = deg.create("blur", T=6, kernel_size=5, sigma=1.0, padding="zero", discrete=True)
    plain = deg.create("blur", T=6, kernel_size=5, sigma=1.0, padding="zero")
    x0 = images(2, 3, 16)
    xT = D.observe(x0, 6)
    want = plain(x0, 5).mean((2, 3), keepdim=True).expand_as(xT)
    assert torch.allclose(xT, want, atol=1 / 255)
    assert torch.equal(xT, xT[..., :1, :1].expand_as(xT))  # one value per channel
    for t in (1, 3, 6):
        levels = (D.observe(x0, t) + 1) * 127.5
        assert torch.allclose(levels, levels.round(), atol=1e-9)
    assert torch.allclose(D.observe(x0, 3), plain(x0, 3), atol=1 / 255)
    assert torch.allclose(D(x0, 3), plain(x0, 3), atol=1e-12)

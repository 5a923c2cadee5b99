"""Samplers: the paper's exactness result for Algorithm 2 and the shared signature."""
import pytest
import torch

import colddiff.degradations as deg
from colddiff.degradations.base import Degradation
from colddiff.errors import ConfigError
from colddiff.samplers import SAMPLERS, algorithm1, algorithm2, direct, sampler_names, stochastic
from colddiff.networks.unet import UNet

from conftest import images


class LinearShift(Degradation):
    """D(x, s) = x + s·e: the first-order form under which Algorithm 2 is exact (not registered, so the
    registry-wide property tests never see this test-only family)."""

    name = "test-linear"

    def __init__(self, T=20, e=None, image_size=None, channels=None):
        super().__init__(T, image_size, channels)
        self.e = e

    def forward(self, x0, t, ctx):
        return x0 + t.view(-1, 1, 1, 1).to(x0.dtype) * self.e.to(x0)

    def step(self, x, s, ctx):
        return x + self.e.to(x)


def random_restorer(seed=0, C=3):
    """An arbitrary, badly wrong restorer: a random untrained network."""
    torch.manual_seed(seed)
    net = UNet(channels=C, dim=8, dim_mults=(1, 2), attn_levels=(), num_res_blocks=1).double().eval()
    return lambda x, t: net(x, t)


@pytest.fixture
def linear():
    e = images(1, 3, 16, seed=42)[0] * 0.1
    return LinearShift(T=20, e=e)


@pytest.mark.parametrize("t", [1, 5, 20])
def test_algorithm2_is_exact_on_linear_degradations_with_any_restorer(linear, t):
    x0 = images(2, 3, 16)
    x_t = linear(x0, t)
    R = random_restorer()
    assert torch.allclose(algorithm2(R, linear, x_t, t), x0, atol=1e-10)
    # ... while Algorithm 1 and direct reconstruction are only as good as R
    assert (algorithm1(R, linear, x_t, t) - x0).abs().max() > 0.1
    assert (direct(R, linear, x_t, t) - x0).abs().max() > 0.1


def test_algorithm2_exact_from_per_sample_t_and_with_a_random_function(linear):
    x0 = images(4, 3, 16)
    t = torch.tensor([0, 3, 11, 20])
    x_t = linear(x0, t)
    g = torch.Generator().manual_seed(0)
    R = lambda x, s: torch.randn(x.shape, generator=g, dtype=x.dtype) * 5  # noqa: E731
    assert torch.allclose(algorithm2(R, linear, x_t, t), x0, atol=1e-10)


def test_perfect_restorer_recovers_x0_with_both_algorithms():
    D = deg.create("blur", T=10, kernel_size=7, sigma=2.0)
    x0 = images(2, 3, 16)
    R = lambda x, s: x0  # noqa: E731  (the oracle)
    x_t = D(x0, 10)
    for sampler in (algorithm1, algorithm2):
        assert torch.allclose(sampler(R, D, x_t, 10), x0, atol=1e-12)
    assert torch.equal(direct(R, D, x_t, 10), x0)


def test_callback_sees_every_step_in_order_and_trajectory_shapes(linear):
    x0 = images(2, 3, 16)
    seen = []
    algorithm2(random_restorer(), linear, linear(x0, 7), 7,
               callback=lambda s, x_s, x0_hat: seen.append((s, x_s.shape, x0_hat.shape)))
    assert [s for s, _, _ in seen] == list(range(7, 0, -1))
    assert all(a == x0.shape and b == x0.shape for _, a, b in seen)


def test_samples_start_at_their_own_step():
    D = deg.create("blur", T=10, kernel_size=7, sigma=2.0)
    x0 = images(3, 3, 16)
    t = torch.tensor([0, 4, 10])
    calls = []

    def R(x, s):
        calls.append((x.shape[0], int(s[0])))
        return torch.zeros_like(x)

    x_t = D(x0, t)
    out = algorithm2(R, D, x_t, t)
    assert torch.equal(out[0], x_t[0])  # t = 0: untouched, R never sees it
    assert calls[0] == (1, 10) and calls[-1] == (2, 1)
    assert sum(1 for n, s in calls if s <= 4 and n == 2) == 4


def test_algorithm2_uses_the_trajectory_context():
    """With a random mask the same context must be used at every step: the oracle then gives x0."""
    D = deg.create("mask", T=15, quantize=False)
    x0 = images(2, 3, 16)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    out = algorithm2(lambda x, s: x0, D, D(x0, 15, ctx), 15, ctx)
    assert torch.allclose(out, x0, atol=1e-12)


@pytest.mark.parametrize("name,kw", [("mask", dict(T=12, position="random", quantize=True)),
                                     ("blur", dict(T=6, kernel_size=5, sigma=1.0, padding="circular",
                                                   discrete=True))])
def test_algorithm2_on_a_quantising_family_is_the_unrounded_update(name, kw):
    """The family rounds observed images (training inputs, x_T) to 8-bit levels, never the D calls inside
    Algorithm 2: from the rounded x_T, every step is x_s - D(x0_hat, s) + D(x0_hat, s-1) in exact arithmetic."""
    D = deg.create(name, **kw)
    x0 = images(3, 3, 16)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    x_T = D.observe(x0, D.T, ctx)
    assert torch.allclose((x_T + 1) * 127.5, ((x_T + 1) * 127.5).round(), atol=1e-9)  # the start is rounded
    gen = torch.Generator().manual_seed(1)
    bias = 0.3 * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)

    def R(x, s):  # an imperfect restorer: x0 plus an error that depends on the step
        return x0 + bias * s.view(-1, 1, 1, 1).to(x.dtype) / D.T

    exact = deg.create(name, **{**kw, "quantize": False}) if name == "mask" else None
    x = x_T
    for s in range(D.T, 0, -1):
        x0_hat = R(x, torch.full((3,), s))
        d_s = D.forward(x0_hat, torch.full((3,), s), ctx)           # the closed form, never rounded
        d_prev = D.forward(x0_hat, torch.full((3,), s - 1), ctx) if s > 1 else x0_hat
        x = x - d_s + d_prev
    out = algorithm2(R, D, x_T, D.T, ctx)
    assert torch.allclose(out, x, atol=1e-12)
    if exact is not None:  # the quantising mask's sampler is the float family's, step for step
        assert torch.equal(out, algorithm2(R, exact, x_T, D.T, ctx))
    x = x_T  # and it is not the update with both D terms rounded, which is what rounding inside D gave
    for s in range(D.T, 0, -1):
        x0_hat = R(x, torch.full((3,), s))
        x = x - D.observe(x0_hat, s, ctx) + D.observe(x0_hat, s - 1, ctx)
    assert not torch.allclose(out, x, atol=1e-6)


def test_samplers_run_without_autograd_with_a_network():
    net = UNet(channels=1, dim=8, dim_mults=(1, 2), attn_levels=(), num_res_blocks=1)
    x0 = images(2, 1, 28, dtype=torch.float32)
    for name, fn in SAMPLERS.items():
        # DDIM is defined for the noise degradation only; the others run on a cold one.
        D = deg.create("noise", T=2) if name == "ddim" else deg.create("resolution", T=2)
        ctx = D.context(x0, torch.Generator().manual_seed(0))
        x_t = D(x0, 2, ctx)
        out = fn(net, D, x_t, 2, ctx)  # one signature for every sampler
        assert out.shape == x_t.shape and not out.requires_grad and torch.isfinite(out).all()


def test_random_degradations_require_the_trajectory_context():
    D = deg.create("noise", T=5)
    x0 = images(1, 1, 8)
    with pytest.raises(Exception, match="pass ctx"):
        algorithm2(lambda x, s: x, D, D(x0, 5, D.context(x0)), 5)


# ---------------------------------------------------------------------------- the stochastic sampler (IHD style)
@pytest.mark.parametrize("name,kw", [("blur", dict(T=6, kernel_size=7, sigma=1.5)),
                                     ("mask", dict(T=6, position="random")),
                                     ("resolution", dict(T=2))])
def test_stochastic_sampler_with_delta_zero_is_algorithm2_bit_for_bit(name, kw):
    net = UNet(channels=1, dim=8, dim_mults=(1, 2), attn_levels=(), num_res_blocks=1)
    D = deg.create(name, **kw)
    x0 = images(3, 1, 16, dtype=torch.float32)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    t = torch.tensor([D.T, D.T - 1, 1])           # per-sample start steps too
    x_t = D(x0, t, ctx)
    a2 = algorithm2(net, D, x_t, t, ctx)
    steps = []
    out = stochastic(net, D, x_t, t, ctx, generator=torch.Generator().manual_seed(5), delta=0.0,
                     callback=lambda s, x, x0_hat: steps.append(s))
    assert torch.equal(out, a2) and steps == list(range(D.T, 0, -1))
    assert SAMPLERS["stochastic"] is stochastic and "stochastic" in sampler_names(D)


def test_stochastic_sampler_noise_is_seeded_and_the_last_step_adds_none():
    D = deg.create("blur", T=5, kernel_size=7, sigma=1.5)
    R = lambda x, s: x.clamp(-1, 1)  # noqa: E731  any restorer
    x_t = D(images(2, 1, 16), D.T)
    run = lambda seed, delta=0.02: stochastic(R, D, x_t, D.T, generator=torch.Generator().manual_seed(seed),  # noqa: E731
                                              delta=delta)
    assert torch.equal(run(1), run(1)) and not torch.allclose(run(1), run(2))
    d = run(1) - algorithm2(R, D, x_t, D.T)
    assert 0.005 < float(d.std()) < 0.2           # four noisy steps of std 0.02, carried to the end
    x_1 = D(images(2, 1, 16), 1)                  # from t = 1 there is only the last step: no noise
    assert torch.equal(stochastic(R, D, x_1, 1, generator=torch.Generator().manual_seed(3), delta=0.5),
                       algorithm2(R, D, x_1, 1))
    with pytest.raises(ConfigError, match="delta"):
        stochastic(R, D, x_t, D.T, delta=-1.0)


def test_authors_shifted_update_is_algorithm2_one_step_early():
    """The authors' snow/colour update: x_{s-1} = x_s - D(x0_hat, s-1) + D(x0_hat, max(s-2, 0)); the last step
    returns x_1 unchanged.  On D(x, s) = x + s e with the oracle it ends at D(x0, 1), one step short of x0."""
    from colddiff.samplers import authors_shifted

    T = 6
    e = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    D = LinearShift(T=T, e=e)
    x0 = images(2, 3, 8)
    x_T = D(x0, T)
    assert torch.allclose(authors_shifted(lambda x, s: x0, D, x_T, T), D(x0, 1), atol=1e-12)
    assert torch.allclose(algorithm2(lambda x, s: x0, D, x_T, T), x0, atol=1e-12)

    blur = deg.create("blur", T=4, kernel_size=5, sigma=1.0)
    R = random_restorer(C=3)
    x = x_t = blur(x0, 4)
    for s in range(4, 0, -1):
        x0_hat = R(x, torch.full((2,), s))
        x = x - blur(x0_hat, s - 1) + blur(x0_hat, max(s - 2, 0))
    assert torch.allclose(authors_shifted(R, blur, x_t, 4), x, atol=1e-10)
    assert getattr(SAMPLERS["authors-shifted"], "restores") is False  # not a default Table 1 row

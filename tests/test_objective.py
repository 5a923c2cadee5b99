"""The training objective (Eq. 1) in colddiff.objective, and the trusted path for training's t ~ U{1..T}."""
import contextlib

import pytest
import torch

import colddiff.degradations as deg
from colddiff import speed
from colddiff.errors import ConfigError
from colddiff.objective import degrade_batch, l1_loss


def test_degrade_batch_draws_t_uniformly_in_1_to_T_and_returns_what_D_observes():
    D = deg.create("mask", T=6, image_size=8, channels=1)
    x0 = torch.rand(4000, 1, 8, 8) * 2 - 1
    x_t, t = degrade_batch(D, x0, torch.Generator().manual_seed(3))
    assert t.dtype == torch.long and int(t.min()) == 1 and int(t.max()) == D.T
    assert torch.bincount(t, minlength=D.T + 1)[1:].float().div(len(t)).sub(1 / D.T).abs().max() < 0.03
    g = torch.Generator().manual_seed(3)  # the same draws by hand: t, then the context, then D (observe)
    t2 = torch.randint(1, D.T + 1, (x0.shape[0],), generator=g)
    ctx = D.context(x0, g)
    assert torch.equal(t, t2) and torch.equal(x_t, D.observe(x0, t2, ctx))


def test_l1_loss_is_eq1_the_mean_absolute_error_of_R_x_t_against_x0():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)

    def R(x, t):
        return net(x) * (1 + t.view(-1, 1, 1, 1).float() / 10)

    x0, x_t, t = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8), torch.tensor([1, 2, 3])
    loss = l1_loss(R, contextlib.nullcontext())(x_t, t, x0)
    by_hand = sum((R(x_t[i:i + 1], t[i:i + 1]) - x0[i]).abs().sum() for i in range(3)) / x0.numel()
    assert torch.allclose(loss, by_hand, rtol=1e-6)
    assert speed.compiled(l1_loss(R, contextlib.nullcontext()), "off")(x_t, t, x0) == loss  # off: the same function
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_only_the_explicit_keyword_skips_the_range_check_of_t():
    D = deg.create("blur", T=5, kernel_size=3, sigma=1.0)
    x0 = torch.rand(2, 1, 8, 8)
    bad = torch.tensor([1, 9])
    bad.in_range = True  # the old side channel: a tensor attribute no longer vouches for anything
    with pytest.raises(ConfigError, match=r"t out of range: got 1..9, but blur has steps 0..5"):
        D.observe(x0, bad)
    with pytest.raises(ConfigError, match="t out of range"):
        D(x0, bad)
    assert D.as_t(bad, x0, in_range=True).tolist() == [1, 9]  # trusted: not read back, not checked
    good = torch.tensor([2, 5])
    assert torch.equal(D.observe(x0, good, t_in_range=True), D.observe(x0, good))
    assert torch.equal(D(x0, good, t_in_range=True), D(x0, good))

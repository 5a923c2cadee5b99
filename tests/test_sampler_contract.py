"""Every registered sampler keeps the one contract of :mod:`colddiff.samplers`, checked by a single test
parametrised over the registry: the shared signature, the output's shape and type, one callback per network
call (from t down to 1, or once for a one-call sampler), no autograd, the same output for the same seed, and
the output's summary numbers pinned for a fixed tiny seeded restorer (a changed update rule shows up here).

A sampler registered without pinned numbers fails the test: pin its numbers from one run when adding it.
"""
import pytest
import torch
import torch.nn.functional as F

from colddiff import degradations as deg
from colddiff.errors import ConfigError
from colddiff.samplers import SAMPLERS

# (mean, sum of |x|) of the output for the fixed setup below, with the degradation it ran on
PINNED = {
    "direct": ("blur", 0.0609208, 30.38971),
    "algorithm1": ("blur", 0.0220166, 14.85500),
    "algorithm2": ("blur", -0.0006584, 29.63986),
    "authors-shifted": ("blur", -0.0006389, 29.60956),
    "stochastic": ("blur", 0.0081394, 49.48320),
    "ddim": ("noise", 0.0132431, 143.64423),
}
OPTIONS = {"delta": 0.05}   # values for the samplers' own keyword options (``fn.options``)


def tiny_restorer():
    """R(x, t): a 3x3 convolution with seeded weights, tanh, a small shift by t: fixed and cheap."""
    w = torch.randn(3, 3, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.2

    def R(x, t):
        return torch.tanh(F.conv2d(x, w, padding=1) + 0.01 * t.to(x.dtype).view(-1, 1, 1, 1))

    return R


def degradation_for(fn):
    """The first of blur and noise that the sampler applies to."""
    for name in ("blur", "noise"):
        params = {"kernel_size": 3, "sigma": 1.0} if name == "blur" else {}
        D = deg.create(name, T=5, image_size=8, channels=3, **params)
        try:
            fn.check(D)
        except ConfigError:
            continue
        return D
    pytest.fail(f"{fn.sampler_name} applies to neither blur nor noise: give it a degradation here")


def run_once(fn, D, seed=0):
    x0 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ctx = D.context(x0, torch.Generator().manual_seed(2))
    x_t = D(x0, D.T, ctx)
    calls = []
    out = fn(tiny_restorer(), D, x_t, D.T, ctx, callback=lambda s, x_s, x0_hat: calls.append(s),
             generator=torch.Generator().manual_seed(seed), **{k: OPTIONS[k] for k in fn.options})
    return x_t, out, calls


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_registered_sampler_keeps_the_contract_and_its_pinned_output(name):
    fn = SAMPLERS[name]
    assert name in PINNED, f"sampler {name!r} has no pinned output: add it to PINNED"
    assert set(fn.options) <= set(OPTIONS), f"give a value for {name}'s options {fn.options} in OPTIONS"
    D = degradation_for(fn)
    x_t, out, calls = run_once(fn, D)
    assert out.shape == x_t.shape and out.dtype == x_t.dtype and not out.requires_grad
    assert torch.isfinite(out).all()
    assert calls == ([D.T] if fn.one_call else list(range(D.T, 0, -1)))
    assert torch.equal(run_once(fn, D)[1], out)                      # the same seed, the same images
    family, mean, abs_sum = PINNED[name]
    assert D.name == family
    assert out.mean().item() == pytest.approx(mean, rel=1e-4, abs=1e-5)
    assert out.abs().sum().item() == pytest.approx(abs_sum, rel=1e-4)

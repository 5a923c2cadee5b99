"""Tests of colddiff's own restoration network R(x_t, t) -> x0_hat (colddiff.networks.unet)."""
from __future__ import annotations

import pytest
import torch

from colddiff.errors import ConfigError
from colddiff.networks.unet import (
    PRESETS,
    AttentionBlock,
    UNet,
    build,
    count_parameters,
    sinusoidal_embedding,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The models here are tiny: intra-op threads only add synchronisation overhead, which
    # explodes (100x) when another process is busy on the same cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(channels: int = 1, levels: int = 3, **kw) -> UNet:
    """A very small network: dim 8, one res block per level."""
    torch.manual_seed(0)
    cfg = dict(channels=channels, dim=8, dim_mults=(1, 2, 2, 2)[:levels], attn_levels=(),
               num_res_blocks=1, groups=4, attn_heads=2, attn_head_dim=8)
    cfg.update(kw)
    return UNet(**cfg)


@pytest.mark.parametrize(
    "shape",
    [(2, 1, 28, 28), (2, 3, 32, 32), (2, 3, 64, 64), (2, 3, 24, 32)],
    ids=["28x28x1", "32x32x3", "64x64x3", "24x32x3"],
)
def test_output_shape_matches_input(shape):
    b, c, h, w = shape
    model = tiny(channels=c, levels=4, attn_levels=(2,)).eval()
    x_t = torch.randn(*shape)
    with torch.no_grad():
        assert model(x_t, 5).shape == shape
        assert model(x_t, torch.tensor([1, 7])).shape == shape
        assert model(x_t, torch.tensor(3)).shape == shape


def test_28x28_pad_and_crop():
    # Four levels -> multiple of 8 -> 28 is padded to 32 inside and cropped back.
    model = tiny(levels=4).eval()
    assert model.size_multiple == 8
    x_t = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        x0_hat = model(x_t, torch.tensor([0, 10, 50]))
    assert x0_hat.shape == (3, 1, 28, 28)
    assert torch.isfinite(x0_hat).all()
    # Reflect padding cannot work on a 1-pixel-wide image; replicate takes over.
    with torch.no_grad():
        assert model(torch.randn(1, 1, 3, 1), 2).shape == (1, 1, 3, 1)


def test_out_channels():
    model = tiny(channels=3, out_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16), 0).shape == (1, 1, 16, 16)


def test_time_conditioning():
    model = tiny().eval()
    x_t = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        a = model(x_t, 1)
        b = model(x_t, 40)
        c = model(x_t, torch.tensor([1.0, 1.0]))
    assert not torch.allclose(a, b)
    assert torch.allclose(a, c)  # int and float t of equal value agree


def test_random_network_is_not_constant():
    model = tiny().eval()
    with torch.no_grad():
        x0_hat = model(torch.randn(2, 1, 16, 16), 3)
    assert x0_hat.std() > 1e-4


def test_attention_levels_add_parameters():
    plain = tiny(levels=3, attn_levels=())
    with_attn = tiny(levels=3, attn_levels=(1,))
    assert count_parameters(with_attn) > count_parameters(plain)
    n_plain = sum(isinstance(m, AttentionBlock) for m in plain.modules())
    n_attn = sum(isinstance(m, AttentionBlock) for m in with_attn.modules())
    assert n_plain == 1  # the middle block is always there
    # num_res_blocks=1: one block down and two up at level 1.
    assert n_attn == 1 + 1 + 2
    with pytest.raises(ConfigError):
        tiny(levels=3, attn_levels=(3,))


def test_gradients_reach_every_parameter():
    model = tiny(levels=3, attn_levels=(0, 1), dropout=0.1).train()
    x_t = torch.randn(2, 1, 12, 12)
    x0 = torch.randn(2, 1, 12, 12)
    loss = (model(x_t, torch.tensor([2, 9])) - x0).abs().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


def test_dropout_train_vs_eval():
    model = tiny(dropout=0.5)
    x_t = torch.randn(2, 1, 16, 16)
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x_t, 4), model(x_t, 4))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x_t, 4), model(x_t, 4))


def test_bf16_autocast_cpu():
    model = tiny(levels=4, attn_levels=(1,)).eval()
    x_t = torch.randn(2, 1, 28, 28)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        x0_hat = model(x_t, torch.tensor([3, 8]))
    assert x0_hat.shape == x_t.shape
    assert torch.isfinite(x0_hat.float()).all()


def test_sinusoidal_embedding():
    emb = sinusoidal_embedding(torch.tensor([0, 1, 2]), 16)
    assert emb.shape == (3, 16) and emb.dtype == torch.float32
    assert torch.allclose(emb[0, :8], torch.zeros(8)) and torch.allclose(emb[0, 8:], torch.ones(8))
    assert sinusoidal_embedding(torch.tensor(0.5), 7).shape == (1, 7)  # float t, odd dim
    assert not torch.allclose(sinusoidal_embedding(torch.tensor([1.0]), 8),
                              sinusoidal_embedding(torch.tensor([1.5]), 8))


def test_build_from_name_and_kwargs():
    model = build("mnist-cpu")
    assert isinstance(model, UNet) and model.config["dim"] == 16
    same = build(dict(PRESETS["mnist-cpu"]))  # image_size is accepted and ignored
    assert count_parameters(same) == count_parameters(model)
    with pytest.raises(ConfigError):
        build("no-such-preset")
    with pytest.raises(ConfigError):
        build({"no_such_kwarg": 1})
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 28, 28), 10).shape == (1, 1, 28, 28)


def test_named_network_sizes():
    # DDPM's CIFAR-10 U-Net has ~35.7M parameters; ours has ~37.5M (scale/shift time
    # projection doubles those linears, multi-head attention with 128 hidden is a bit smaller).
    with torch.device("meta"):
        sizes = {name: count_parameters(build(name)) for name in PRESETS}
    assert 30_000_000 < sizes["cifar10"] < 45_000_000
    assert sizes["mnist-cpu"] < sizes["mnist"]

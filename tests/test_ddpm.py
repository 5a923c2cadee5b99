"""The authors' DDPM Model (colddiff.networks.ddpm, ``model.arch = "ddpm"``) and the presets that train it or
the authors' UnetConvNext (``convnext-snow``).  Its output against the authors' own code is in
tests/test_official.py (fixtures from scripts/authors_fixtures.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from colddiff import networks, paper
from colddiff.errors import ConfigError
from colddiff.networks import ddpm
from colddiff.networks.ddpm import DDPMModel
from colddiff.paper import provenance
from colddiff.presets import preset


def tiny(**kw) -> DDPMModel:
    torch.manual_seed(0)
    cfg = dict(channels=1, dim=8, dim_mults=(1, 2), attn_levels=(1,), num_res_blocks=1, dropout=0.0)
    cfg.update(kw)
    return DDPMModel(**cfg).eval()


# The authors' Model(resolution=32, in_channels=3, out_ch=3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
# attn_resolutions=(16,), dropout=0.1) of their CIFAR-10 train scripts, counted with their Model2.py at f8b1379.
AUTHORS_CIFAR10_PARAMS = 35_746_307
AUTHORS_CIFAR10_KEYS = 328   # entries of its state_dict


@pytest.mark.parametrize("name", ["cifar10-blur", "cifar10-inpaint", "cifar10-sr"])
def test_cifar10_presets_train_the_authors_ddpm_model_with_their_parameter_count(name):
    cfg = preset(name)
    assert cfg.model.arch == "ddpm" and provenance(name).network == paper.DDPM   # and its provenance says so
    with torch.device("meta"):
        model = cfg.build_model()
    assert isinstance(model, DDPMModel)
    assert networks.count_parameters(model) == AUTHORS_CIFAR10_PARAMS
    assert len(model.state_dict()) == AUTHORS_CIFAR10_KEYS


def test_paper_width_uses_the_authors_normalisation_and_dropout():
    with torch.device("meta"):
        model = preset("cifar10-blur").build_model()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == 32 and m.eps == 1e-6 for m in norms)
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(m.p == 0.1 for m in drops)


def test_module_names_are_the_authors():
    # the names of their Model2.py, so their state dicts load key for key (no renaming table)
    with torch.device("meta"):
        keys = set(preset("cifar10-blur").build_model().state_dict())
    for k in ["temb.dense.0.weight", "temb.dense.1.bias", "conv_in.weight", "down.0.block.1.conv2.weight",
              "down.1.block.0.nin_shortcut.weight", "down.1.attn.1.proj_out.bias", "down.2.downsample.conv.weight",
              "mid.block_1.temb_proj.weight", "mid.attn_1.q.weight", "mid.block_2.norm2.bias",
              "up.0.block.2.nin_shortcut.weight", "up.1.attn.2.k.weight", "up.3.upsample.conv.bias",
              "norm_out.weight", "conv_out.bias"]:
        assert k in keys, k
    # attention only at level 1 (16 px of 32), downsampling on every level but the last, upsampling on all but 0
    assert not any(k.startswith(("down.0.attn", "down.2.attn", "up.0.attn", "up.3.attn", "down.3.downsample",
                                 "up.0.upsample")) for k in keys)


@pytest.mark.parametrize("name", ["cifar10-snow", "celeba-snow", "cifar10-desaturate", "celeba-desaturate"])
def test_snow_and_colourisation_presets_train_the_authors_unetconvnext(name):
    cfg = preset(name)
    assert cfg.model.arch == "convnext-snow" and provenance(name).network == paper.CONVNEXT_SNOW
    assert (cfg.model.dim, cfg.model.dim_mults) == (64, [1, 2, 4, 8])   # their get_model()
    with torch.device("meta"):
        snow = cfg.build_model()
        lucid = networks.build(dict(cfg.model_kwargs(), arch="lucidrains-convnext"))
    # UnetConvNextBlock is their Unet class layer for layer: the same names, shapes and count
    assert {k: v.shape for k, v in snow.state_dict().items()} == {k: v.shape for k, v in lucid.state_dict().items()}
    assert networks.count_parameters(snow) == 56_615_708


def test_any_image_size_round_trips():
    model = tiny(dim_mults=(1, 2, 2))
    for shape in [(2, 1, 28, 28), (1, 1, 13, 21), (2, 1, 32, 32)]:
        with torch.no_grad():
            y = model(torch.randn(*shape), torch.tensor([1] * shape[0]))
        assert y.shape == shape and torch.isfinite(y).all()


def test_step_is_embedded_as_the_authors_index_t_minus_1(monkeypatch):
    # x_t = D(x0, t) reaches their network as index t - 1 (their GaussianDiffusion counts t from 0)
    seen = []
    real = ddpm.timestep_embedding
    monkeypatch.setattr(ddpm, "timestep_embedding", lambda i, dim: seen.append(i.clone()) or real(i, dim))
    with torch.no_grad():
        tiny()(torch.randn(2, 1, 8, 8), torch.tensor([1, 5]))
    assert seen[0].tolist() == [0.0, 4.0]
    # and their sinusoid: sines then cosines, so index 0 embeds as (0, ..., 0, 1, ..., 1)
    assert torch.equal(real(torch.zeros(1), 8), torch.tensor([[0.0] * 4 + [1.0] * 4]))


def test_t_forms_agree():
    model = tiny()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        a = model(x, 4)
        b = model(x, torch.tensor(4))
        c = model(x, torch.full((3,), 4))
    assert torch.equal(a, b) and torch.equal(a, c)


def test_narrow_widths_use_fewer_groups_and_bad_settings_are_config_errors():
    norms = [m for m in tiny().modules() if isinstance(m, torch.nn.GroupNorm)]
    assert {m.num_groups for m in norms} == {8}   # gcd(32, 8): their 32 groups cannot split 8 channels
    for dim in (1, 3):   # their embedding divides by dim/2 - 1
        with pytest.raises(ConfigError, match="ddpm network needs"):
            DDPMModel(dim=dim)
    with pytest.raises(ConfigError, match="ddpm"):
        DDPMModel(dim=16, dim_mults=())


def test_built_from_a_run_config_every_parameter_gets_a_gradient():
    cfg = preset("mnist5k-blur")
    cfg.model.arch, cfg.model.dim, cfg.model.dim_mults = "ddpm", 8, [1, 2]
    model = cfg.build_model()
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    t = torch.randint(1, 21, (4,))
    loss = (model(x0, t) - x0).abs().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_snowification_checkpoint_layout_imports_to_the_authors_output(tmp_path, capsys):
    """Their snowification/decolor train.py does not wrap GaussianDiffusion in DataParallel and its forward process
    holds no tensors: the Trainer's state dicts hold ``denoise_fn.*`` only.  Such a file (the convnext-snow fixture's
    weights re-saved in that layout) imports with nothing left out and gives the authors' output."""
    from safetensors.torch import load_file

    from colddiff import load_run
    from colddiff.cli import main

    here = Path(__file__).parent / "fixtures" / "authors"
    d = torch.load(here / "convnext-snow.pt", weights_only=True)
    unwrapped = {which: {k[len("module."):]: v for k, v in d[which].items() if k.startswith("module.denoise_fn.")}
                 for which in ("model", "ema")}
    assert unwrapped["ema"] and all(k.startswith("denoise_fn.") for k in unwrapped["ema"])
    torch.save({"step": 7, **unwrapped}, tmp_path / "model.pt")
    assert main(["import-official", str(tmp_path / "model.pt"), "--preset", "cifar10-snow", "--set", "data.channels=1",
                 "model.dim=4", "model.dim_mults=1,2", "--out", str(tmp_path / "run")]) == 0
    assert "left out" not in capsys.readouterr().err
    f = load_file(str(here / "convnext-snow.safetensors"))
    run = load_run(tmp_path / "run", device="cpu")
    assert run.cfg.model.arch == "convnext-snow" and run.step == 7
    with torch.no_grad():
        y = run.model(f["x"], f["i"] + 1)
    assert (y - f["y"]).abs().max().item() < 1e-5

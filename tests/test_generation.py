"""Unconditional generation: start states, the GMM of channel means, the loop, files, statistics,
and the hot baseline's samplers (DDIM, Algorithm 2 with fixed noise) against the x0 oracle."""
import json
import math

import pytest
import torch

import colddiff.degradations as deg
from colddiff import generation as gen
from colddiff.errors import ConfigError, InputError, OutputError
from colddiff.generation import (ChannelGMM, generate, generation_stats, near_blank, start_gmm, start_state,
                                 write_generation)
from colddiff.samplers import SAMPLERS, algorithm2, ddim

from conftest import images, make_run

FAMILIES = {
    "blur": dict(name="blur", T=4, params=dict(kernel_size=11, sigma=2.0, padding="circular")),
    "mask": dict(name="mask", T=4, params=dict(position="random", fill="random")),
    "animorph": dict(name="animorph", T=4, params=dict(partners="mnist-5k")),
    "noise": dict(name="noise", T=4, params=dict(schedule="cosine")),
    "resolution": dict(name="resolution", T=2, params={}),
    "mask-zero": dict(name="mask", T=4, params=dict(position="random", fill="zero")),
    "snow": dict(name="snow", T=4, params=dict(level=3)),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = make_run(tmp_path_factory.mktemp(family), FAMILIES[family])
        return cache[family]

    return get


# ---------------------------------------------------------------------------- the loop
@pytest.mark.parametrize("family", ["blur", "mask", "animorph", "noise", "resolution"])
def test_generation_from_untrained_runs(runs, family):
    out = generate(runs(family), 3, progress=False)
    assert out.shape == (3, 1, 28, 28) and out.device.type == "cpu" and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("family,sampler", [("blur", "algorithm1"), ("blur", "direct"), ("noise", "ddim"),
                                            ("noise", "algorithm1"), ("mask", "direct")])
def test_every_sampler(runs, family, sampler):
    out = generate(runs(family), 2, sampler=sampler, progress=False)
    assert out.shape == (2, 1, 28, 28) and torch.isfinite(out).all()


def test_same_seed_same_images_other_seed_other_images(runs):
    run = runs("blur")
    a = generate(run, 3, seed=5, progress=False)
    assert torch.equal(a, generate(run, 3, seed=5, progress=False))
    assert not torch.allclose(a, generate(run, 3, seed=6, progress=False))


def test_images_do_not_depend_on_batch_size(runs):
    run = runs("mask")
    a = generate(run, 5, batch_size=5, progress=False)
    b = generate(run, 5, batch_size=2, progress=False)
    assert torch.allclose(a, b, atol=1e-5)


def test_start_states_are_a_stream_independent_of_n_and_first(runs):
    for family in ("blur", "noise", "resolution"):
        run = runs(family)
        x_all, ctx_all = start_state(run, 70, seed=3)
        x, ctx = start_state(run, 4, seed=3, first=62)  # crosses a chunk boundary
        assert torch.equal(x, x_all[62:66])
        assert torch.equal(start_state(run, 2, seed=3)[0], x_all[:2])
        if family == "noise":
            assert torch.equal(ctx["z"], ctx_all["z"][62:66])


def test_unsupported_runs_and_samplers_are_one_line_config_errors(runs):
    with pytest.raises(ConfigError, match="generation is not defined for snow"):
        generate(runs("snow"), 2, progress=False)
    with pytest.raises(ConfigError, match="stochastic sampler"):
        generate(runs("blur"), 2, sampler="algorithm2", delta=0.01, progress=False)
    with pytest.raises(ConfigError, match="fill=random"):
        start_state(runs("mask-zero"), 2)
    with pytest.raises(ConfigError, match="noise degradation"):
        generate(runs("blur"), 2, sampler="ddim", progress=False)
    with pytest.raises(ConfigError, match="unknown sampler"):
        generate(runs("blur"), 2, sampler="heun", progress=False)
    for bad in (dict(n=0), dict(noise=-1.0), dict(seed=-2), dict(batch_size=0)):
        with pytest.raises(ConfigError):
            generate(runs("blur"), **{"n": 2, **bad}, progress=False)


# ---------------------------------------------------------------------------- start states
def test_blur_start_is_constant_per_channel_and_noise_breaks_symmetry(runs):
    run = runs("blur")
    x, ctx = start_state(run, 6, seed=1)
    assert ctx is None and x.shape == (6, 1, 28, 28)
    assert x.flatten(2).std(2).max() < 1e-6  # constant per channel: D(fill, T) == fill (circular padding)
    gmm = start_gmm(run)
    fill = gmm.sample(gen.CHUNK, gen._generator(1, 0))[:6]
    assert torch.allclose(x[:, :, 0, 0], fill, atol=1e-6)
    xn, _ = start_state(run, 6, seed=1, noise=0.002)
    d = xn - x
    assert 0.0015 < float(d.std()) < 0.0025 and abs(float(d.mean())) < 3e-4  # same means, plus noise


def test_blur_start_is_D_of_the_fill_with_zero_padding(tmp_path):
    run = make_run(tmp_path, dict(name="blur", T=3, params=dict(kernel_size=11, sigma=3.0, padding="zero")))
    x, _ = start_state(run, 2)
    fill = start_gmm(run).sample(gen.CHUNK, gen._generator(0, 0))[:2, :, None, None].expand(-1, -1, 28, 28)
    assert torch.allclose(x, run.D(fill, run.T), atol=1e-6)
    assert (x[:, :, 0, 0] - fill[:, :, 0, 0]).abs().min() > 0.01  # zero padding darkens a constant image's borders
    assert run.D.constant_residual(28) > run.D.RESIDUAL_WARN  # and this light blur is far from constant


def test_mask_start_is_the_solid_colour_of_its_context(runs):
    run = runs("mask")
    x, ctx = start_state(run, 5, seed=2)
    assert x.flatten(2).std(2).max() == 0  # a solid colour per image
    assert torch.allclose(x[:, :, 0, 0], ctx["color"][:, :, 0, 0], atol=1 / 127.5)
    # any x0 reaches the same start under this context, so Algorithm 2 stays on its trajectory
    x0 = images(5, 1, 28, dtype=torch.float32)
    assert torch.equal(run.D(x0, run.T, ctx), x)


def test_animorph_and_noise_start_from_their_context(runs):
    for family in ("animorph", "noise"):
        run = runs(family)
        x, ctx = start_state(run, 4, seed=0)
        ab_T = float(run.D.alpha_bar[-1])
        assert torch.allclose(x, math.sqrt(1 - ab_T) * ctx["z"], atol=1e-6)
    partners = runs("animorph").dataset("train")
    x, ctx = start_state(runs("animorph"), 2)
    assert torch.allclose(ctx["z"][1], partners[int(ctx["index"][1])][0])


def test_resolution_start_is_a_low_resolution_image_drawn_from_the_gmm_of_the_end_state(runs):
    run = runs("resolution")                      # T = 2: 28 -> 14 -> 7 px
    x, ctx = start_state(run, 5, seed=4)
    assert ctx is None and x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    blocks = x.view(5, 1, 7, 4, 7, 4)             # nearest-neighbour upsampling of a 7x7 image
    assert torch.equal(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks))
    assert float(x.flatten(1).std(1).min()) > 0.05  # a digit's rough layout, not a constant
    assert torch.equal(x, start_state(run, 5, seed=4)[0]) and not torch.equal(x, start_state(run, 5, seed=5)[0])
    gmm = start_gmm(run, k=1)
    assert gmm.channels == 49                     # the whole 7x7 end state, not the channel mean
    x0 = run.dataset("train").images[:300]
    stats = run.D.start_statistic(x0)
    assert torch.allclose(stats.mean(0), gmm.means[0], atol=0.1)
    # round trip: the start built from the end-state statistic of real digits is exactly D(x0, T)
    x_T, _ = run.D.start(3, (1, 28, 28), draw=lambda m, g: stats[:m].float())
    assert torch.allclose(x_T, run.D(x0[:3], run.T), atol=1e-6)


def test_resolution_start_round_trips_at_sizes_that_are_not_powers_of_two():
    D = deg.create("resolution", T=3)             # 28 -> 14 -> 7 -> 4 px
    x0 = images(4, 3, 28, dtype=torch.float32)
    stats = D.start_statistic(x0)
    assert stats.shape == (4, 3 * 4 * 4)
    x_T, ctx = D.start(4, (3, 28, 28), draw=lambda m, g: stats[:m].float())
    assert ctx is None and torch.allclose(x_T, D(x0, 3), atol=1e-6)


# ---------------------------------------------------------------------------- the stochastic sampler
def test_stochastic_generation_with_delta_zero_is_algorithm2_and_delta_draws_a_seeded_stream(runs):
    run = runs("blur")
    a2 = generate(run, 6, sampler="algorithm2", noise=0.002, seed=1, progress=False)
    assert torch.equal(generate(run, 6, sampler="stochastic", delta=0.0, noise=0.002, seed=1, progress=False), a2)
    s1 = generate(run, 6, sampler="stochastic", delta=0.05, seed=1, progress=False)
    assert not torch.allclose(s1, generate(run, 6, sampler="stochastic", delta=0.0, seed=1, progress=False))
    assert torch.equal(s1, generate(run, 6, sampler="stochastic", delta=0.05, seed=1, progress=False))
    assert not torch.allclose(s1, generate(run, 6, sampler="stochastic", delta=0.05, seed=2, progress=False))
    # the per-step noise comes in chunks of CHUNK images: the same images whatever the batch size
    assert torch.equal(s1, generate(run, 6, sampler="stochastic", delta=0.05, seed=1, batch_size=2, progress=False))
    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError, match="delta"):
            generate(run, 2, sampler="stochastic", delta=bad, progress=False)


def test_generation_defaults_come_from_the_runs_generation_config(tmp_path):
    run = make_run(tmp_path, dict(name="blur", T=3, params=dict(kernel_size=11, sigma=2.0, padding="circular")))
    assert gen.generation_defaults(run) == {"sampler": "algorithm2", "noise": 0.0, "delta": 0.0, "k": 1}
    run.cfg.generation.sampler, run.cfg.generation.delta, run.cfg.generation.k = "stochastic", 0.03, 2
    assert gen.generation_defaults(run, noise=0.002) == {"sampler": "stochastic", "noise": 0.002, "delta": 0.03, "k": 2}
    a = generate(run, 3, seed=0, progress=False)
    assert torch.equal(a, generate(run, 3, sampler="stochastic", delta=0.03, k=2, seed=0, progress=False))
    assert (run.folder / "generation" / "gmm-k2.json").exists()


# ---------------------------------------------------------------------------- the GMM
def test_gmm_is_fitted_saved_and_reloaded_without_refitting(runs, monkeypatch):
    run = runs("blur")
    path = run.folder / "generation" / "gmm-k1.json"
    path.unlink(missing_ok=True)
    g1 = start_gmm(run, k=1)
    d = json.loads(path.read_text())
    assert d["k"] == 1 and d["covariance_type"] == "full" and d["n_images"] == 4500
    assert d["dataset"] == {"name": "mnist-5k", "split": "train", "image_size": 28, "channels": 1}
    assert set(d) >= {"weights", "means", "covariances"}
    means = run.dataset("train").images.double().mean((2, 3))
    assert torch.allclose(g1.means[0], means.mean(0), atol=1e-6)

    def no_fit(*a, **k):
        raise AssertionError("refitted")

    monkeypatch.setattr(ChannelGMM, "fit", no_fit)
    g2 = start_gmm(run, k=1)
    for a in ("weights", "means", "covariances"):
        assert torch.equal(getattr(g1, a), getattr(g2, a))
    with pytest.raises(AssertionError, match="refitted"):
        start_gmm(run, k=1, refit=True)
    d["dataset"]["image_size"] = 32  # fitted on something else: refit
    path.write_text(json.dumps(d))
    with pytest.raises(AssertionError, match="refitted"):
        start_gmm(run, k=1)


def test_channel_gmm_fit_sample_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = torch.cat([torch.randn(300, 3, generator=g, dtype=torch.float64) * 0.05 - 0.5,
                      torch.randn(100, 3, generator=g, dtype=torch.float64) * 0.05 + 0.4])
    gmm = ChannelGMM.fit(data, k=2, seed=0)
    centres = sorted(gmm.means[:, 0].tolist())
    assert abs(centres[0] + 0.5) < 0.02 and abs(centres[1] - 0.4) < 0.02
    assert sorted(gmm.weights.tolist()) == pytest.approx([0.25, 0.75], abs=0.01)
    back = ChannelGMM.load(gmm.save(tmp_path / "g.json"))
    assert torch.equal(back.means, gmm.means) and torch.equal(back.covariances, gmm.covariances)
    s1 = back.sample(1000, torch.Generator().manual_seed(1))
    assert s1.shape == (1000, 3) and s1.min() >= -1 and s1.max() <= 1
    assert torch.equal(s1, gmm.sample(1000, torch.Generator().manual_seed(1)))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read GMM file"):
        ChannelGMM.load(tmp_path / "bad.json")


# ---------------------------------------------------------------------------- the hot baseline's samplers
def _noise_trajectory(T=30, schedule="cosine"):
    D = deg.create("noise", T=T, schedule=schedule)
    x0 = images(3, 3, 16)
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    return D, x0, ctx


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_ddim_and_algorithm2_with_the_oracle_recover_x0(schedule):
    D, x0, ctx = _noise_trajectory(schedule=schedule)
    x_T = D(x0, D.T, ctx)
    oracle = lambda x, s: x0  # noqa: E731
    assert torch.allclose(ddim(oracle, D, x_T, D.T), x0, atol=1e-9)
    assert torch.allclose(algorithm2(oracle, D, x_T, D.T, ctx), x0, atol=1e-9)
    # per-sample start steps: a sample waits until the loop reaches its own t
    t = torch.tensor([0, 7, 30])
    x_t = D(x0, t, ctx)
    out = ddim(lambda x, s: torch.zeros_like(x), D, x_t, t)
    assert torch.equal(out[0], x_t[0]) and not torch.equal(out[1], x_t[1])


def test_ddim_with_the_oracle_retraces_the_closed_form():
    D, x0, ctx = _noise_trajectory()
    seen = {}
    ddim(lambda x, s: x0, D, D(x0, D.T, ctx), D.T, callback=lambda s, x_s, x0_hat: seen.__setitem__(s, x_s))
    for s in (D.T, 17, 1):
        assert torch.allclose(seen[s], D(x0, s, ctx), atol=1e-10)


def test_ddim_step_is_the_closed_form_update_for_any_restorer():
    D, x0, ctx = _noise_trajectory()
    g = torch.Generator().manual_seed(3)
    R = lambda x, s: torch.rand(x.shape, generator=g, dtype=x.dtype) * 2 - 1  # noqa: E731
    steps = []
    final = ddim(R, D, D(x0, D.T, ctx), D.T, callback=lambda s, x_s, x0_hat: steps.append((s, x_s, x0_hat)))
    ab = D.alpha_bar
    nexts = [x for _, x, _ in steps[1:]] + [final]
    for (s, x_s, x0_hat), x_prev in zip(steps, nexts):
        eps_hat = (x_s - ab[s].sqrt() * x0_hat) / (1 - ab[s]).sqrt()
        assert torch.allclose(x_prev, ab[s - 1].sqrt() * x0_hat + (1 - ab[s - 1]).sqrt() * eps_hat, atol=1e-10)
    assert torch.allclose(final, steps[-1][2])  # ᾱ_0 = 1: the last step returns x0_hat


def test_ddim_needs_the_noise_degradation():
    D = deg.create("blur", T=3, kernel_size=5, sigma=1.0)
    with pytest.raises(ConfigError, match="noise degradation"):
        ddim(lambda x, s: x, D, images(1, 1, 8), 3)
    assert SAMPLERS["ddim"] is ddim


# ---------------------------------------------------------------------------- files
def test_write_generation_replaces_its_own_earlier_set_and_nothing_else(tmp_path):
    out = tmp_path / "gen"
    write_generation(images(9, 1, 12, dtype=torch.float32), out, {"sampler": "algorithm2"})
    x = images(7, 1, 12, dtype=torch.float32)
    info = write_generation(x, out, {"run": tmp_path, "sampler": "algorithm2", "seed": 0})
    assert info["n_images"] == 7 and info["files"][0] == "0000.png" and info["files"][-1] == "0006.png"
    assert info["run"] == str(tmp_path) and info["grid_shape"] == [3, 3]
    assert json.loads((out / "generation.json").read_text()) == info
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == info["files"] + [
        "generation.json", "grid.png"]                       # 0007, 0008 of the earlier set: gone
    from PIL import Image

    with Image.open(out / "0003.png") as im:
        assert im.size == (12, 12)
    # a folder holding the user's files: refused before anything is written, the files untouched
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "0099.png").write_bytes(b"mine")
    (tmp_path / "photos" / "notes.png").write_bytes(b"keep")
    with pytest.raises(OutputError, match="already holds files colddiff did not write"):
        write_generation(x, tmp_path / "photos", {})
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["0099.png", "notes.png"]
    assert (tmp_path / "photos" / "0099.png").read_bytes() == b"mine"


# ---------------------------------------------------------------------------- statistics
def _digits(n=200):
    from colddiff import data

    ds = data.load("mnist-5k", "test", image_size=28, channels=1)
    return ds.images[:n], ds.labels[:n]


def test_stats_of_one_class_and_of_a_uniform_set():
    x, _ = _digits(100)
    one = torch.zeros(100, 10)
    one[:, 3] = 1
    s = generation_stats(one, x)
    assert s["entropy"] == 0 and s["classes_covered"] == 1 and s["classes_covered_1pct"] == 1
    assert s["histogram"][3] == 100 and s["mean_confidence"] == 1.0
    uniform = torch.full((100, 10), 0.02)
    uniform[torch.arange(100), torch.arange(100) % 10] = 0.82
    s = generation_stats(uniform, x)
    assert s["entropy"] == pytest.approx(1.0) and s["classes_covered"] == 10 and s["histogram"] == [10] * 10
    assert s["mean_confidence"] == pytest.approx(0.82) and s["near_blank_share"] == 0
    with pytest.raises(InputError, match="softmax"):
        generation_stats(torch.randn(100, 10), x)


def test_blank_and_smudged_images_are_flagged_digits_are_not():
    x, _ = _digits(500)
    assert not near_blank(x).any()
    blank = torch.full((2, 1, 28, 28), -1.0)
    blank[1] = 0.3  # a solid grey
    D = deg.create("blur", T=10, kernel_size=11, sigma=1.0)
    smudges = D(x[:50], 10)  # digits blurred until no stroke stands out
    assert near_blank(blank).all()
    assert near_blank(smudges).float().mean() > 0.8
    probs = torch.softmax(torch.randn(52, 10), 1)
    s = generation_stats(probs, torch.cat([blank, x[:50]]))
    assert s["near_blank_count"] == 2 and s["near_blank_share"] == pytest.approx(2 / 52)

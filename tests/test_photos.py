"""Photos at their own size: shift-invariant families, tiles with raised-cosine blending, the colour
folder preset, restore's defaults from the run, logging off a terminal, and the early checks of
evaluate and export."""
import dataclasses
import importlib.util
import json
import logging

import pytest
import torch
from PIL import Image

import colddiff.degradations as deg
from colddiff.cli import main
from colddiff.config import run_name
from colddiff.presets import resolve_config
from colddiff.images import read_image, save_image
from colddiff.restoration import blend_window, native_size, native_size_problem, restore, restore_image, tiles
from colddiff.runs import load_run
from colddiff.training import train

from conftest import images, make, make_run

TINY_COLOUR = ["model.dim=8", "model.dim_mults=1,2,2", "train.batch_size=8", "train.log_every=10",
               "train.checkpoint_every=1000", "train.sample_every=0", "train.warmup_steps=0", "train.ema_start=0"]


# ---------------------------------------------------------------------------- the families' declaration
def test_declared_shift_invariant_families_commute_with_shifts():
    """D(shift(x)) == shift(D(x)) for circular shifts, where the family says it is shift-invariant."""
    x = images(B=2, C=3, H=32, W=24)
    cases = [(make("blur", padding="circular"), 5), (make("desaturate"), 3), (make("resolution", T=2), 4)]
    for D, shift in cases:
        assert D.shift_invariant and native_size_problem(D, 32, 24) is None
        t = torch.tensor([1, D.T])
        rolled = D(torch.roll(x, (shift, -shift), (2, 3)), t)
        assert torch.allclose(rolled, torch.roll(D(x, t), (shift, -shift), (2, 3)), atol=1e-10), D.name


def test_families_that_are_not_shift_invariant_say_why():
    assert "centred" in native_size_problem(make("mask", position="center"), 64, 64)
    assert native_size_problem(make("mask", position="random"), 64, 64) is None
    animorph = make("animorph", partners=torch.zeros(1, 1, 8, 8))
    assert "partner image" in native_size_problem(animorph, 64, 64)
    why = native_size_problem(make("resolution", T=3), 150, 200)       # 150 is not a multiple of 2^3
    assert "multiples of 8" in why and native_size_problem(make("resolution", T=3), 152, 200) is None


def test_a_plugin_family_is_not_shift_invariant_unless_it_says_so():
    class Mine(deg.Degradation):
        def forward(self, x0, t, ctx):
            return x0

    assert "shift_invariant" in native_size_problem(Mine(T=3), 40, 40)


# ---------------------------------------------------------------------------- tiles and their blending
@pytest.mark.parametrize("n,tile,overlap,m", [(200, 64, 16, 1), (150, 64, 24, 1), (64, 64, 8, 1), (40, 64, 8, 1),
                                              (152, 64, 16, 8)])
def test_tiles_cover_the_axis_on_the_block_grid(n, tile, overlap, m):
    L = min(tile, n)
    starts = tiles(n, L, overlap, m)
    covered = torch.zeros(n)
    for s in starts:
        covered[s:s + L] += 1
        assert s % m == 0
    assert bool((covered >= 1).all()) and starts[-1] + L == n
    assert all(b - a <= L - overlap for a, b in zip(starts, starts[1:]))   # neighbours share >= overlap pixels


def test_raised_cosine_ramps_of_neighbouring_tiles_sum_to_one():
    a, b = blend_window(64, 0, 16), blend_window(64, 16, 0)
    assert torch.allclose(a[-16:] + b[:16], torch.ones(16, dtype=torch.float64))
    assert bool((a > 0).all()) and float(a[:48].min()) == 1.0 and float(a[-1]) < 0.01


class PixelNet(torch.nn.Module):
    """A per-pixel restorer: any tiling must reproduce the whole-image result exactly."""

    size_multiple = 2

    def forward(self, x, t):
        return torch.tanh(2 * x) * (1 - t.float().view(-1, 1, 1, 1) / 100)


def test_tiles_blend_back_to_the_whole_image_for_a_per_pixel_restorer(tmp_path):
    run = dataclasses.replace(make_run(tmp_path, dict(name="blur", T=5, params=dict(kernel_size=5, sigma=1.0)),
                                       data=dict(name="folder:x", image_size=32, channels=3)), model=PixelNet())
    y = images(B=2, C=3, H=150, W=200, dtype=torch.float32)
    whole = restore_image(run, y, 3, "algorithm2")
    for tile, overlap in ((64, 16), (48, 0), (100, 40)):
        tiled = restore_image(run, y, 3, "algorithm2", tile=tile, overlap=overlap)
        assert tiled.shape == y.shape
        # algorithm2 re-blurs each tile on its own (reflect padding at tile edges), so only direct is exact
        assert torch.allclose(restore_image(run, y, 3, "direct", tile=tile, overlap=overlap),
                              restore_image(run, y, 3, "direct"), atol=1e-6)
        assert (tiled - whole).abs().mean() < 0.02


# ---------------------------------------------------------------------------- the colour preset on a folder
def _photo(H=150, W=200, seed=0):
    """A smooth colour test image (gradients and discs), (3, H, W) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    img = torch.stack([xx, yy, 1 - xx * yy]) * 2 - 1
    for _ in range(12):
        cy, cx, r = torch.rand(3, generator=g).tolist()
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.05 + 0.1 * r) ** 2
        img = torch.where(disc, (torch.rand(3, 1, 1, generator=g) * 2 - 1).expand(3, H, W), img)
    return img


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """A folder of 32-pixel colour crops of test images at their own scale."""
    folder = tmp_path_factory.mktemp("crops")
    g = torch.Generator().manual_seed(1)
    for k in range(4):
        img = _photo(96, 128, seed=k)
        for j in range(16):
            y0, x0 = int(torch.randint(0, 64, (1,), generator=g)), int(torch.randint(0, 96, (1,), generator=g))
            save_image(img[:, y0:y0 + 32, x0:x0 + 32], folder / f"c{k}-{j}.png")
    return folder


@pytest.fixture(scope="module")
def colour_run(crops, tmp_path_factory):
    cfg = resolve_config("folder-blur", None, [f"data.name=folder:{crops}", "train.steps=60", *TINY_COLOUR])
    out = tmp_path_factory.mktemp("runs") / "colour"
    train(cfg, out, progress=False)
    return out


def test_the_colour_preset_trains_from_a_folder_and_is_named_after_it(colour_run, crops):
    run = load_run(colour_run, device="cpu")
    c = run.cfg.data
    assert (c.image_size, c.channels, run.D.name) == (32, 3, "blur") and run.step == 60
    assert run.name == f"{crops.name}-blur" == run_name(run.cfg)
    assert crops.name in run.cfg.description and "preset folder-blur" in run.cfg.description


def test_the_preset_without_a_folder_says_how_to_give_one(tmp_path, capsys):
    assert main(["train", "--preset", "folder-blur", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--set data.name=folder:PATH" in err


def test_a_colour_folder_under_a_grey_preset_warns_and_is_not_called_mnist(crops, tmp_path, caplog):
    cfg = resolve_config("mnist5k-blur", None, [f"data.name=folder:{crops}", "train.steps=2", *TINY_COLOUR])
    assert "MNIST" not in cfg.description and run_name(cfg) == f"{crops.name}-blur"
    with caplog.at_level(logging.WARNING, logger="colddiff.training"):
        train(cfg, tmp_path / "r", progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("colour images" in m and "data.channels=1" in m and "folder-blur" in m for m in warned)


def test_a_200x150_photo_is_restored_at_its_own_size_whole_and_in_tiles(colour_run, tmp_path):
    run = load_run(colour_run, device="cpu")
    x0 = _photo(150, 200, seed=9)[None]
    y = run.D(x0, 6)
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    save_image(y[0], src)
    for args, out in (([], "whole"), (["--tile", "64", "--overlap", "24"], "tiled")):
        assert main(["restore", str(colour_run), "--input", str(src), "--t", "6", "--out", str(tmp_path / out),
                     "--no-progress", *args]) == 0
        for s in ("direct", "algorithm2"):
            with Image.open(tmp_path / out / f"photo.{s}.png") as im:
                assert im.size == (200, 150)                  # its own size: nothing stretched or cropped
    a = read_image(tmp_path / "whole" / "photo.direct.png")
    b = read_image(tmp_path / "tiled" / "photo.direct.png")
    # GroupNorm and the lowest level's attention see a whole tile, so tiles and the whole image differ a
    # little even for a well-trained network (and more for this 60-step one: ~0.2 measured); a per-pixel
    # restorer agrees exactly (test_tiles_blend_back_to_the_whole_image_for_a_per_pixel_restorer)
    gap = float((a - b).abs().mean())
    assert gap < 0.3, gap
    assert float((a - b).abs().flatten(1).mean(1).max()) < 0.3
    record = json.loads((tmp_path / "tiled" / "restore.json").read_text())
    assert record["images"][0]["size"] == [200, 150]


@pytest.fixture(scope="module")
def digit_run(tmp_path_factory):
    """A trained blur run small enough for the suite: 16-pixel digits, T=4, 300 steps (~40 s on 2 busy cores)."""
    cfg = resolve_config("mnist5k-blur", None, [
        "train.steps=300", "data.image_size=16", "degradation.T=4", "degradation.kernel_size=5",
        "degradation.sigma=1.5", "model.dim=8", "model.dim_mults=1,2", "model.attn_levels=", "train.batch_size=16",
        "train.lr=2e-3", "train.ema_decay=0.9", "train.ema_start=0", "train.warmup_steps=0",
        "train.checkpoint_every=100000", "train.sample_every=0", "train.log_every=100"])
    out = tmp_path_factory.mktemp("runs") / "digits"
    train(cfg, out, progress=False)
    return load_run(out, device="cpu")


def test_estimate_t_recovers_the_true_t_on_a_trained_run(digit_run):
    """The README's claim (mean estimates within about 0.02 of t on mnist5k-blur): on 64 held-out digits
    blurred to each t, the estimate's mean is within 0.05 of t and at least 90% are exactly t."""
    from colddiff.evaluation import held_out
    from colddiff.restoration import estimate_t

    run = digit_run
    x0, _, _ = held_out(run, 64)
    for t in range(1, run.T + 1):
        est = estimate_t(run, run.degrade(x0, t))
        assert abs(est.float().mean().item() - t) <= 0.05, (t, est.tolist())
        assert (est == t).float().mean().item() >= 0.9, (t, est.tolist())


def test_estimated_t_works_on_tiles(digit_run):
    """A picture larger than the run's images (a 3 x 4 mosaic of digits, 48 x 64 px) restored in 16-px tiles:
    the estimate is the true t."""
    from colddiff.evaluation import held_out
    from colddiff.restoration import estimate_t

    run = digit_run
    x0, _, _ = held_out(run, 12)
    mosaic = torch.cat([torch.cat(list(x0[r * 4:(r + 1) * 4]), dim=-1) for r in range(3)], dim=-2)[None]
    assert mosaic.shape == (1, 1, 48, 64)
    for t in range(1, run.T + 1):
        assert estimate_t(run, run.D(mosaic, t), tile=16, overlap=4).tolist() == [t]


def test_a_centred_mask_run_refuses_other_sizes_in_one_line_and_resize_keeps_the_aspect(tmp_path, capsys):
    folder = tmp_path / "run"
    run = make_run(folder, dict(name="mask", T=5, params=dict(position="center")))
    assert native_size(run, 40, 60) is not None
    src = tmp_path / "wide.png"
    Image.new("L", (90, 45), 128).save(src)
    assert main(["restore", str(folder), "--input", str(src), "--t", "3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "centred" in err and "--resize" in err
    assert main(["restore", str(folder), "--input", str(src), "--t", "3", "--resize", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    assert "aspect ratio kept" in capsys.readouterr().err
    with Image.open(tmp_path / "o" / "wide.direct.png") as im:
        assert im.size == (28, 28)
    with pytest.raises(Exception, match="centred"):
        restore(run, torch.zeros(1, 1, 40, 60), 3, sampler="direct", progress=False)


# ---------------------------------------------------------------------------- restore's defaults from the run
def test_a_random_mask_run_restores_with_direct_and_asks_for_t_up_front(tmp_path, capsys):
    folder = tmp_path / "run"
    make_run(folder, dict(name="mask", T=5, params=dict(position="random")))
    src = tmp_path / "holes.png"
    Image.new("L", (28, 28), 100).save(src)
    out = tmp_path / "o"
    assert main(["restore", str(folder), "--input", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--t N" in err and "direct" in err and not out.exists()
    assert main(["restore", str(folder), "--input", str(src), "--t", "3", "--out", str(out), "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "--sampler direct" in cap.err and "with direct:" in cap.out
    made = sorted(p.name for p in out.iterdir() if p.name != ".colddiff-output.json")   # beside the manifest
    assert made == ["holes.direct.png", "restore.json", "sheet.png"]


# ---------------------------------------------------------------------------- logging
def test_training_off_a_terminal_logs_lines_instead_of_a_bar(crops, tmp_path, caplog, capsys):
    cfg = resolve_config("folder-blur", None, [f"data.name=folder:{crops}", "train.steps=20", *TINY_COLOUR])
    with caplog.at_level(logging.INFO, logger="colddiff.training"):
        train(cfg, tmp_path / "r", progress=True)             # pytest's stderr is not a terminal
    lines = [r.getMessage() for r in caplog.records if r.name == "colddiff.training" and r.levelno == logging.INFO]
    assert [m.split()[1] for m in lines] == ["10/20", "20/20"] and all("loss" in m for m in lines)
    err = capsys.readouterr().err
    assert "it/s" not in err and "step/s" not in err


def test_train_no_progress_still_logs_through_the_cli(crops, tmp_path, capsys):
    args = ["train", "--preset", "folder-blur", "--out", str(tmp_path / "r"), "--no-progress", "--log", "none",
            "--set", f"data.name=folder:{crops}", "train.steps=10", *TINY_COLOUR]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "colddiff: step 10/10  loss" in err
    assert not (tmp_path / "r" / "tensorboard").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_log_wandb_without_wandb_says_what_to_install(tmp_path, capsys):
    assert main(["train", "--preset", "mnist5k-blur", "--out", str(tmp_path / "r"), "--log", "wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'colddiff[wandb]'" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_log_tensorboard_writes_event_files(crops, tmp_path):
    cfg = resolve_config("folder-blur", None, [f"data.name=folder:{crops}", "train.steps=10", *TINY_COLOUR])
    train(cfg, tmp_path / "r", progress=False, log_to="tensorboard")
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))


# ---------------------------------------------------------------------------- evaluate and export checks
def test_evaluate_without_fid_or_classifier_never_trains_the_classifier(tmp_path, monkeypatch):
    import colddiff.classifier as classifier_mod
    from colddiff.evaluation import evaluate

    def refuse(*a, **k):
        raise AssertionError("the classifier was asked for")

    monkeypatch.setattr(classifier_mod, "get_classifier", refuse)
    monkeypatch.setattr(classifier_mod, "train_classifier", refuse)
    run = make_run(tmp_path, dict(name="blur", T=4, params=dict(kernel_size=5, sigma=1.0)))
    ev = evaluate(run, n=4, fid="none", classifier=False, progress=False)
    assert [r["method"] for r in ev.rows][0] == "degraded" and ev.classifier_accuracy is None


def test_export_push_checks_the_repo_id_and_the_hub_client_before_writing(tmp_path, monkeypatch, capsys):
    import sys

    folder = tmp_path / "run"
    make_run(folder, dict(name="blur", T=4, params=dict(kernel_size=5, sigma=1.0)))
    out = tmp_path / "e"
    assert main(["export", str(folder), "--out", str(out), "--push", "not a repo id", "--no-progress"]) == 2
    assert "owner/name" in capsys.readouterr().err and not out.exists()
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert main(["export", str(folder), "--out", str(out), "--push", "me/model", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install huggingface_hub" in err and not out.exists()


def test_the_model_card_installs_from_git():
    from colddiff.export import install_line

    line = install_line()
    assert line.startswith("pip install 'colddiff[demo] @ git+")


def test_algorithm2_in_one_step_is_direct_reconstruction_plus_the_unexplained_input(colour_run):
    """restore --sample-steps 1: one update from t to 0, x0 = x_t - D(x0_hat, t) + D(x0_hat, 0), i.e. the direct
    restoration plus what it fails to explain of the input, y - D(x0_hat, t)."""
    run = load_run(colour_run, device="cpu")
    x0 = _photo(40, 48, seed=3)[None]
    y = run.degrade(x0, 4)
    x0_hat = restore(run, y, 4, "direct", progress=False)
    one = restore(run, y, 4, "algorithm2", progress=False, schedule="1")
    assert torch.allclose(one, x0_hat + (y - run.D(x0_hat, 4)), atol=1e-5)
    assert not torch.allclose(one, restore(run, y, 4, "algorithm2", progress=False), atol=1e-3)


def _held_out_folder(tmp_path):
    """The benchmark's --photos: a folder of one small photo the colour run never saw."""
    photos = tmp_path / "held-out"
    photos.mkdir()
    save_image(_photo(40, 48, seed=5), photos / "p.png")
    return photos


def test_the_photo_benchmark_measures_its_tables(colour_run, tmp_path):
    """benchmarks/photos.py on one small held-out photo: the quality rows (with a shorter Algorithm 2 schedule),
    the t-auto rows with the direct PSNR at the best, estimated and best-restoring t, and the JSON."""
    from benchmarks.photos import run_cli

    photos = _held_out_folder(tmp_path)
    res = run_cli(["--run", str(colour_run), "--photos", str(photos), "--ts", "2", "--sample-steps", "1",
                   "--auto-tolerance", "1.25",
                   "--crop", "32", "--out", str(tmp_path / "photos.json")])
    (q,) = res["quality"]
    assert q["t"] == 2 and q["size"] == [48, 40]
    for k in ("degraded", "direct", "algorithm2", "algorithm2@1"):
        assert 0 < q[k]["psnr"] < 100 and -1 <= q[k]["ssim"] <= 1
    assert q["algorithm2"]["psnr"] != q["algorithm2@1"]["psnr"]
    assert res["default_sample_steps"] == "1" and q["ok"] == q["algorithm2@1"]["beats_input"]   # what restore writes
    rows = res["t_auto"]
    T = load_run(colour_run).T
    assert T >= 8 and len(rows) == 4 + 9                  # the run's own blur at t = 2, 4, 6, 8; nine foreign ones
    for r in rows:
        assert 1 <= r["estimated"] <= T and 1 <= r["best_t"] <= T and 1 <= r["restores_best"] <= T
        assert 1 <= r["estimated_with_tolerance"]["1.25"] <= T
        p = r["direct_psnr"]
        assert p["restores_best"] >= max(p["best_t"], p["estimated"])      # the best is the best
    saved = json.loads((tmp_path / "photos.json").read_text())
    assert saved["sample_steps"] == ["1"] and len(saved["t_auto"]) == len(rows)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5])
def test_the_edge_width_measure_recovers_a_gaussian_blur_of_isolated_edges(sigma):
    """The photo benchmark's edge-width estimate (gradient ratio at edge centres): on the synthetic chart blurred
    by an exact Gaussian of sigma pixels it reads sqrt(sigma^2 + w0^2) back, w0 (a sharp step sampled on pixels,
    about 0.6 px) adding in quadrature as widths of Gaussians do."""
    from benchmarks.photos import _reblur, edge_chart, edge_width

    chart = edge_chart(160)
    w0 = edge_width(chart)
    assert 0.3 < w0 < 0.7
    blurred = _reblur(chart[:1, None].double(), sigma)[:, 0].float().expand(3, -1, -1)
    expected = (sigma ** 2 + w0 ** 2) ** 0.5
    assert abs(edge_width(blurred) - expected) < 0.1 * expected, (edge_width(blurred), expected)
    assert abs(edge_width(blurred * 0.3) - edge_width(blurred)) < 1e-6                    # contrast does not matter


def test_the_photo_benchmark_compares_edge_width_estimates(colour_run, tmp_path):
    """--edge-estimates adds both edge-width estimates of t to every t-auto row (each with the direct PSNR at
    that t) and a summary that counts, per estimate, the rows within one step of the best t."""
    from benchmarks.photos import estimator_summary, format_table, run_cli

    photos = _held_out_folder(tmp_path)
    res = run_cli(["--run", str(colour_run), "--photos", str(photos), "--skip-quality", "--own-ts", "1,3",
                   "--edge-estimates", "--crop", "32", "--out", str(tmp_path / "photos.json")])
    rows, T = res["t_auto"], load_run(colour_run).T
    assert len(rows) == 2 + 9
    for r in rows:
        assert set(r["edge_estimates"]) == {"edge width, chart", "edge width, self-calibrated"}
        for v in r["edge_estimates"].values():
            assert 1 <= v["t"] <= T and v["direct_psnr"] <= r["direct_psnr"]["restores_best"]
    summary = {row[0]: row for row in estimator_summary(rows)}
    assert summary["best t (the target)"][1] == f"{len(rows)}/{len(rows)}"
    within = sum(abs(r["edge_estimates"]["edge width, chart"]["t"] - r["best_t"]) <= 1 for r in rows)
    assert summary["edge width, chart"][1] == f"{within}/{len(rows)}"
    assert "over by 2+" in format_table(res)


def test_folder_blur_runs_restore_in_one_update_by_default_and_the_option_overrides_it(colour_run, tmp_path):
    """The run's [restore] sample_steps (folder-blur: "1") is what `colddiff restore` uses unless --sample-steps is
    given; restore.json records it."""
    run = load_run(colour_run, device="cpu")
    assert run.cfg.restore.sample_steps == "1"
    x0 = _photo(40, 48, seed=4)[None]
    src = tmp_path / "in" / "p.png"
    src.parent.mkdir()
    save_image(run.degrade(x0, 5)[0], src)
    y = read_image(src)[None]
    outs = {}
    for name, extra in (("default", []), ("all", ["--sample-steps", "all"])):
        assert main(["restore", str(colour_run), "--input", str(src), "--t", "5", "--out", str(tmp_path / name),
                     "--no-progress", *extra]) == 0
        outs[name] = read_image(tmp_path / name / "p.algorithm2.png")[None]
        rec = json.loads((tmp_path / name / "restore.json").read_text())
        assert rec["sample_steps"] == ("1" if name == "default" else "all")
    one = restore(run, y, 5, "algorithm2", progress=False, schedule="1")
    full = restore(run, y, 5, "algorithm2", progress=False)
    assert (outs["default"] - one.clamp(-1, 1)).abs().max() <= 1.5 / 127.5   # the PNG: clamped, 8-bit
    assert (outs["all"] - full.clamp(-1, 1)).abs().max() <= 1.5 / 127.5


def test_restore_sample_steps_is_checked_and_kept_by_other_presets():
    from colddiff.errors import ConfigError
    from colddiff.presets import PRESETS

    assert PRESETS["folder-blur"].restore.sample_steps == "1"
    assert all(p.restore.sample_steps == "" for n, p in PRESETS.items() if n != "folder-blur")
    assert resolve_config("folder-blur", None, ["data.name=folder:x", "restore.sample_steps=4:quadratic"]) \
        .restore.sample_steps == "4:quadratic"
    with pytest.raises(ConfigError, match="restore.sample_steps"):
        resolve_config("folder-blur", None, ["data.name=folder:x", "restore.sample_steps=often"])

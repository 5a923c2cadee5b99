"""``evaluate --protocol paper``: the authors' test set, loader, metrics and rows, checked against
independent computations on a fixture folder of images and on a fixed restorer."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from colddiff import degradations as deg
from colddiff import metrics
from colddiff.config import DataConfig, DegradationConfig, ModelConfig, RunConfig
from colddiff.evaluation import evaluate, held_out, paper_methods, write_evaluation
from colddiff.runs import Run

from conftest import make_run

N_TEST, SIZE = 6, 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A data set folder: train/ and test/ sub-folders of small grey PNGs (sorted by name)."""
    root = tmp_path_factory.mktemp("fixture-data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", N_TEST)):
        (root / split).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(root / split / f"{i:02d}.png")
    return root


def folder_run(tmp_path, folder, degradation):
    return make_run(tmp_path, degradation, data=dict(name=f"folder:{folder}", image_size=SIZE, channels=1))


def files_as_authors_load_them(folder, enlarge: bool):
    """Test images 1..N-1 read with PIL; enlarged to int(1.12 n) (bilinear on float pixels) and centre-cropped
    with torchvision's offset round((n' - n) / 2) when ``enlarge``; in [-1, 1]."""
    out = []
    for i in range(1, N_TEST):
        a = np.asarray(Image.open(folder / "test" / f"{i:02d}.png"), dtype=np.float32) / 255.0
        if enlarge:
            big = int(SIZE * 1.12)
            a = np.asarray(Image.fromarray(a, mode="F").resize((big, big), Image.BILINEAR))
            o = int(round((big - SIZE) / 2.0))
            a = a[o:o + SIZE, o:o + SIZE]
        out.append(torch.from_numpy(a.copy())[None] * 2 - 1)
    return torch.stack(out)


def authors_rmse(y, x0):
    """sqrt(mean((x0 - y)^2)) over the whole set on [0, 1], no clamping (their test scripts)."""
    a, b = (y.double().numpy() + 1) / 2, (x0.double().numpy() + 1) / 2
    return math.sqrt(((a - b) ** 2).mean())


def test_paper_protocol_skips_the_first_test_image_and_enlarges_blur_test_images(tmp_path, folder):
    run = folder_run(tmp_path, folder, dict(name="blur", T=3, params=dict(kernel_size=5, sigma=1.0,
                                                                          padding="reflect")))
    x0, _, split = held_out(run, None, "paper")
    want = files_as_authors_load_them(folder, enlarge=True)
    assert split == "test" and x0.shape == (N_TEST - 1, 1, SIZE, SIZE)
    assert torch.allclose(x0, want, atol=1e-5)
    plain, _, _ = held_out(run, None, "colddiff")  # colddiff: the first images, as they are
    assert plain.shape[0] == N_TEST and torch.allclose(plain[1:], files_as_authors_load_them(folder, False),
                                                       atol=1e-6)
    assert held_out(run, 2, "paper")[0].shape[0] == 2  # --n takes the first n of the protocol's images


def test_paper_protocol_rmse_is_the_global_unclamped_root_mean(tmp_path, folder):
    run = folder_run(tmp_path, folder, dict(name="blur", T=3, params=dict(kernel_size=5, sigma=1.0,
                                                                          padding="reflect")))
    ev = evaluate(run, fid="none", classifier=False, progress=False, protocol="paper")
    assert ev.protocol == "paper" and ev.n == N_TEST - 1 and ev.enlarged
    x0 = files_as_authors_load_them(folder, enlarge=True)
    x_t = run.D(x0, 3)
    rows = {r["method"]: r for r in ev.rows}
    assert [m for m, _ in paper_methods(run.D)] == [r["method"] for r in ev.rows] == \
        ["degraded", "direct", "algorithm2"]  # blur: the authors' rows are x_T and Algorithm 2's x_0
    assert rows["degraded"]["rmse"] == pytest.approx(authors_rmse(x_t, x0), rel=1e-5)
    direct = run.R(x_t, torch.full((N_TEST - 1,), 3))
    assert rows["direct"]["rmse"] == pytest.approx(authors_rmse(direct, x0), rel=1e-4)
    assert rows["algorithm2"]["paper_row"] == "sampled" and rows["degraded"]["paper_row"] == "degraded"
    assert "Protocol paper" in ev.caption() and "enlarged 1.12x" in ev.caption()
    paths = write_evaluation(ev, tmp_path / "evaluation")
    assert paths["json"].name == "restoration-paper.json"  # beside, not over, a colddiff evaluation


def test_global_rmse_differs_from_the_mean_of_per_image_rmse_and_is_not_clamped():
    x0 = torch.zeros(2, 1, 4, 4)
    y = torch.zeros(2, 1, 4, 4)
    y[0] = 0.5            # one image off by 0.25 on [0, 1], the other exact
    assert metrics.rmse_global(y, x0) == pytest.approx(math.sqrt(0.25 ** 2 / 2))
    assert float(metrics.rmse(y, x0).mean()) == pytest.approx(0.125)
    over = torch.full((1, 1, 4, 4), 1.5)  # overshoot above 1 counts in full
    assert metrics.rmse_global(over, torch.ones(1, 1, 4, 4)) == pytest.approx(0.25)
    assert float(metrics.rmse(over, torch.ones(1, 1, 4, 4))) == 0.0  # the clamped per-image RMSE hides it


class _Fixed(torch.nn.Module):
    """A fixed restorer whose error depends on the step: R(x, t) = 0.8 x + 0.02 t."""

    def forward(self, x, t):
        return 0.8 * x + 0.02 * t.view(-1, 1, 1, 1).to(x.dtype)


def fixed_run(tmp_path, degradation):
    cfg = RunConfig(data=DataConfig(name="mnist-5k", image_size=28, channels=1),
                    degradation=DegradationConfig(**degradation), model=ModelConfig())
    return Run(folder=tmp_path, checkpoint=tmp_path / "none", cfg=cfg, step=0, model=_Fixed(),
               D=cfg.build_degradation(), device=torch.device("cpu"))


def test_paper_rows_of_inpainting_are_the_first_update_and_the_last_prediction(tmp_path):
    """Golden rows: the authors' inpainting script records x_{T-1} (after the first update) as 'degraded'
    and R(x_1, 1) as 'sampled'; recomputed here step by step from the rounded start x_T."""
    T = 5
    run = fixed_run(tmp_path, dict(name="mask", T=T, params=dict(position="random")))
    ev = evaluate(run, n=6, fid="none", classifier=False, progress=False, protocol="paper", seed=3)
    x0, _, _ = held_out(run, 6, "paper")
    D, R = run.D, run.model
    ctx = D.context(x0, torch.Generator().manual_seed(3))
    x = D.observe(x0, T, ctx)           # the authors' --discrete x_T: on 8-bit levels
    x_T, steps, preds = x, [], []
    for s in range(T, 0, -1):
        x0_hat = R(x, torch.full((6,), s))
        preds.append(x0_hat)
        x = x - D(x0_hat, s, ctx) + D(x0_hat, s - 1, ctx)
        steps.append(x)
    rows = {r["method"]: r for r in ev.rows}
    assert [r["method"] for r in ev.rows] == ["degraded", "first-update", "direct", "algorithm2", "last-prediction"]
    want = {"degraded": x_T, "first-update": steps[0], "direct": preds[0], "algorithm2": steps[-1],
            "last-prediction": preds[-1]}
    for m, y in want.items():
        assert rows[m]["rmse"] == pytest.approx(authors_rmse(y, x0), rel=1e-6), m
        assert rows[m]["ssim"] == pytest.approx(float(metrics.ssim(y, x0, clamp=False).mean()), rel=1e-6), m
    assert rows["first-update"]["paper_row"] == "degraded" and rows["last-prediction"]["paper_row"] == "sampled"
    assert rows["degraded"]["paper_row"] == "" and rows["algorithm2"]["paper_row"] == ""
    assert "after Algorithm 2's first update" in ev.caption() and "R(x_1, 1)" in ev.caption()


@pytest.mark.parametrize("name,kw,degraded,sampled", [
    ("blur", dict(T=4, kernel_size=5, sigma=1.0), "degraded", "algorithm2"),
    ("resolution", dict(T=2), "degraded", "last-prediction"),
    ("mask", dict(T=4), "first-update", "last-prediction"),
    ("snow", dict(T=4, level=3, random=True, fix_brightness=True), "first-update", "last-prediction"),
    ("desaturate", dict(T=4), "first-update", "last-prediction"),
])
def test_each_family_names_the_rows_of_its_authors_test_script(name, kw, degraded, sampled):
    rows = dict((paper, m) for m, paper in paper_methods(deg.create(name, **kw)) if paper)
    assert rows == {"degraded": degraded, "direct": "direct", "sampled": sampled}


def test_colddiff_protocol_is_unchanged_for_runs_of_ones_own(tmp_path):
    run = make_run(tmp_path, dict(name="blur", T=3, params=dict(kernel_size=5, sigma=1.0, padding="reflect")))
    ev = evaluate(run, n=5, fid="none", classifier=False, progress=False)
    assert ev.protocol == "colddiff" and ev.n == 5 and not ev.enlarged
    assert [r["method"] for r in ev.rows] == ["degraded", "direct", "algorithm1", "algorithm2"]

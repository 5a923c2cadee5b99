"""Evaluation (Table 1), restoring users' images, figures and the HTML report.

Runs are tiny untrained networks (conftest.make_run) or plain-function restorers, so the
numbers are checked against independent computations rather than against a trained model.
"""
import dataclasses
import json
import os
import shutil
import subprocess

import pytest
import torch

import colddiff.classifier as classifier_mod
from colddiff import metrics
from colddiff.cli import main
from colddiff.errors import ConfigError
from colddiff.evaluation import evaluate, read_evaluation, restore_batches, table_methods, write_evaluation
from colddiff.restoration import estimate_t, restore
from colddiff.images import read_image, save_image
from colddiff.evaluation import find_evaluations

from conftest import make_run

BLUR = dict(name="blur", T=4, params=dict(kernel_size=7, sigma=1.5, padding="reflect"))


@pytest.fixture(scope="module")
def blur_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("blur-run"), BLUR)


# ---------------------------------------------------------------------------- Table 1
def test_table_rows_match_independent_metrics(blur_run, clf):
    ev = evaluate(blur_run, n=12, fid="classifier", progress=False)
    assert [r["method"] for r in ev.rows] == ["degraded", "direct", "algorithm1", "algorithm2"] \
        == table_methods(blur_run.D)
    ds, _ = blur_run.held_out()
    x0 = torch.stack([ds[i][0] for i in range(12)])
    labels = torch.tensor([ds[i][1] for i in range(12)])
    x_t = blur_run.D(x0, 4)
    deg_row = ev.rows[0]
    assert deg_row["rmse"] == pytest.approx(float(metrics.rmse(x_t, x0).mean()), rel=1e-5)
    assert deg_row["ssim"] == pytest.approx(float(metrics.ssim(x_t, x0).mean()), rel=1e-5)
    assert deg_row["accuracy"] == pytest.approx(float((clf.predict(x_t) == labels).float().mean()))
    direct = blur_run.R(x_t, torch.full((12,), 4))
    assert ev.rows[1]["rmse"] == pytest.approx(float(metrics.rmse(direct, x0).mean()), rel=1e-4)
    assert ev.n == 12 and ev.t == ev.T == 4 and ev.fid_small and "fewer than 2,048" in ev.fid_label
    assert ev.classifier_accuracy == pytest.approx(clf.accuracy)
    assert all(r["fid"] >= 0 for r in ev.rows)


def test_restore_batches_do_not_depend_on_batch_size(tmp_path):
    run = make_run(tmp_path, dict(name="mask", T=5, params=dict(position="random")))
    ds, _ = run.held_out()
    x0 = torch.stack([ds[i][0] for i in range(5)])
    a = restore_batches(run, x0, 5, batch_size=5, progress=False)
    b = restore_batches(run, x0, 5, batch_size=2, progress=False)
    assert torch.equal(a["degraded"], b["degraded"])  # the same contexts: the same (8-bit) x_t
    for m in table_methods(run.D):
        # float32 convolutions differ by ~1e-6 between batch sizes; the samplers' D calls are exact (not rounded
        # to 8 bits, which hid such differences), and Algorithm 1 has no error contraction: it grows them
        # over its T = 5 steps to ~1e-4 at most, Algorithm 2 keeps them at ~1e-6
        assert torch.allclose(a[m], b[m], atol=2e-4 if m == "algorithm1" else 1e-5), m


def test_tables_are_written_and_read_back(blur_run, clf, tmp_path):
    ev = evaluate(blur_run, n=6, t=2, fid="none", progress=False)
    assert "fid" not in ev.columns() and "accuracy" in ev.columns()
    paths = write_evaluation(ev, tmp_path)
    assert paths["md"].name == "restoration-t2.md"
    md = paths["md"].read_text()
    assert "| Method | SSIM ↑ | RMSE ↓ | PSNR dB ↑ | class kept ↑ |" in md and "| Algorithm 2 |" in md
    lines = paths["csv"].read_text().splitlines()
    assert lines[0].split(",")[:5] == ["method", "ssim", "rmse", "psnr", "accuracy"] and len(lines) == 5
    back = read_evaluation(paths["json"])
    assert back == ev


def test_bad_settings_are_one_line_errors(blur_run, clf):
    with pytest.raises(ConfigError, match="between 1 and T=4"):
        evaluate(blur_run, n=2, t=9, progress=False)
    with pytest.raises(ConfigError, match="at least 1"):
        evaluate(blur_run, n=0, progress=False)
    with pytest.raises(ConfigError, match="classifier, inception or none"):
        evaluate(blur_run, n=2, fid="kid", progress=False)


# ---------------------------------------------------------------------------- restoring users' images
class Oracle(torch.nn.Module):
    """A restorer that returns the true clean images (whatever t it is asked for)."""

    def __init__(self, x0):
        super().__init__()
        self.x0 = x0

    def forward(self, x, t):
        return self.x0[: x.shape[0]].to(x.dtype)


def oracle_run(run, x0):
    """The run with its network replaced by the oracle (same D, device, batching)."""
    return dataclasses.replace(run, model=Oracle(x0))


def test_estimate_t_finds_the_severity_with_an_oracle(blur_run):
    ds, _ = blur_run.held_out()
    x0 = torch.stack([ds[i][0] for i in range(4)])
    D = blur_run.D
    for t0 in (1, 3, 4):
        est = estimate_t(oracle_run(blur_run, x0), D(x0, t0))
        assert est.tolist() == [t0] * 4


def test_estimate_t_refuses_random_degradations(tmp_path):
    run = make_run(tmp_path, dict(name="mask", T=5, params=dict(position="random")))
    with pytest.raises(ConfigError, match="--t N"):
        estimate_t(run, torch.zeros(1, 1, 28, 28))
    with pytest.raises(ConfigError, match="--sampler direct"):
        restore(run, torch.zeros(1, 1, 28, 28), 3, progress=False)


def test_restore_with_an_oracle_recovers_the_images(blur_run):
    ds, _ = blur_run.held_out()
    x0 = torch.stack([ds[i][0] for i in range(3)])
    run = oracle_run(blur_run, x0)
    for sampler in ("direct", "algorithm1", "algorithm2"):
        out = restore(run, blur_run.D(x0, 3), 3, sampler=sampler, progress=False)
        assert torch.allclose(out, x0, atol=1e-5), sampler


def test_restore_cli_writes_images_sheet_and_json(blur_run, tmp_path, capsys):
    ds, _ = blur_run.held_out()
    inp = tmp_path / "in"
    for i in range(2):
        save_image(blur_run.D(ds[i][0][None], 3)[0], inp / f"digit{i}.png")
    out = tmp_path / "out"
    assert main(["restore", str(blur_run.folder), "--input", str(inp), "--t", "auto", "--out", str(out),
                 "--no-progress"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [".colddiff-output.json", "digit0.algorithm2.png", "digit0.direct.png", "digit1.algorithm2.png",
                     "digit1.direct.png", "restore.json", "sheet.png"]   # the manifest: the folder is colddiff's
    info = json.loads((out / "restore.json").read_text())
    assert [im["t_estimated"] for im in info["images"]] == [True, True]
    assert all(1 <= im["t"] <= 4 for im in info["images"])
    assert read_image(out / "digit0.direct.png").shape == (1, 28, 28)
    assert "restored 2 image(s)" in capsys.readouterr().out


def test_restore_cli_size_and_channel_handling(blur_run, tmp_path, capsys):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (56, 40), (200, 30, 30)).save(big)
    assert main(["restore", str(blur_run.folder), "--input", str(big), "--t", "2", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0   # blur is shift-invariant: restored at its own size
    err = capsys.readouterr().err
    assert "converted 1 image(s) to 1 channel(s)" in err and "resized" not in err
    assert read_image(tmp_path / "o" / "big.algorithm2.png").shape == (1, 40, 56)
    for bad, msg in ((["--t", "9"], "between 1 and T=4"), (["--t", "x"], "step number 1..4 or auto")):
        assert main(["restore", str(blur_run.folder), "--input", str(big), "--resize", "--out",
                     str(tmp_path / "p")] + bad) == 2
        assert msg in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "nope"), "--input", str(big), "--out", str(tmp_path / "p")]) == 2
    assert "run not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------- figures and report
@pytest.fixture(scope="module")
def reported_run(tmp_path_factory, quick_classifier):
    run = make_run(tmp_path_factory.mktemp("reported"), BLUR)
    (run.folder / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 1.0 / s, "lr": 1e-3}) + "\n" for s in range(10, 210, 10)) + "{broken\n")
    mp = pytest.MonkeyPatch()
    mp.setattr(classifier_mod, "get_classifier", lambda *a, **k: quick_classifier)
    try:
        assert main(["evaluate", str(run.folder), "--n", "16", "--no-progress"]) == 0
        assert main(["report", str(run.folder), "--no-progress"]) == 0
    finally:
        mp.undo()
    return run


def test_evaluate_and_report_cli_write_files(reported_run):
    folder = reported_run.folder
    for name in ("restoration.md", "restoration.csv", "restoration.json"):
        assert (folder / "evaluation" / name).exists()
    for name in ("degradation.png", "restoration.png", "algorithm2.png", "loss.png"):
        assert (folder / "figures" / name).stat().st_size > 500
    html = (folder / "report.html").read_text()
    assert html.count("<img src=\"data:image/png;base64,") == 4
    assert "<table class=\"evaluation\">" in html and "Algorithm 2" in html and "[data]" in html
    evs = find_evaluations(folder)
    assert len(evs) == 1 and evs[0].n == 16


def test_restoration_figure_columns(reported_run):
    from PIL import Image

    im = Image.open(reported_run.folder / "figures" / "restoration.png")
    # 5 columns of 28 px digits enlarged 3x, 8 rows; plus labels and padding
    assert 5 * 84 < im.width < 5 * 84 + 40 and 8 * 84 < im.height < 8 * 84 + 60


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(not chromium() and os.environ.get("COLDDIFF_REQUIRE_CHROMIUM") != "1",
                    reason="headless Chromium not installed (CI installs Debian's chromium)")
def test_report_renders_in_headless_chromium(reported_run, tmp_path):
    browser = chromium()
    assert browser, "COLDDIFF_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    url = (reported_run.folder / "report.html").resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-ok="4"' in dom, dom[:2000]  # every embedded figure decoded by the browser
    assert 'data-images-missing="0"' in dom
    assert "<td>Algorithm 2</td>" in dom and "<td>Degraded</td>" in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1100,1400", url],
                   capture_output=True, timeout=120)
    from PIL import Image

    im = Image.open(shot).convert("L")
    hist = im.histogram()
    assert im.size == (1100, 1400) and hist[255] < 0.97 * sum(hist)  # not a blank page


def test_evaluate_with_inception_offline_says_which_file_to_put_where(blur_run, clf, tmp_path, monkeypatch, capsys):
    from colddiff import inception

    target = tmp_path / "weights" / inception.WEIGHTS_NAME
    monkeypatch.setenv(inception.ENV_VAR, str(target))
    monkeypatch.setattr(inception, "MIRRORS", ((tmp_path / "no-such-mirror.pth").as_uri(),))
    assert main(["evaluate", str(blur_run.folder), "--fid", "inception", "--n", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and inception.WEIGHTS_URL in err and "--fid classifier" in err
    assert str(target.name) in err and not target.exists()


def test_fid_auto_reports_inception_with_the_classifier_fid_beside_it(blur_run, clf, monkeypatch):
    """With the Inception weights in place, --fid auto gives the paper's FID back end and keeps the offline
    classifier FID as an extra column on labelled data sets; every FID header names its back end."""
    import colddiff.inception as inception_mod

    class FakeInception:  # stands for the 95 MB network: four pixel statistics per image
        name, dim, accuracy = "inception", 4, None

        def features(self, x):
            f = x.flatten(1).double()
            return torch.stack([f.mean(1), f.std(1), f.amin(1), f.amax(1)], 1)

    monkeypatch.setattr(inception_mod, "weights_present", lambda: True)
    real = metrics.get_extractor
    monkeypatch.setattr(metrics, "get_extractor",
                        lambda backend, *a, **k: FakeInception() if backend == "inception" else real(backend, *a, **k))
    ev = evaluate(blur_run, n=12, progress=False)
    assert ev.fid_backend == "inception" and ev.columns()[:2] == ["fid", "fid_classifier"]
    assert ev.headers()[1:3] == ["FID (inception)*", "FID (classifier)*"]
    assert "Inception-v3 pool features" in ev.caption() and "classifier features" in ev.caption()
    ds, _ = blur_run.held_out()
    x0 = torch.stack([ds[i][0] for i in range(12)])
    x_t = blur_run.D(x0, 4)
    want = metrics.fid(clf.features(x_t), clf.features(x0), "classifier").value
    assert ev.rows[0]["fid_classifier"] == pytest.approx(want, rel=1e-6)
    want = metrics.fid(FakeInception().features(x_t), FakeInception().features(x0), "inception").value
    assert ev.rows[0]["fid"] == pytest.approx(want, rel=1e-6)
    monkeypatch.setattr(inception_mod, "weights_present", lambda: False)
    offline = evaluate(blur_run, n=12, progress=False)
    assert offline.fid_backend == "classifier" and "fid_classifier" not in offline.columns()

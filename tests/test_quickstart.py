"""`colddiff quickstart`, `colddiff generate` and `colddiff evaluate --generation` end to end on tiny settings."""
import json

import pytest

from colddiff.cli import main
from colddiff.quickstart import targets

from conftest import make_run


def test_quickstart_end_to_end_and_reuse(tmp_path, clf, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--steps", "3", "--n", "16", "--gen-n", "8", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "[1/4] training mnist5k-sr for 3 steps" in text
    assert "target: direct RMSE <= 0.6x degraded RMSE" in text and "target: Algorithm 2 keeps the digit" in text
    assert "target: generated digits, class entropy >= 0.90" in text and "classifier confidence >= 0.85" in text
    assert "report: " in text and (out / "report.html").exists()
    res = json.loads((out / "quickstart.json").read_text())
    assert res["t"] == 2 and res["steps"] == 3 and set(res["seconds"]) == {"train", "evaluate", "generate", "report"}
    g = res["targets"]["generation"]
    assert g["setting"] == "Algorithm 2, no noise, GMM k=60" and isinstance(g["entropy_ok"], bool)
    assert res["generation"]["rows"][0]["k"] == 60 and res["generation"]["rows"][0]["n"] == 8
    html = (out / "report.html").read_text()
    assert "<h2>Generation</h2>" in html and "<table class=\"generation\">" in html
    assert (out / "generation" / "quickstart" / "grid.png").exists()
    # a second call reuses the trained run instead of training again
    assert main(args) == 0
    assert "already trained (3 steps); reusing it" in capsys.readouterr().out


def test_quickstart_refuses_a_folder_holding_another_run(tmp_path, capsys):
    make_run(tmp_path / "other", dict(name="blur", T=4, params={}))
    assert main(["quickstart", "--out", str(tmp_path / "other"), "--no-progress"]) == 2
    assert "not a quickstart" in capsys.readouterr().err


def test_targets_are_computed_from_the_table():
    class Ev:
        rows = [{"method": "degraded", "rmse": 0.25, "accuracy": 0.1}, {"method": "direct", "rmse": 0.1},
                {"method": "algorithm1", "rmse": 0.2}, {"method": "algorithm2", "rmse": 0.12, "accuracy": 0.85}]
    tg = targets(Ev())
    assert tg["rmse_ratio"] == pytest.approx(0.4) and tg["rmse_ok"] and tg["class_ok"]
    Ev.rows[3]["accuracy"] = 0.79
    assert not targets(Ev())["class_ok"]


def test_generate_and_evaluate_generation_cli(tmp_path, clf, capsys):
    run = make_run(tmp_path / "run", dict(name="blur", T=4, params=dict(kernel_size=11, sigma=2.0,
                                                                         padding="circular")))
    assert main(["generate", str(run.folder), "--n", "5", "--noise", "0.002", "--seed", "3", "--out",
                 str(tmp_path / "gen"), "--no-progress"]) == 0
    info = json.loads((tmp_path / "gen" / "generation.json").read_text())
    assert info["n_images"] == 5 and info["noise"] == 0.002 and info["seed"] == 3
    assert main(["evaluate", str(run.folder), "--generation", "--gen-n", "6", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Algorithm 2, no noise" in text and "Algorithm 2, noise 0.002" in text and "reference" in text
    ev = json.loads((run.folder / "evaluation" / "generation.json").read_text())
    assert [r["setting"] for r in ev["rows"]][:2] == ["Algorithm 2, no noise", "Algorithm 2, noise 0.002"]
    assert all(sum(r["histogram"]) == 6 for r in ev["rows"][:2])
    assert (run.folder / "evaluation" / "generation-histogram.png").exists()
    csv_head = (run.folder / "evaluation" / "generation.csv").read_text().splitlines()[0]
    assert csv_head.startswith("setting,sampler,noise,fid,entropy") and csv_head.endswith("class_9")


def test_generate_refuses_a_snow_run(tmp_path, capsys):
    run = make_run(tmp_path / "snow", dict(name="snow", T=2, params=dict(level=3)))
    assert main(["generate", str(run.folder), "--n", "2", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "generation is not defined for snow" in err and len(err.strip().splitlines()) == 1


def test_generate_a_resolution_run_and_the_stochastic_sampler_from_the_cli(tmp_path, capsys):
    run = make_run(tmp_path / "sr", dict(name="resolution", T=2, params={}))
    assert main(["generate", str(run.folder), "--n", "3", "--k", "2", "--out", str(tmp_path / "g"),
                 "--no-progress"]) == 0
    info = json.loads((tmp_path / "g" / "generation.json").read_text())
    assert info["n_images"] == 3 and info["k"] == 2 and info["sampler"] == "algorithm2" and info["delta"] == 0
    assert main(["generate", str(run.folder), "--n", "2", "--sampler", "stochastic", "--delta", "0.01",
                 "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    info = json.loads((tmp_path / "s" / "generation.json").read_text())
    assert info["sampler"] == "stochastic" and info["delta"] == 0.01
    assert "delta 0.01" in capsys.readouterr().out
    assert main(["generate", str(run.folder), "--n", "2", "--delta", "0.01", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "stochastic sampler" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()

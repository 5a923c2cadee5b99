"""benchmarks/generation.py: every row of the generation table runs on a tiny network (--quick)."""
import json

from benchmarks import __main__ as bench_main
from benchmarks import generation as bench


def test_every_row_runs_in_quick_mode_and_writes_its_table(tmp_path, clf, capsys):
    out = tmp_path / "generation.json"
    res = bench.run_cli(["--quick", "--n", "4", "--keep", str(tmp_path / "runs"), "--out", str(out)])
    assert [r["key"] for r in res["rows"]] == [r.key for r in bench.ROWS]
    assert res["quick"] and res["ok"] and "target_missed" not in res      # a pipeline check judges no target
    for r in res["rows"]:
        assert r["n"] == 4 and sum(r["histogram"]) == 4 and r["fid"] is not None and r["sample_seconds"] >= 0
        assert 0 <= r["entropy"] <= 1 and 0 <= r["near_blank_share"] <= 1
        assert (tmp_path / "runs" / r["preset"] / "generation" / f"bench-{r['key']}" / "grid.png").exists()
    rows = {r["key"]: r for r in res["rows"]}
    assert rows["blur-ihd"]["sampler"] == "stochastic" and rows["blur-ihd"]["delta"] > 0
    assert rows["blur-ihd"]["input_noise"] > 0 and rows["blur"]["input_noise"] == 0
    assert rows["noise-ddim"]["sampler"] == "ddim" and rows["noise-ddim"]["hot"]
    assert rows["sr"]["k"] == 60 and rows["blur-noise"]["noise"] == 0.002
    assert json.loads(out.read_text())["rows"][0]["key"] == "blur"
    text = capsys.readouterr().out
    assert "hot: Gaussian noise + DDIM" in text and "real test images (reference)" in text
    # a second call reuses the trained runs instead of training again
    res2 = bench.run_cli(["--quick", "--n", "4", "--rows", "sr", "--keep", str(tmp_path / "runs"), "--out", str(out)])
    assert [r["key"] for r in res2["rows"]] == ["sr"] and res2["rows"][0]["train_s"] is None
    assert "generation" in bench_main.MODULES


def test_targets_are_judged_on_the_quickstart_row_against_the_hot_baseline():
    row = dict(key=bench.quickstart_row(), hot=False, entropy=0.95, classes_covered_3pct=10, near_blank_share=0.0,
               mean_confidence=0.9, fid=10.0)
    hot = dict(key="noise-ddim", hot=True, fid=20.0)
    assert bench.judge({"quick": False, "rows": [row, hot]})["ok"]
    bad = bench.judge({"quick": False, "rows": [dict(row, entropy=0.5, fid=30.0), hot]})
    assert not bad["ok"] and len(bad["target_missed"]) == 2
    assert bench.judge({"quick": True, "rows": [dict(row, entropy=0.5), hot]})["ok"]

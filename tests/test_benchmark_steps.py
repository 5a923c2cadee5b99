"""benchmarks/steps.py: the step sweep runs end to end on a tiny run (--quick) and judges the issue's target."""
import json

from benchmarks import __main__ as bench_main
from benchmarks import steps as bench


def test_counts_halve_from_T_to_1():
    assert bench.counts(20) == [20, 10, 5, 2, 1]
    assert bench.counts(30) == [30, 15, 7, 3, 1]
    assert bench.counts(1) == [1]


def test_quick_sweep_runs_every_line_and_draws_the_figure(tmp_path, clf, capsys):
    out, png = tmp_path / "steps.json", tmp_path / "steps.png"
    res = bench.run_cli(["--quick", "--n", "3", "--out", str(out), "--figure", str(png)])
    assert res["ok"] and res["quick"] and not res["verdicts"]       # a pipeline check judges no target
    restore, generate = res["cases"]
    assert restore["task"] == "restoration" and generate["task"] == "generation"
    lines = {(r["sampler"], r["spacing"]) for r in restore["rows"]}
    assert lines == {("direct", "-")} | {(s, p) for s in bench.RESTORE_SAMPLERS for p in bench.SPACINGS}
    for r in restore["rows"] + generate["rows"]:
        assert len(r["steps"]) == r["calls"] + 1 and r["steps"][-1] == 0 and r["ms_per_image"] > 0
    assert json.loads(out.read_text())["cases"][0]["T"] == 20
    assert png.stat().st_size > 1000
    assert "Algorithm 2, quadratic" in capsys.readouterr().out
    assert "steps" in bench_main.MODULES


def test_a_missing_run_is_a_reported_failure_not_a_crash(tmp_path):
    res = bench.run_cli(["--restore", str(tmp_path / "nothing"), "--generate", "", "--out", str(tmp_path / "s.json")])
    assert not res["ok"] and "no trained run" in res["failures"][0]


def test_the_quarter_schedule_is_judged_per_metric_and_by_time():
    def row(calls, spacing="linear", **kw):
        base = dict(sampler="algorithm2", spacing=spacing, calls=calls, rmse=0.10, ssim=0.90, fid=10.0,
                    class_kept=0.95, ms_per_image=20.0 * calls / 20)
        return {**base, **kw}

    case = {"key": "k", "task": "restoration", "T": 20,
            "rows": [row(20), row(5, rmse=0.104, ms_per_image=5.0), row(5, "quadratic", fid=11.0, ms_per_image=8.0)]}
    linear, quadratic = bench.judge(case)
    assert linear["ok"] and abs(linear["time_ratio"] - 0.25) < 1e-9
    assert not quadratic["ok"]
    assert any(m.startswith("fid 11.00 vs 10.00") for m in quadratic["misses"])
    assert any(m.startswith("time 0.40") for m in quadratic["misses"])

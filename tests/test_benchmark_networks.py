"""benchmarks/networks.py: every architecture trains on the CPU stand-in at equal budget (--quick)."""
import json

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import networks as bench
from colddiff import networks


def test_every_architecture_runs_once_in_quick_mode_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "networks.json"
    res = bench.run_cli(["--quick", "--steps", "2", "--out", str(out)])
    rows = {r["arch"]: r for r in res["rows"]}
    assert res["ok"] and res["meta"]["quick"] and res["meta"]["steps"] == 2
    # one row per distinct network: the authors' UnetConvNext is their Unet, trained once and named in its row
    assert set(rows) == set(networks.ARCHS) - {"convnext-snow"}
    assert rows["lucidrains-convnext"]["aliases"] == ["convnext-snow"]
    for arch, r in rows.items():
        assert r["status"] == "ok" and r["params"] == networks.count_parameters(bench._config(arch, 2, True)
                                                                               .build_model())
        assert r["ms_per_step"] > 0 and 0 < r["rmse"] < 1 and 0 < r["rmse_ema"] < 1
    # the same seed gives every architecture the same recipe; only the network differs
    assert len({json.dumps(r["settings"].get("dim")) for r in rows.values()}) == 1
    assert json.loads(out.read_text())["rows"][0]["arch"] == "colddiff"
    text = capsys.readouterr().out
    assert "lucidrains-convnext (= convnext-snow)" in text and "held-out RMSE" in text
    assert "networks" in bench_main.MODULES


def test_unknown_architectures_are_refused():
    with pytest.raises(SystemExit, match="unknown architectures"):
        bench.run_cli(["--quick", "--archs", "unet9000"])

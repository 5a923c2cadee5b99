"""``colddiff reproduce``: every preset of a table trained (or resumed) and evaluated, beside the paper's numbers."""
import json

import pytest

from colddiff import paper
from colddiff.cli import main
from colddiff.presets import PRESETS
from colddiff.data import summary
from colddiff.reproduce import TABLES, cpu_skip_reason, run_table, scaled_config

FASHION = any(r["name"] == "fashion-mnist" and r["status"] == "present" for r in summary())


def test_every_table_names_paper_presets_and_every_cpu_stand_in_keeps_the_degradation():
    for table in TABLES.values():
        for name in table.presets:
            assert name in PRESETS and paper.provenance(name) is not None
            cfg = scaled_config(name, "cpu", steps=10)
            if cfg is None:
                assert cpu_skip_reason(name)
                continue
            assert cfg.degradation == PRESETS[name].degradation          # same D, T and parameters
            assert cfg.data.name in ("mnist-5k", "fashion-mnist") and cfg.train.steps == 10
            assert cfg.model.dim < PRESETS[name].model.dim
        assert scaled_config(table.presets[0], "paper").train.steps == PRESETS[table.presets[0]].train.steps


def test_cpu_stand_ins_train_the_authors_architecture_narrow_unless_asked_for_colddiffs():
    from colddiff.networks import parameters_of
    from colddiff.reproduce import describe_recipe, recipe

    seen = set()
    for table in TABLES.values():
        for name in table.presets:
            cfg = scaled_config(name, "cpu")
            if cfg is None:
                continue
            paper_net = PRESETS[name].model
            assert cfg.model.arch == paper_net.arch and cfg.model.dim == 16          # the authors' class, narrow
            if paper_net.arch == "ddpm":                                           # its structure kept
                assert (cfg.model.attn_levels, cfg.model.num_res_blocks, cfg.model.dropout) == \
                    (paper_net.attn_levels, paper_net.num_res_blocks, paper_net.dropout)
            mc = cfg.model_kwargs()
            assert parameters_of(mc) < parameters_of(PRESETS[name].model_kwargs()) / 20
            seen.add(cfg.model.arch)
            own = scaled_config(name, "cpu", net="colddiff")
            assert own.model.arch == "colddiff" and own.degradation == cfg.degradation
    assert {"lucidrains-convnext", "ddpm"} <= seen
    # the footer names the class and records only the settings it reads
    line = describe_recipe(recipe(scaled_config("mnist-blur", "cpu")))
    assert line.startswith("the authors' ConvNeXt Unet") and "residual block" not in line
    assert "dropout 0.1" in describe_recipe(recipe(scaled_config("cifar10-blur", "cpu")))
    with pytest.raises(Exception, match="--net"):
        scaled_config("mnist-blur", "cpu", net="resnet")
    with pytest.raises(Exception, match="--net colddiff is for --scale cpu"):
        scaled_config("mnist-blur", "paper", net="colddiff")


def test_paper_values_carry_their_source():
    for name, res in paper.PAPER_RESULTS.items():
        assert name in PRESETS and "2208.09392" in res.source
        assert set(res.rows) <= {"degraded", "sampled", "direct"}


@pytest.mark.skipif(not FASHION, reason="needs Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_reproduce_table2_at_cpu_scale_trains_evaluates_and_resumes(tmp_path, capsys):
    out = tmp_path / "repro"
    rc = main(["reproduce", "table2", "--scale", "cpu", "--steps", "2", "--n", "6", "--fid", "none",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    data = json.loads((out / "table2.json").read_text())
    assert data["protocol"] == "paper" and data["scale"] == "cpu"
    cols = {c["preset"]: c for c in data["columns"]}
    assert cols["celeba-inpaint"]["skipped"]
    mnist = cols["mnist-inpaint"]
    assert mnist["step"] == 2 and mnist["n"] == 6 and mnist["status"] == "trained"
    rows = {r["method"]: r for r in mnist["rows"]}
    assert rows["last-prediction"]["paper_row"] == "sampled" and rows["first-update"]["paper_row"] == "degraded"
    md = (out / "table2.md").read_text()
    assert "1.61" in md and "[paper: sampled]" in md and "protocol paper" in md
    assert (out / "mnist-inpaint" / "evaluation" / "restoration-paper.json").exists()
    # run again: nothing is retrained, the table is rewritten from the finished runs
    assert main(["reproduce", "table2", "--scale", "cpu", "--steps", "2", "--n", "6", "--fid", "none",
                 "--out", str(out), "--no-progress"]) == 0
    again = json.loads((out / "table2.json").read_text())
    assert all(c.get("status") in ("done", None) for c in again["columns"])
    assert again["columns"][0]["rows"] == mnist["rows"]
    assert again["columns"][0]["eval_seconds"] == mnist["eval_seconds"]  # the finished evaluation is reused, not redone
    # more images than were evaluated: evaluated again
    assert main(["reproduce", "table2", "--scale", "cpu", "--steps", "2", "--n", "7", "--fid", "none",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "table2.json").read_text())["columns"][0]["n"] == 7
    # the same folder with colddiff's U-Net: the finished runs are another network, refused in one line
    table = (out / "table2.json").read_text()
    capsys.readouterr()
    assert main(["reproduce", "table2", "--scale", "cpu", "--steps", "2", "--n", "7", "--fid", "none", "--net",
                 "colddiff", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.arch" in err and "another --out" in err
    assert (out / "table2.json").read_text() == table


def test_reproduce_refuses_an_unknown_table(capsys):
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "table9"])
    assert e.value.code == 2


@pytest.mark.parametrize("backend,ratio", [("inception", "2.00"), ("classifier", "")])
def test_fid_ratio_only_beside_inception_fid(backend, ratio):
    from colddiff.reproduce import Reproduction

    col = {"preset": "mnist-inpaint", "step": 1, "n": 2, "split": "test", "fid_label": "", "fid_backend": backend,
           "data": "mnist", "paper_data": "mnist",   # on the paper's own data set: a ratio can mean something
           "labels": {"direct": "Direct"}, "paper": {"direct": {"fid": 2.24}}, "paper_source": "x",
           "rows": [{"method": "direct", "paper_row": "direct", "fid": 4.48, "ssim": 0.5, "rmse": 0.1}]}
    rep = Reproduction(table="table2", title="inpainting", scale="paper", protocol="paper", command="c", columns=[col])
    cells = rep.body()[0]
    assert cells[2:5] == ["4.48", "2.24", ratio]

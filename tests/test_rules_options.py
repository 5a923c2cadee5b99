"""Rules 6 and 12 of the third reliability audit (issue 30): options that do not apply are refused (or the
result labelled honestly), and files that are not what they should be are named."""
import json

import numpy as np
import pytest
from PIL import Image

from colddiff import cli
from colddiff.errors import ConfigError, InputError
from colddiff.evaluation import evaluate, read_evaluation
from colddiff.runs import load_run
from conftest import make_run

BLUR = dict(name="blur", T=4, params=dict(kernel_size=3, sigma=1.0))
NET = dict(dim=8, dim_mults=[1, 2], attn_levels=[], num_res_blocks=1)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run on mnist-5k (which has a test split)."""
    return make_run(tmp_path_factory.mktemp("opt") / "digits", BLUR, data=dict(name="mnist-5k", image_size=16,
                                                                                 channels=1))


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A run on a flat folder of images: no test split."""
    base = tmp_path_factory.mktemp("opt")
    rng = np.random.default_rng(0)
    (base / "pics").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(base / "pics" / f"{i}.png")
    return make_run(base / "run", BLUR, data=dict(name=f"folder:{base / 'pics'}", image_size=16, channels=1), net=NET)


def _cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_paper_sampler_under_the_colddiff_protocol_is_refused(digits_run, capsys):
    code, _, err = _cli(["evaluate", str(digits_run.folder), "--protocol", "colddiff", "--paper-sampler",
                         "authors-shifted", "--n", "2", "--fid", "none", "--no-classifier", "--no-progress"], capsys)
    assert code == 2 and "--paper-sampler applies to --protocol paper only" in err
    assert not list((digits_run.folder / "evaluation").glob("*.json"))
    with pytest.raises(ConfigError, match="--paper-sampler applies"):
        evaluate(digits_run, n=2, fid="none", classifier=False, progress=False, paper_sampler="algorithm2")


def test_paper_protocol_without_a_test_split_is_refused(folder_run, capsys):
    code, _, err = _cli(["evaluate", str(folder_run.folder), "--protocol", "paper", "--fid", "none",
                         "--no-classifier", "--no-progress"], capsys)
    assert code == 2 and "--protocol paper scores the test split" in err and "has none" in err


def test_scores_of_training_images_are_not_called_held_out(folder_run):
    ev = evaluate(folder_run, n=2, fid="none", classifier=False, progress=False)
    assert ev.split == "train" and ev.protocol == "colddiff"
    assert "held-out" not in ev.caption() and "training (the data set has no test split)" in ev.caption()


def test_a_test_split_is_still_called_held_out(digits_run):
    ev = evaluate(digits_run, n=2, fid="none", classifier=False, progress=False)
    assert "2 held-out test images" in ev.caption()


def test_export_n_0_makes_no_grid_and_no_wrong_warning(digits_run, tmp_path, capsys):
    code, out, err = _cli(["export", str(digits_run.folder), "--out", str(tmp_path / "m"), "--n", "0",
                           "--no-progress"], capsys)
    assert code == 0, err
    assert "warning" not in err and "not available" not in err
    assert not (tmp_path / "m" / "samples.png").exists() and (tmp_path / "m" / "config.json").is_file()


@pytest.mark.parametrize("value", ["", "   ", "owner", "a/b/c", "-x/y", "own/name-", "own/na..me", "own--er/x",
                                   "o/" + "x" * 100])
def test_empty_or_malformed_push_is_refused_before_anything_is_written(digits_run, tmp_path, capsys, value):
    out = tmp_path / "m"
    code, _, err = _cli(["export", str(digits_run.folder), "--out", str(out), f"--push={value}"], capsys)
    assert code == 2 and "--push takes a Hub repository id owner/name" in err
    assert not out.exists()


def test_a_well_formed_push_passes_the_id_check():
    from colddiff.hub import REPO_ID, check_push

    for ok in ("me/my-model", "Org_1/cold.diff", "a/b"):
        assert REPO_ID.match(ok)
        try:
            check_push(ok)
        except ConfigError as e:  # only the missing package may be refused, not the id
            assert "huggingface_hub" in str(e) or "install" in str(e), e


# ---------------------------------------------------------------------------- rule 12
@pytest.mark.parametrize("keep,lacks", [("model.safetensors", "config.json"), ("config.json", "model.safetensors")])
def test_an_export_folder_missing_one_file_says_which(digits_run, tmp_path, keep, lacks, capsys):
    out = tmp_path / "m"
    assert cli.main(["export", str(digits_run.folder), "--out", str(out), "--n", "0"]) == 0
    capsys.readouterr()
    (out / lacks).unlink()
    with pytest.raises(InputError, match=f"lacks {lacks}") as e:
        load_run(out)
    assert "holds no checkpoint" not in str(e.value)
    code, _, err = _cli(["evaluate", str(out), "--n", "2", "--fid", "none"], capsys)
    assert code == 2 and f"lacks {lacks}" in err


@pytest.mark.parametrize("t,T", [(999, 4), (-1, 4), (2, 0)])
def test_an_evaluation_json_with_t_out_of_range_is_named(tmp_path, t, T):
    f = tmp_path / "evaluation" / "restoration.json"
    f.parent.mkdir()
    f.write_text(json.dumps({"run": "r", "step": 1, "T": T, "t": t, "n": 2, "fid_backend": "none",
                             "rows": [{"method": "direct", "ssim": 0.5}]}))
    with pytest.raises(InputError) as e:
        read_evaluation(f)
    assert str(f) in str(e.value) and "field 't' must be 0..T" in str(e.value)


def test_report_names_the_hand_edited_evaluation(digits_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run.folder, run)
    (run / "evaluation").mkdir(exist_ok=True)
    f = run / "evaluation" / "restoration.json"
    f.write_text(json.dumps({"run": "r", "step": 1, "T": 4, "t": 40, "n": 2, "fid_backend": "none",
                             "rows": [{"method": "direct", "ssim": 0.5}]}))
    code, _, err = _cli(["report", str(run)], capsys)
    assert code == 2 and str(f) in err and "internal error" not in err

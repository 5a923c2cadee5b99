"""Bad input, tried as a hostile new user would: every case is a command line and what must happen.

Each row of :data:`CASES` is ``(id, command line, exit status, fragment)``: the command runs
in-process (as ``colddiff ...`` would) and must end with that status and, for status 2, ONE
line on stderr holding the fragment, no traceback, no "internal error", and no file left in
the output folder.  Rows with status 0 must print the fragment and pass the check named
``check_<id>`` below (the right output, not merely no error).  The rows marked ``# first`` are the
first list of cases written down; the others were added beside them.  The fault tests at the end (a kill
during the first checkpoint, a full disk, a read-only output folder, Ctrl-C) are in
:data:`FAULTS`.  The docs page "What happens when things go wrong" (docs/failures.md) quotes the
counts of this file (a test checks them).
"""
from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colddiff.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint, save_checkpoint
from colddiff.cli import EXIT_INTERRUPTED, main

from conftest import make_run

BLUR = dict(name="blur", T=4, params=dict(kernel_size=3, sigma=1.0, padding="reflect"))


# ---------------------------------------------------------------------------- the inputs
def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width×height pixels (a decompression bomb, without the bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _crafted_checkpoint(folder: Path, run: Path, config=None, state=None) -> Path:
    ck = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    save_checkpoint(checkpoint_path(folder / "checkpoints", 0), config=config if config is not None else ck.config,
                    model=ck.model, state=state if state is not None else {"step": 0})
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Everything the command lines name: {run}, {img}, {png16}, ... (built once per module)."""
    w = tmp_path_factory.mktemp("world")
    run = make_run(w / "run", BLUR).folder
    make_run(w / "maskrun", dict(name="mask", T=5, params=dict(position="center")))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(w / "img.png")
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(w / "img40.png")
    ramp = (np.arange(28 * 28, dtype=np.uint32).reshape(28, 28) * 83).astype(np.uint16)  # 0..65,000
    Image.fromarray(ramp).save(w / "ramp16.png")
    assert Image.open(w / "ramp16.png").mode.startswith("I")
    _png_header_only(w / "bomb.png", 30_000, 30_000)
    (w / "text.png").write_text("not an image")
    (w / "afile.txt").write_text("a file")
    (w / "empty").mkdir()
    # the collision folder: d0.png + d0.bmp, a-x.png + a/x.png
    coll = w / "collide"
    (coll / "a").mkdir(parents=True)
    for name, v in (("d0.png", 40), ("d0.bmp", 200), ("a-x.png", 90), ("a/x.png", 160)):
        Image.fromarray(np.full((28, 28), v, np.uint8)).save(coll / name)
    # config files
    (w / "cfgdir").mkdir()
    (w / "list-as-text.toml").write_text('[model]\ndim_mults = "1,2"\n')
    (w / "broken.toml").write_text("[train\nsteps = 3\n")
    (w / "unknown-section.toml").write_text("[trainer]\nsteps = 3\n")
    (w / "size-text.toml").write_text('[data]\nimage_size = "big"\n')
    (w / "preset-number.toml").write_text("preset = 3\n")
    (w / "name-number.toml").write_text("[degradation]\nname = 7\n")
    (w / "steps-half.toml").write_text("[train]\nsteps = 2.5\n")
    (w / "params-list.toml").write_text("[degradation]\nparams = [1, 2]\n")
    # a run whose network returns NaN
    nan = make_run(w / "nanrun", BLUR).folder
    ck = load_checkpoint(list_checkpoints(nan / "checkpoints")[-1][1])
    save_checkpoint(list_checkpoints(nan / "checkpoints")[-1][1], config=ck.config, state={"step": 0},
                    model={k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                           for k, v in ck.model.items()})
    # crafted run files
    cfg = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1]).config
    _crafted_checkpoint(w / "bad-state", run, state={"step": "abc"})
    _crafted_checkpoint(w / "bad-epoch", run, state={"step": 0, "epoch": [1]})
    _crafted_checkpoint(w / "bad-config-size", run, config={**cfg, "data": {**cfg["data"], "image_size": "x"}})
    _crafted_checkpoint(w / "bad-config-list", run, config={**cfg, "model": {**cfg["model"], "dim_mults": "1,2"}})
    _crafted_checkpoint(w / "bad-config-params", run,
                        config={**cfg, "degradation": {**cfg["degradation"], "params": {"sigma": "abc"}}})
    for name, ev in (("eval-n-script", {"n": "<script>alert(1)</script>"}), ("eval-rows-text", {"rows": "x"}),
                     ("eval-row-number", {"rows": [{"method": "direct", "psnr": "<b>9</b>"}]}),
                     ("eval-not-object", None)):
        r = _copy_run(run, w / name)
        (r / "evaluation").mkdir()
        base = {"run": "r", "folder": "f", "checkpoint": "c", "step": 0, "degradation": "d", "T": 4, "t": 1, "n": 3,
                "split": "test", "ema": True, "fid_backend": "none", "rows": [{"method": "direct", "psnr": 9.0}]}
        (r / "evaluation" / "restoration-t1.json").write_text(json.dumps([1, 2] if ev is None else {**base, **ev}))
    r = _copy_run(run, w / "gen-bad")
    (r / "evaluation").mkdir()
    (r / "evaluation" / "generation.json").write_text(json.dumps({"n": 3, "rows": [{"setting": 5}],
                                                                   "fid_backend": "none", "num_classes": 10}))
    res = make_run(w / "nogen-run", dict(name="desaturate", T=2)).folder  # a family with no start state
    assert res.exists()
    return w


def _fmt(template: str, world: Path, tmp: Path) -> list:
    names = {"run": world / "run", "tmp": tmp}
    for p in world.iterdir():
        names.setdefault(p.stem.replace("-", "_"), p)
    return [a.format(**{k: str(v) for k, v in names.items()}) for a in shlex.split(template)]


# ---------------------------------------------------------------------------- the table
D = "degrade -d blur --input mnist-5k --n 2 --out {tmp}/o.png"
T = "train --preset mnist5k-blur --out {tmp}/r --no-progress"
E = "evaluate {run} --n 4 --fid none --no-classifier --no-progress"
CASES = [
    # ---- restore names (correct output: four distinct results)
    ("restore-name-collisions", "restore {run} --input {collide} --t 2 --out {tmp}/out --no-progress", 0,
     "restored 4 image(s)"),                                                                              # first
    # ---- wrong numbers in silence
    ("evaluate-nan-network", "evaluate {nanrun} --n 4 --fid none --no-classifier --no-progress", 2, "NaN/Inf"),  # first
    ("degrade-sigma-nan", D + " --param sigma=nan", 2, "sigma must be a finite number"),                 # first
    ("degrade-16bit-png", "degrade -d blur --input {ramp16} --steps 0 --out {tmp}/o.png", 0, "1 image(s)"),   # first
    ("restore-16bit-png", "restore {run} --input {ramp16} --t 1 --out {tmp}/out --sampler direct --no-progress", 0,
     "restored 1 image(s)"),                                                                              # first
    ("degrade-n-negative", D.replace("--n 2", "--n -1"), 2, "argument --n: must be at least 1, got -1"),  # first
    ("evaluate-generation-noise-negative", "evaluate {run} --generation --noise -1", 2,
     "argument --noise: must be at least 0"),                                                            # first
    # ---- values read from a run folder are untrusted
    ("report-eval-n-script", "report {eval_n_script} --no-eval --no-progress", 2, "field 'n' must be int"),   # first
    # ---- the file system
    ("degrade-out-is-folder", D.replace("{tmp}/o.png", "{empty}"), 2, "is a folder; give a file name"),  # first
    ("generate-out-is-file", "generate {run} --n 2 --out {afile} --no-progress", 2, "is a file; give a folder"),  # first
    ("restore-out-is-file", "restore {run} --input {img} --out {afile} --no-progress", 2, "is a file; give a folder"),  # first
    ("train-out-is-file", T.replace("{tmp}/r", "{afile}"), 2, "is a file; give a folder"),              # first
    ("quickstart-out-is-file", "quickstart --out {afile} --no-progress", 2, "is a file; give a folder"),  # first
    ("degrade-out-below-a-file", D.replace("{tmp}/o.png", "{afile}/o.png"), 2, "is a file, not a folder"),  # first
    # ---- internal errors from bad values
    ("degrade-sigma-text", D + " --param sigma=abc", 2, "blur parameter sigma must be a number, got 'abc'"),  # first
    ("train-set-sigma-text", T + " --set degradation.sigma=abc", 2, "sigma must be a number, got 'abc'"),  # first
    ("degrade-n-zero", D.replace("--n 2", "--n 0"), 2, "argument --n: must be at least 1, got 0"),       # first
    ("evaluate-batch-size-zero", E + " --batch-size 0", 2, "argument --batch-size: must be at least 1"),  # first
    ("train-config-is-folder", "train --config {cfgdir} --out {tmp}/r", 2, "is a folder; give a TOML file"),  # first
    ("train-toml-list-as-text", "train --preset mnist5k-blur --config {list_as_text} --out {tmp}/r", 2,
     "model.dim_mults must be a list of whole numbers"),                                                 # first
    ("train-num-workers-negative", T + " --set data.num_workers=-2", 2, "data.num_workers must be a whole number >= 0, or -1"),  # first
    ("train-lr-huge", T + " --set train.lr=1e38", 2, "train.lr must be at most 1"),                       # first
    ("degrade-decompression-bomb", "degrade -d blur --input {bomb} --out {tmp}/o.png", 2, "decompression bomb"),  # first
    ("evaluate-state-step-text", E.replace("{run}", "{bad_state}"), 2, "field 'step' must be int"),       # first
    ("evaluate-config-size-text", E.replace("{run}", "{bad_config_size}"), 2, "data.image_size must be a number"),  # first
    # ---- smaller
    ("quickstart-n-zero", "quickstart --n 0 --out {tmp}/q", 2, "argument --n: must be at least 1"),       # first
    ("quickstart-gen-n-zero", "quickstart --gen-n 0 --out {tmp}/q", 2, "argument --gen-n: must be at least 1"),  # first
    ("train-resume-with-other-out", "train --resume {run} --out {tmp}/other", 2, "drop --out"),         # first
    ("train-grad-clip-negative", T + " --set train.grad_clip=-1", 2, "train.grad_clip (0 = off) must be at least 0"),  # first
    ("degrade-sigma-inf", D + " --param sigma=inf", 2, "sigma must be a finite number"),                 # first
    ("degrade-image-size-contradicts", D + " --param image_size=64", 2, "contradicts the input"),         # first
    ("data-root-missing", "data list --root {tmp}/nowhere", 2, "is not a folder (it does not exist)"),   # first
    ("train-data-root-missing", T + " --set data.root={tmp}/nowhere", 2, "data.root"),                   # first
    ("evaluate-device-cuda-hint", E + " --device cuda:7", 2, "--device cpu"),                             # first
    ("run-is-a-png", "evaluate {img} --no-progress", 2, "is an image, not a run"),                        # first

    # ---- more of our own: degrade
    ("degrade-kernel-half", D + " --param kernel_size=2.5", 2, "kernel_size must be a whole number"),
    ("degrade-kernel-even", D + " --param kernel_size=4", 2, "positive odd number"),
    ("degrade-T-zero", D + " --T 0", 2, "argument --T: must be at least 1"),
    ("degrade-T-text", D + " --T many", 2, "argument --T: must be a whole number"),
    ("degrade-param-T-zero", D + " --param T=0", 2, "T must be a positive integer number of steps, got 0"),
    ("degrade-param-T-half", D + " --param T=2.5", 2, "T must be a positive integer number of steps, got 2.5"),
    ("degrade-padding-number", D + " --param padding=5", 2, "padding must be text"),
    ("degrade-schedule-bool", D + " --param schedule=true", 2, "schedule must be text"),
    ("degrade-schedule-unknown", D + " --param schedule=wobbly", 2, "unknown blur schedule"),
    ("degrade-sigma-negative", D + " --param sigma=-1", 2, "sigma must be positive"),
    ("degrade-rate-nan", D + " --param rate=nan", 2, "rate must be a finite number"),
    ("degrade-channels-param-2", D + " --param channels=2", 2, "contradicts the input"),
    ("degrade-mask-quantize-number", "degrade -d mask --input mnist-5k --n 2 --param quantize=3 --out {tmp}/o.png",
     2, "quantize must be true or false"),
    ("degrade-snow-level-text", "degrade -d snow --input mnist-5k --n 2 --param level=deep --out {tmp}/o.png", 2,
     "level must be a whole number"),
    ("degrade-size-zero", D + " --size 0", 2, "argument --size: must be at least 1"),
    ("degrade-steps-negative", D + " --steps 0,-3", 2, "out of range"),
    ("degrade-input-empty-folder", D.replace("mnist-5k", "{empty}"), 2, "no images"),
    ("degrade-input-not-an-image", D.replace("mnist-5k", "{text}"), 2, "cannot read image"),
    ("degrade-input-missing", D.replace("mnist-5k", "{tmp}/none.png"), 2, "input not found"),
    ("degrade-unknown-family", D.replace("-d blur", "-d blurry"), 2, "unknown degradation 'blurry'"),
    ("degrade-param-no-equals", D + " --param sigma", 2, "--param expects key=value"),
    ("degrade-folder-with-subfolders-and-bmp", "degrade -d blur --input {collide} --n 9 --out {tmp}/o.png", 0, "4 image(s)"),
    ("degrade-T-huge", D + " --T 100000000", 2, "T must be at most 100,000 steps"),
    ("degrade-blur-sigma-tiny", D + " --param sigma=1e-300 --steps 0,5", 0, "2 image(s) x 2 steps"),
    ("degrade-blur-sigma-huge", D + " --param sigma=1e300 --steps 0,5", 0, "2 image(s) x 2 steps"),
    ("check-degradation-sigma-nan", "check-degradation blur --param sigma=nan", 2, "finite number"),
    ("check-degradation-size-tiny", "check-degradation blur --size 2", 2, "argument --size: must be at least 8"),
    # train and configs
    ("train-steps-zero", T + " --set train.steps=0", 2, "train.steps must be at least 1"),
    ("train-steps-half", T + " --set train.steps=2.5", 2, "expected int"),
    ("train-lr-nan", T + " --set train.lr=nan", 2, "train.lr must be a finite number"),
    ("train-lr-zero", T + " --set train.lr=0", 2, "train.lr must be greater than 0"),
    ("train-grad-clip-inf", T + " --set train.grad_clip=inf", 2, "must be a finite number"),
    ("train-ema-decay-high", T + " --set train.ema_decay=1.5", 2, "train.ema_decay must be at most 1"),
    ("train-precision-unknown", T + " --set train.precision=fp8", 2, "train.precision must be fp32, bf16 or fp16"),
    ("train-dim-zero", T + " --set model.dim=0", 2, "model.dim must be at least 1"),
    ("train-dropout-one", T + " --set model.dropout=1", 2, "model.dropout must be below 1"),
    ("train-attn-level-out-of-range", T + " --set model.attn_levels=7", 2, "model.attn_levels [7] out of range"),
    ("train-channels-two", T + " --set data.channels=2", 2, "data.channels must be 1 or 3"),
    ("train-image-size-tiny", T + " --set data.image_size=4", 2, "data.image_size must be at least 8"),
    ("train-unknown-key", T + " --set train.stepz=3", 2, "unknown config key 'train.stepz'"),
    ("train-unknown-section", T + " --set trainer.steps=3", 2, "unknown config key"),
    ("train-set-no-equals", T + " --set train.steps", 2, "--set expects section.key=value"),
    ("train-unknown-preset", "train --preset mnist5k-blurr --out {tmp}/r", 2, "did you mean 'mnist5k-blur'"),
    ("train-nothing-to-train", "train --out {tmp}/r", 2, "say what to train"),
    ("train-config-missing", "train --config {tmp}/none.toml --out {tmp}/r", 2, "config file not found"),
    ("train-config-broken-toml", "train --config {broken} --out {tmp}/r", 2, "is not valid TOML"),
    ("train-config-unknown-section", "train --config {unknown_section} --out {tmp}/r", 2, "unknown config section"),
    ("train-config-size-text", "train --config {size_text} --out {tmp}/r", 2, "data.image_size must be a number"),
    ("train-config-preset-number", "train --config {preset_number} --out {tmp}/r", 2, "preset must be text"),
    ("train-config-name-number", "train --config {name_number} --out {tmp}/r", 2,
     "degradation.name must be text"),
    ("train-config-steps-half", "train --config {steps_half} --out {tmp}/r", 2, "train.steps must be a whole number"),
    ("train-config-params-list", "train --config {params_list} --out {tmp}/r", 2, "degradation.params must be a table"),
    ("train-resume-nothing", "train --resume {empty}", 2, "nothing to resume"),
    ("train-existing-run", "train --preset mnist5k-blur --out {run}", 2, "already holds a run"),
    ("train-resume-changes-network", "train --resume {run} --set model.dim=16", 2, "a resumed run keeps its data"),
    # commands on a run
    ("evaluate-run-missing", "evaluate {tmp}/none --no-progress", 2, "run not found"),
    ("evaluate-folder-without-checkpoint", "evaluate {empty} --no-progress", 2, "holds no checkpoint"),
    ("evaluate-n-zero", E + " --n 0", 2, "argument --n: must be at least 1"),
    ("evaluate-t-zero", E + " --t 0", 2, "--t must be between 1 and T=4"),
    ("evaluate-t-too-big", E + " --t 99", 2, "--t must be between 1 and T=4"),
    ("evaluate-gen-n-zero", "evaluate {run} --generation --gen-n 0", 2, "argument --gen-n: must be at least 1"),
    ("evaluate-noise-nan", "evaluate {run} --generation --noise nan", 2, "argument --noise: must be a finite"),
    ("evaluate-device-unknown", E + " --device tpu", 2, "unknown device"),
    ("evaluate-state-epoch-list", E.replace("{run}", "{bad_epoch}"), 2, "field 'epoch' must be int"),
    ("evaluate-config-list-text", E.replace("{run}", "{bad_config_list}"), 2, "model.dim_mults must be a list"),
    ("evaluate-config-params-text", E.replace("{run}", "{bad_config_params}"), 2, "sigma must be a number"),
    ("restore-nan-network", "restore {nanrun} --input {img} --t 1 --sampler direct --out {tmp}/o "
     "--no-progress", 2, "NaN/Inf"),
    ("report-eval-rows-text", "report {eval_rows_text} --no-eval --no-progress", 2, "field 'rows' must be list"),
    ("report-eval-row-number-text", "report {eval_row_number} --no-eval --no-progress", 2,
     "rows[0].psnr must be a number"),
    ("report-eval-not-object", "report {eval_not_object} --no-eval --no-progress", 2, "expected a JSON object"),
    ("report-generation-row-text", "report {gen_bad} --no-eval --no-progress", 2, "rows[0].setting must be text"),
    ("report-n-zero", "report {run} --n 0", 2, "argument --n: must be at least 1"),
    ("restore-t-zero", "restore {run} --input {img} --t 0 --out {tmp}/o --no-progress", 2, "--t must be between 1"),
    ("restore-t-text", "restore {run} --input {img} --t soon --out {tmp}/o --no-progress", 2,
     "--t takes a step number 1..4 or auto"),
    # a centred-mask run restores only its own size (a blur run restores any size: tests/test_photos.py)
    ("restore-wrong-size", "restore {maskrun} --input {img40} --t 1 --out {tmp}/o --no-progress", 2, "pass --resize"),
    ("restore-input-missing", "restore {run} --input {tmp}/none.png --out {tmp}/o --no-progress", 2,
     "input not found"),
    ("restore-input-bomb", "restore {run} --input {bomb} --out {tmp}/o --no-progress", 2, "decompression bomb"),
    ("generate-n-zero", "generate {run} --n 0 --out {tmp}/g", 2, "argument --n: must be at least 1"),
    ("generate-k-zero", "generate {run} --k 0 --out {tmp}/g", 2, "argument --k: must be at least 1"),
    ("generate-batch-size-text", "generate {run} --batch-size lots --out {tmp}/g", 2,
     "argument --batch-size: must be a whole number"),
    ("generate-noise-negative", "generate {run} --noise -0.5 --out {tmp}/g", 2, "argument --noise: must be at least 0"),
    ("generate-not-generative", "generate {nogen_run} --n 2 --out {tmp}/g --no-progress", 2,
     "generation is not defined for desaturate"),
    ("data-info-unknown", "data info mnistt", 2, "mnistt"),
    ("data-verify-root-is-file", "data verify mnist --root {afile}", 2, "--root"),
]

EXPECTED_FIRST_CASES = 35   # the rows marked `# first` (the first list)


def _files(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*"))


@pytest.mark.parametrize("case_id, command, status, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_table(world, tmp_path, capsys, monkeypatch, case_id, command, status, fragment):
    monkeypatch.chdir(tmp_path)
    argv = _fmt(command, world, tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    assert code == status, (code, err)
    if status == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert fragment in lines[0], err
        assert _files(tmp_path) == [], f"an error left files behind: {_files(tmp_path)}"
    else:
        assert fragment in out, out
        globals()["check_" + case_id.replace("-", "_")](world, tmp_path)
    assert not list(world.rglob(".tmp-*"))


# ---------------------------------------------------------------------------- checks of the status-0 rows
def check_restore_name_collisions(world, tmp):
    out = tmp / "out"
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*.direct.png"))
    assert made == ["a-x.direct.png", "a/x.direct.png", "d0-bmp.direct.png", "d0-png.direct.png"]
    # every input has its own result: four different restorations of four different grey levels
    means = {np.asarray(Image.open(out / m)).mean() for m in made}
    assert len(means) == 4
    record = json.loads((out / "restore.json").read_text())
    assert len({r["direct"] for r in record["images"]}) == 4


def check_degrade_16bit_png(world, tmp):
    strip = np.asarray(Image.open(tmp / "o.png").convert("L"), dtype=np.float64)
    ramp = np.asarray(Image.open(world / "ramp16.png"), dtype=np.float64) / 65535 * 255
    # t=0 shows the image itself, enlarged 3x: its mean is the ramp's mean, not near-white
    cell = strip[16 + 2:16 + 2 + 84, 2:2 + 84]
    assert abs(cell.mean() - ramp.mean()) < 2 and cell.min() < 10 and cell.max() > 245


def check_restore_16bit_png(world, tmp):
    from colddiff.images import read_image

    x = read_image(world / "ramp16.png")
    ramp = np.asarray(Image.open(world / "ramp16.png"), dtype=np.float64) / 65535
    assert np.allclose((x[0].numpy() + 1) / 2, ramp, atol=1e-4)   # full 16-bit range kept, not clipped
    assert (tmp / "out" / "ramp16.direct.png").exists()


def _strip_cells(path: Path, n_cols: int = 2, n_rows: int = 2, cell: int = 84, pad: int = 2, top: int = 16):
    a = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return [[a[top + pad + i * (cell + pad):top + pad + i * (cell + pad) + cell,
              pad + j * (cell + pad):pad + j * (cell + pad) + cell] for j in range(n_cols)] for i in range(n_rows)]


def check_degrade_blur_sigma_tiny(world, tmp):
    """sigma -> 0 is no blur at all (it once gave a NaN kernel: black images)."""
    for x0, x5 in _strip_cells(tmp / "o.png"):
        assert np.array_equal(x0, x5) and x0.std() > 20


def check_degrade_blur_sigma_huge(world, tmp):
    """sigma -> inf is an 11-tap box filter (it once raised OverflowError): blurred, not blank, not NaN."""
    for x0, x5 in _strip_cells(tmp / "o.png"):
        assert 0 < x5.std() < x0.std() and abs(x5.mean() - x0.mean()) < 25


def check_degrade_folder_with_subfolders_and_bmp(world, tmp):
    assert (tmp / "o.png").exists()


# ---------------------------------------------------------------------------- the report renders, never executes
def test_report_escapes_every_value_read_from_the_run_folder(world, tmp_path, capsys):
    run = _copy_run(world / "run", tmp_path / "run")
    (run / "evaluation").mkdir()
    evil = "<script>alert('x')</script>"
    ev = {"run": evil, "folder": evil, "checkpoint": evil, "step": 0, "degradation": evil, "T": 4, "t": 1, "n": 3,
          "split": evil, "ema": True, "fid_backend": "none", "fid_label": evil, "fid_small": True,
          "rows": [{"method": evil, "psnr": 9.0, "ssim": 0.5, "rmse": 0.1}]}
    (run / "evaluation" / "restoration-t1.json").write_text(json.dumps(ev))
    (run / "train_summary.json").write_text(json.dumps({"elapsed_s": 60, "device": evil}))
    assert main(["report", str(run), "--no-eval", "--no-progress"]) == 0
    page = (run / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the report's own image check, nothing else


def test_report_survives_a_damaged_train_summary(world, tmp_path, capsys):
    run = _copy_run(world / "run", tmp_path / "run")
    (run / "train_summary.json").write_text('{"step": 3, "elapsed_s": ')   # cut by a kill
    assert main(["report", str(run), "--no-eval", "--no-progress"]) == 0
    assert "train_summary.json is unreadable and was left out" in (run / "report.html").read_text()


def test_report_finds_generated_images_in_the_run_folder_not_the_current_directory(world, tmp_path, monkeypatch):
    """generation.json spelt the folder relative to where colddiff ran."""
    from colddiff.report import generation_section

    run = _copy_run(world / "run", tmp_path / "moved" / "run")
    gen = run / "generation" / "algorithm2-noise0"
    gen.mkdir(parents=True)
    Image.fromarray(np.full((30, 30, 3), 7, np.uint8)).save(gen / "grid.png")
    # another run's images where the stale relative path points, from the current directory
    other = tmp_path / "runs" / "run" / "generation" / "algorithm2-noise0"
    other.mkdir(parents=True)
    Image.fromarray(np.full((30, 30, 3), 250, np.uint8)).save(other / "grid.png")
    row = {"setting": "Algorithm 2, no noise", "sampler": "algorithm2", "noise": 0.0, "entropy": 0.5,
           "classes_covered": 3, "classes_covered_1pct": 3, "near_blank_share": 0.0, "mean_confidence": 0.9,
           "histogram": [1] * 10, "n": 10}
    ev = {"run": "r", "checkpoint": "c", "step": 0, "degradation": "d", "n": 10, "fid_backend": "none",
          "num_classes": 10, "blank_definition": "b",
          "rows": [{**row, "folder": "runs/run/generation/algorithm2-noise0"},
                   {**row, "setting": "gone", "folder": "runs/run/generation/ddim-noise0"}]}
    (run / "evaluation").mkdir()
    (run / "evaluation" / "generation.json").write_text(json.dumps(ev))
    monkeypatch.chdir(tmp_path)
    html = "\n".join(generation_section(run))
    import base64

    own = base64.b64encode((gen / "grid.png").read_bytes()).decode()
    theirs = base64.b64encode((other / "grid.png").read_bytes()).decode()
    assert own in html and theirs not in html
    assert "The generated images of “gone” are not in this run folder" in html


# ---------------------------------------------------------------------------- files
def test_written_files_honour_the_umask(tmp_path):
    from colddiff.fileio import atomic_path
    from colddiff.images import save_image

    old = os.umask(0o022)
    try:
        save_image(torch.zeros(1, 4, 4), tmp_path / "a.png")
        with atomic_path(tmp_path / "b.json") as tmp:
            Path(tmp).write_text("{}")
        os.umask(0o077)
        save_image(torch.zeros(1, 4, 4), tmp_path / "c.png")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE((tmp_path / p).stat().st_mode)  # noqa: E731
    assert mode("a.png") == mode("b.json") == 0o644 and mode("c.png") == 0o600


def test_a_killed_download_leaves_no_part_file_behind(tmp_path):
    from colddiff.download import download

    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    dest = tmp_path / "data" / "file.bin"
    dest.parent.mkdir()
    stale = dest.parent / ".file.bin.abc123.part"          # what a SIGKILL mid-download leaves
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = dest.parent / ".file.bin.new456.part"          # another download still writing: kept
    fresh.write_bytes(b"busy")
    download([src.as_uri()], dest, progress=False)
    assert dest.read_bytes() == b"x" * 1000
    assert not stale.exists() and fresh.exists()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_corrupt_classifier_cache_names_the_fix_that_exists(tmp_path):
    from colddiff.classifier import load_classifier
    from colddiff.errors import InputError

    bad = tmp_path / "clf.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="delete the file: the next evaluation trains a new one") as e:
        load_classifier(bad)
    assert "pass retrain=True" not in str(e.value)


def test_an_os_error_outside_the_atomic_writer_is_still_one_line(monkeypatch, capsys):
    import colddiff.cli as cli

    def denied(args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/locked.png")

    monkeypatch.setattr(cli, "cmd_degradations", denied)
    assert main(["degradations"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "colddiff: error: cannot use /data/locked.png: permission denied; choose a folder you can write " \
                  "to [EACCES]"


def test_psnr_mean_never_turns_nan_into_the_best_score():
    from colddiff.errors import InputError
    from colddiff.evaluation import _mean_finite

    assert _mean_finite(torch.tensor([10.0, float("inf"), 20.0])) == 15.0   # an exact match: left out
    with pytest.raises(InputError, match="NaN"):
        _mean_finite(torch.tensor([10.0, float("nan")]))


# ---------------------------------------------------------------------------- faults
TINY = ["train.steps=8", "train.batch_size=4", "train.grad_accum=1", "train.checkpoint_every=3",
        "train.keep_last=5", "train.log_every=4", "train.sample_every=0", "train.ema_start=2",
        "model.dim=8", "model.dim_mults=1,2", "train.lr=1e-3"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
FAULTS = ("kill-during-first-checkpoint", "full-disk-at-checkpoint", "file-size-limit", "read-only-output",
          "read-only-before-evaluate", "ctrl-c-exit-status", "resume-between-log-lines")


def _tiny(*extra):
    from colddiff.presets import preset

    return preset("mnist5k-blur").override(TINY + list(extra))


def test_fault_kill_during_first_checkpoint_then_start_again(tmp_path, capsys):
    """SIGKILL while the first checkpoint is half written: the temporary file is removed on the next
    run, which says so; starting again trains normally."""
    out = tmp_path / "run"
    sets = [a for s in TINY for a in ("--set", s)]
    code = ("import os, signal, safetensors.torch as st\n"
            "real = st.save_file\n"
            "def half(tensors, path, metadata=None):\n"
            "    open(path, 'wb').write(b'half a checkpoint')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "st.save_file = half\n"
            "from colddiff.cli import main\n"
            f"main({['train', '--preset', 'mnist5k-blur', *sets, '--no-progress', '--out', str(out)]!r})\n")
    p = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert list((out / "checkpoints").glob(".tmp-*")) and not list_checkpoints(out / "checkpoints")
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "removed 1 partial file(s) left by a run killed while writing its first checkpoint" \
        in capsys.readouterr().err
    assert not list((out / "checkpoints").glob(".tmp-*"))
    assert main(["train", "--preset", "mnist5k-blur", "--set", *TINY, "--no-progress", "--out", str(out)]) == 0
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [3, 6, 8]


def test_fault_full_disk_at_a_checkpoint_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import colddiff.checkpoint as ck

    real, calls = ck.atomic_path, []

    def full_after_first(path, fsync=False):
        calls.append(path)
        if len(calls) > 1:
            raise_enospc(path)
        return real(path, fsync)

    monkeypatch.setattr(ck, "atomic_path", full_after_first)
    out = tmp_path / "run"
    assert main(["train", "--preset", "mnist5k-blur", "--set", *TINY, "--no-progress", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("colddiff: step ") for line in lines[:-1])   # progress log lines before it
    err = lines[-1]
    assert "the disk is full" in err and "training stopped at step 6" in err
    assert f"colddiff train --resume {out}" in err
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [3]   # the good one is kept
    monkeypatch.setattr(ck, "atomic_path", real)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0


def raise_enospc(path):
    from colddiff.fileio import os_problem

    raise os_problem(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)), path)


def test_fault_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """A real write failure: RLIMIT_FSIZE makes the file system refuse the strip half way (EFBIG)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))\n"
            "import sys; from colddiff.cli import main\n"
            f"sys.exit(main(['degrade', '-d', 'blur', '--input', 'mnist-5k', '--n', '8', '--out', "
            f"{str(tmp_path / 'o.png')!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "cannot write" in p.stderr and "ulimit" in p.stderr
    assert list(tmp_path.iterdir()) == []


def _read_only(monkeypatch, under: Path):
    """Every new file under ``under`` fails as on a read-only mount (chmod does not stop root)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and Path(dir).resolve().is_relative_to(under.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_fault_read_only_output_folder(world, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    for argv in (["degrade", "-d", "blur", "--input", "mnist-5k", "--n", "2", "--out", str(ro / "o.png")],
                 ["generate", str(world / "run"), "--n", "2", "--out", str(ro / "g"), "--no-progress"],
                 ["train", "--preset", "mnist5k-blur", "--set", *TINY, "--out", str(ro / "r")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "read-only; choose another folder" in err, err
    assert list(ro.iterdir()) == []


def test_fault_read_only_run_folder_fails_before_evaluating(world, tmp_path, monkeypatch, capsys):
    import colddiff.evaluation as evaluation

    run = _copy_run(world / "run", tmp_path / "run")
    _read_only(monkeypatch, run)
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking the output"))
    for argv in (["evaluate", str(run), "--no-progress"], ["report", str(run), "--no-progress"]):
        assert main(argv) == 2
        assert "read-only" in capsys.readouterr().err


def test_fault_ctrl_c_exits_with_the_interrupted_status_and_resumes(tmp_path, capsys):
    from colddiff.training import train

    def ctrl_c_at_step_5(info):
        if info["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)

    summary = train(_tiny(), tmp_path / "run", callbacks=[ctrl_c_at_step_5], progress=False)
    assert summary["stopped_early"] and summary["step"] == 5
    # the CLI's status for the same situation, without a second run: a stopped summary -> 3
    import colddiff.training as training

    orig = training.train
    try:
        training.train = lambda *a, **k: {**summary, "checkpoint": "x"}
        assert main(["train", "--preset", "mnist5k-blur", "--set", *TINY, "--out", str(tmp_path / "new")]) \
            == EXIT_INTERRUPTED == 3
        assert "continue with: colddiff train --resume" in capsys.readouterr().out
        assert main(["quickstart", "--out", str(tmp_path / "qs"), "--no-progress"]) == 3   # its training, stopped
        assert "run `colddiff quickstart` again" in capsys.readouterr().err
    finally:
        training.train = orig


def test_fault_resume_between_log_lines_logs_the_same_losses(tmp_path):
    """Resumed at step 5 (log_every 4), the step-8 log line averaged steps 5..8 of
    the first run and 6..8 of the second; the running window is now part of the checkpoint."""
    from colddiff.training import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(_tiny(), tmp_path / "a", progress=False)

        def stop_at_5(info):
            if info["step"] == 5:
                os.kill(os.getpid(), signal.SIGINT)

        assert train(_tiny(), tmp_path / "b", callbacks=[stop_at_5], progress=False)["step"] == 5
        train(_tiny(), tmp_path / "b", resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    log = lambda run: [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]  # noqa: E731
    assert log(tmp_path / "a") == log(tmp_path / "b") and [s for s, _ in log(tmp_path / "a")] == [4, 8]


def test_the_table_covers_the_first_list_and_forty_more():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    src = Path(__file__).read_text().split("CASES = [", 1)[1].split("\n]\n", 1)[0]
    marked = src.count("# first")
    assert marked == EXPECTED_FIRST_CASES and len(CASES) - marked >= 40
    assert len(FAULTS) == len([n for n in globals() if n.startswith("test_fault_")])


def test_the_failure_docs_quote_the_counts_of_this_table():
    readme = " ".join((Path(__file__).resolve().parents[1] / "docs" / "failures.md").read_text().split())
    clean = sum(1 for c in CASES if c[2] == 2)
    assert f"{len(CASES)} bad command lines" in readme
    assert f"the {EXPECTED_FIRST_CASES} cases of the first list and {len(CASES) - EXPECTED_FIRST_CASES} more" in readme
    assert f"{clean} end in one clear line" in readme and f"{len(CASES) - clean} give the right output" in readme
    assert f"{len(FAULTS)} faults survived" in readme

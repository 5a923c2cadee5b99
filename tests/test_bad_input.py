"""Bad input, tried as a hostile new user would: every case is a command line and what must happen.

Each row of :data:`CASES` is ``(id, command line, exit status, fragment)``: the command runs
in-process (as ``colddiff ...`` would) and must end with that status and, for status 2, ONE
line on stderr holding the fragment, no traceback, no "internal error", and no file left in
the output folder.  Rows with status 0 must print the fragment and pass the check named
``check_<id>`` below (the right output, not merely no error).  The rows are grouped by command; the
rows marked ``# first`` are the first list of cases written down, those marked ``# second`` the
second audit's, the others were added beside them.  The tests after the table are grouped by
command too; the fault tests among them (a kill during the first checkpoint, a full disk, a
read-only output folder, Ctrl-C) are listed in :data:`FAULTS`.  The docs page "What happens when things go wrong" (docs/failures.md) quotes the
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
    _second_audit_world(w, run)
    return w


def _second_audit_world(w: Path, run: Path) -> None:
    """The inputs of the output-rule and second-audit rows: a user's photo folder, float TIFFs with NaN,
    plug-ins that misbehave, locked, renamed and damaged run folders, links."""
    import socket

    photos = w / "photos"                      # a user's folder: colddiff must never write into it
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28), 60 * i, np.uint8)).save(photos / f"{i:04d}.png")
    Image.fromarray(np.full((28, 28), 99, np.uint8)).save(photos / "sheet.png")
    nan = np.full((28, 28), 100.0, np.float32)
    nan[3, 4] = np.nan
    Image.fromarray(nan, mode="F").save(w / "nan.tiff")
    inf = np.full((28, 28), 100.0, np.float32)
    inf[0, 0] = np.inf
    Image.fromarray(inf, mode="F").save(w / "inf.tiff")
    (w / "nanfolder").mkdir()
    Image.fromarray(nan, mode="F").save(w / "nanfolder" / "a.tif")
    (w / "shadow_blur.py").write_text(
        "from colddiff.degradations import register\nfrom colddiff.degradations.blur import GaussianBlur\n"
        "@register('blur')\nclass MyBlur(GaussianBlur):\n    pass\n")
    (w / "raising.py").write_text(
        "from colddiff.degradations import Degradation, register\n"
        "@register('raiser')\nclass Raiser(Degradation):\n"
        "    def __init__(self, T=4, **kw):\n        super().__init__(T, **kw)\n"
        "    def forward(self, x0, t, ctx):\n        raise ValueError('my forward is broken')\n"
        "    @classmethod\n    def example(cls, image_size=16, channels=1):\n        return cls(T=4)\n")
    locked = _copy_run(run, w / "locked-run")  # PID 1 is alive on every Linux host: a running training
    (locked / ".colddiff-train.lock").write_text(json.dumps({"pid": 1, "host": socket.gethostname(),
                                                             "started": "2026-01-01 00:00:00"}))
    away = _copy_run(run, w / "remote-locked-run")  # a lock of another host cannot be judged from here
    (away / ".colddiff-train.lock").write_text(json.dumps({"pid": 123, "host": "elsewhere.example"}))
    renamed = _copy_run(run, w / "renamed-run")
    ck = list_checkpoints(renamed / "checkpoints")[-1][1]
    ck.rename(ck.with_name("ckpt-00000900.safetensors"))
    metrics = _copy_run(run, w / "metrics-run")
    (metrics / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n[1, 2]\n7\n"text"\n{"step": "x", "loss": 1}\n'
                                           '{"step": 2, "loss": 0.4}\n')
    (w / "photos-link").symlink_to(photos, target_is_directory=True)
    restored = w / "restored"                 # the result of another command (restore), with its manifest
    restored.mkdir()
    (restored / "x.direct.png").write_bytes((photos / "0000.png").read_bytes())
    (restored / ".colddiff-output.json").write_text(json.dumps({"format": "colddiff-output-v1", "command": "restore",
                                                                "files": ["x.direct.png"]}))
    owned = w / "owned-gen"                   # an earlier generate's folder into which the user put a file
    owned.mkdir()
    (owned / "0000.png").write_bytes((photos / "0000.png").read_bytes())
    (owned / "notes.txt").write_text("mine")
    (owned / ".colddiff-output.json").write_text(json.dumps({"format": "colddiff-output-v1", "command": "generate",
                                                             "files": ["0000.png"]}))
    (w / "sampler-bogus.toml").write_text('preset = "mnist5k-blur"\n[generation]\nsampler = "bogus"\n')
    (w / "attn-negative.toml").write_text("[model]\nattn_levels = [-1]\n")


def _fmt(template: str, world: Path, tmp: Path) -> list:
    names = {"run": world / "run", "tmp": tmp}
    for p in world.iterdir():
        names.setdefault(p.stem.replace("-", "_"), p)
    return [a.format(**{k: str(v) for k, v in names.items()}) for a in shlex.split(template)]


# ---------------------------------------------------------------------------- the table, by command
D = "degrade -d blur --input mnist-5k --n 2 --out {tmp}/o.png"
T = "train --preset mnist5k-blur --out {tmp}/r --no-progress"
E = "evaluate {run} --n 4 --fid none --no-classifier --no-progress"
R = "restore {run} --input {img} --t 1 --sampler direct --no-progress"
G = "generate {run} --n 2 --no-progress"
X = "export {run} --n 2 --no-progress"
CASES = [
    # ---- degrade: a strip of D(x0, t)
    ("degrade-sigma-nan", D + " --param sigma=nan", 2, "sigma must be a finite number"),                 # first
    ("degrade-16bit-png", "degrade -d blur --input {ramp16} --steps 0 --out {tmp}/o.png", 0, "1 image(s)"),   # first
    ("degrade-n-negative", D.replace("--n 2", "--n -1"), 2, "argument --n: must be at least 1, got -1"),  # first
    ("degrade-out-is-folder", D.replace("{tmp}/o.png", "{empty}"), 2, "is a folder; give a file name"),  # first
    ("degrade-out-below-a-file", D.replace("{tmp}/o.png", "{afile}/o.png"), 2, "is a file, not a folder"),  # first
    ("degrade-sigma-text", D + " --param sigma=abc", 2, "blur parameter sigma must be a number, got 'abc'"),  # first
    ("degrade-n-zero", D.replace("--n 2", "--n 0"), 2, "argument --n: must be at least 1, got 0"),       # first
    ("degrade-decompression-bomb", "degrade -d blur --input {bomb} --out {tmp}/o.png", 2, "decompression bomb"),  # first
    ("degrade-sigma-inf", D + " --param sigma=inf", 2, "sigma must be a finite number"),                 # first
    ("degrade-image-size-contradicts", D + " --param image_size=64", 2, "contradicts the input"),         # first
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
    ("degrade-seed-huge", D + " --seed 99999999999999999999999", 2, "argument --seed: must be at most 4294967295"),  # second
    ("degrade-seed-negative", D + " --seed -1", 2, "argument --seed: must be at least 0"),  # second
    ("degrade-seed-2-to-the-32", D + " --seed 4294967296", 2, "must be at most 4294967295"),  # second
    ("degrade-nan-pixels", "degrade -d blur --input {nan} --steps 0,2 --out {tmp}/o.png", 2,
     "nan.tiff holds 1 NaN/Inf pixel value(s)"),  # second
    ("degrade-inf-pixels", "degrade -d blur --input {inf} --steps 0,2 --out {tmp}/o.png", 2, "inf.tiff holds 1 NaN/Inf"),  # second
    ("degrade-nan-in-a-folder", "degrade -d blur --input {nanfolder} --out {tmp}/o.png", 2, "a.tif holds 1 NaN/Inf"),  # second
    ("degrade-out-tiff", D.replace("o.png", "o.tiff") + " --steps 0,2", 0, "wrote"),  # second
    ("degrade-out-upper-case-bmp", D.replace("o.png", "o.BMP") + " --steps 0,2", 0, "wrote"),  # second
    ("degrade-out-unknown-extension", D.replace("o.png", "o.xyz"), 2, "cannot write a .xyz image file"),  # second
    ("degrade-out-no-extension", D.replace("o.png", "strip"), 2, "cannot write an extension-less image file"),  # second
    ("degrade-out-pdf", D.replace("o.png", "o.pdf"), 2, "cannot write a .pdf image file"),  # second
    ("plugin-forward-raises", "--plugin {raising} degrade -d raiser --input mnist-5k --n 2 --out {tmp}/o.png", 2,
     "the plug-in degradation 'raiser' (Raiser in"),  # second
    ("degrade-seed-text", D + " --seed abc", 2, "argument --seed: must be a whole number"),  # second
    # ---- check-degradation and plug-ins
    ("check-degradation-sigma-nan", "check-degradation blur --param sigma=nan", 2, "finite number"),
    ("check-degradation-size-tiny", "check-degradation blur --size 2", 2, "argument --size: must be at least 8"),
    ("plugin-shadows-built-in-blur", "--plugin {shadow_blur} degradations", 2,
     "registers a degradation named 'blur', which is built in"),  # second
    ("plugin-shadows-built-in-before-check", "--plugin {shadow_blur} check-degradation blur", 2, "which is built in"),  # second
    # ---- train: configs, run folders, locks
    ("train-out-is-file", T.replace("{tmp}/r", "{afile}"), 2, "is a file; give a folder"),              # first
    ("train-set-sigma-text", T + " --set degradation.sigma=abc", 2, "sigma must be a number, got 'abc'"),  # first
    ("train-config-is-folder", "train --config {cfgdir} --out {tmp}/r", 2, "is a folder; give a TOML file"),  # first
    ("train-toml-list-as-text", "train --preset mnist5k-blur --config {list_as_text} --out {tmp}/r", 2,
     "model.dim_mults must be a list of whole numbers"),                                                 # first
    ("train-num-workers-negative", T + " --set data.num_workers=-2", 2, "data.num_workers must be a whole number >= 0, or -1"),  # first
    ("train-lr-huge", T + " --set train.lr=1e38", 2, "train.lr must be at most 1"),                       # first
    ("train-resume-with-other-out", "train --resume {run} --out {tmp}/other", 2, "drop --out"),         # first
    ("train-grad-clip-negative", T + " --set train.grad_clip=-1", 2, "train.grad_clip (0 = off) must be at least 0"),  # first
    ("train-data-root-missing", T + " --set data.root={tmp}/nowhere", 2, "data.root"),                   # first
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
    ("train-into-users-photos", T.replace("{tmp}/r", "{photos}"), 2, "already holds files that are not a colddiff run"),  # second
    ("train-resume-locked-run", "train --resume {locked_run} --no-progress", 2,
     "is locked by a training that is still running (PID 1"),  # second
    ("train-resume-locked-on-another-host", "train --resume {remote_locked_run} --no-progress", 2,
     "on elsewhere.example"),  # second
    ("train-seed-huge", T + " --set train.seed=99999999999999999999", 2, "train.seed must be at most 4294967295"),  # second
    ("train-seed-negative", T + " --set train.seed=-5", 2, "train.seed must be at least 0"),  # second
    ("train-device-meta", T + " --set train.device=meta", 2, "device 'meta' cannot run colddiff"),  # second
    ("train-network-too-large-for-memory", T + " --set model.dim=4096 model.num_res_blocks=16", 2,
     "lower model.dim or model.num_res_blocks"),  # second
    ("plugin-forward-raises-in-training", "--plugin {raising} " + T + " --set degradation.name=raiser train.steps=1", 2,
     "failed in forward(): ValueError: my forward is broken"),  # second
    ("train-attn-levels-negative", T + " --set model.attn_levels=-1", 2, "negative numbers are not levels"),  # second
    ("train-attn-levels-negative-in-list", T + " --set model.attn_levels=1,-2", 2, "negative numbers are not levels"),  # second
    ("train-dim-mults-double-dash", T + " --set model.dim_mults=1--2", 2, "list of whole numbers >= 0"),  # second
    ("train-attn-levels-toml-negative", "train --config {attn_negative} --out {tmp}/r", 2,
     "model.attn_levels must be a list of whole numbers >= 0"),  # second
    ("train-generation-sampler-bogus", T + " --set generation.sampler=bogus", 2,
     "generation.sampler 'bogus' is unknown; samplers: direct"),  # second
    ("train-generation-sampler-empty", T + " --set generation.sampler=", 2, "generation.sampler '' is unknown"),  # second
    ("train-config-generation-sampler-bogus", "train --config {sampler_bogus} --out {tmp}/r", 2,
     "generation.sampler 'bogus' is unknown"),  # second
    ("train-resume-renamed-checkpoint", "train --resume {renamed_run} --no-progress", 2,
     "rename it back to ckpt-00000000.safetensors"),  # second
    ("train-dim-mults-negative", T + " --set model.dim_mults=-2", 2, "list of whole numbers >= 0"),  # second
    ("train-attn-levels-text", T + " --set model.attn_levels=low", 2, "list of whole numbers >= 0"),  # second
    ("train-resume-locked-run-extended", "train --resume {locked_run} --set train.steps=9 --no-progress", 2,
     "is locked by a training that is still running"),  # second
    # ---- quickstart
    ("quickstart-out-is-file", "quickstart --out {afile} --no-progress", 2, "is a file; give a folder"),  # first
    ("quickstart-n-zero", "quickstart --n 0 --out {tmp}/q", 2, "argument --n: must be at least 1"),       # first
    ("quickstart-gen-n-zero", "quickstart --gen-n 0 --out {tmp}/q", 2, "argument --gen-n: must be at least 1"),  # first
    ("quickstart-into-users-photos", "quickstart --out {photos} --no-progress", 2, "not a colddiff run"),  # second
    # ---- evaluate
    ("evaluate-nan-network", "evaluate {nanrun} --n 4 --fid none --no-classifier --no-progress", 2, "NaN/Inf"),  # first
    ("evaluate-generation-noise-negative", "evaluate {run} --generation --noise -1", 2,
     "argument --noise: must be at least 0"),                                                            # first
    ("evaluate-batch-size-zero", E + " --batch-size 0", 2, "argument --batch-size: must be at least 1"),  # first
    ("evaluate-state-step-text", E.replace("{run}", "{bad_state}"), 2, "field 'step' must be int"),       # first
    ("evaluate-config-size-text", E.replace("{run}", "{bad_config_size}"), 2, "data.image_size must be a number"),  # first
    ("evaluate-device-cuda-hint", E + " --device cuda:7", 2, "--device cpu"),                             # first
    ("run-is-a-png", "evaluate {img} --no-progress", 2, "is an image, not a run"),                        # first
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
    ("evaluate-seed-huge", E + " --seed 1e30", 2, "argument --seed: must be"),  # second
    ("evaluate-device-meta", E + " --device meta", 2, "device 'meta' cannot run colddiff"),  # second
    ("evaluate-device-mps", E + " --device mps", 2, "MPS is not available here"),  # second
    ("evaluate-device-xla", E + " --device xla", 2, "cannot run colddiff"),  # second
    ("evaluate-renamed-checkpoint", E.replace("{run}", "{renamed_run}"), 2,
     "holds step 0 but its name says step 900 (renamed?)"),  # second
    ("evaluate-seed-negative", E + " --seed -1", 2, "argument --seed: must be at least 0"),  # second
    # ---- report
    ("report-eval-n-script", "report {eval_n_script} --no-eval --no-progress", 2, "field 'n' must be int"),   # first
    ("report-eval-rows-text", "report {eval_rows_text} --no-eval --no-progress", 2, "field 'rows' must be list"),
    ("report-eval-row-number-text", "report {eval_row_number} --no-eval --no-progress", 2,
     "rows[0].psnr must be a number"),
    ("report-eval-not-object", "report {eval_not_object} --no-eval --no-progress", 2, "expected a JSON object"),
    ("report-generation-row-text", "report {gen_bad} --no-eval --no-progress", 2, "rows[0].setting must be text"),
    ("report-n-zero", "report {run} --n 0", 2, "argument --n: must be at least 1"),
    ("report-metrics-lines-not-objects", "report {metrics_run} --no-eval --no-progress", 0, "wrote"),  # second
    ("report-device-meta", "report {run} --device meta --no-eval --no-progress", 2, "device 'meta' cannot run"),  # second
    # ---- restore
    ("restore-name-collisions", "restore {run} --input {collide} --t 2 --out {tmp}/out --no-progress", 0,
     "restored 4 image(s)"),                                                                              # first
    ("restore-16bit-png", "restore {run} --input {ramp16} --t 1 --out {tmp}/out --sampler direct --no-progress", 0,
     "restored 1 image(s)"),                                                                              # first
    ("restore-out-is-file", "restore {run} --input {img} --out {afile} --no-progress", 2, "is a file; give a folder"),  # first
    ("restore-nan-network", "restore {nanrun} --input {img} --t 1 --sampler direct --out {tmp}/o "
     "--no-progress", 2, "NaN/Inf"),
    ("restore-t-zero", "restore {run} --input {img} --t 0 --out {tmp}/o --no-progress", 2, "--t must be between 1"),
    ("restore-t-text", "restore {run} --input {img} --t soon --out {tmp}/o --no-progress", 2,
     "--t takes a step number 1..4 or auto"),
    # a centred-mask run restores only its own size (a blur run restores any size: tests/test_photos.py)
    ("restore-wrong-size", "restore {maskrun} --input {img40} --t 1 --out {tmp}/o --no-progress", 2, "pass --resize"),
    ("restore-input-missing", "restore {run} --input {tmp}/none.png --out {tmp}/o --no-progress", 2,
     "input not found"),
    ("restore-input-bomb", "restore {run} --input {bomb} --out {tmp}/o --no-progress", 2, "decompression bomb"),
    ("restore-out-is-the-input", "restore {run} --input {photos} --t 1 --out {photos} --no-progress", 2,
     "is the input folder itself"),  # second
    ("restore-out-inside-the-input", "restore {run} --input {photos} --t 1 --out {photos}/restored --no-progress", 2,
     "inside the input folder"),  # second
    ("restore-into-users-photos", R + " --out {photos}", 2, "already holds files colddiff did not write"),  # second
    ("restore-out-is-a-link", R + " --out {photos_link}", 2, "is a symbolic link"),  # second
    ("restore-device-meta", R + " --device meta --out {tmp}/o", 2, "device 'meta' cannot run colddiff"),  # second
    ("restore-nan-pixels", "restore {run} --input {nan} --t 1 --out {tmp}/o --no-progress", 2,
     "nan.tiff holds 1 NaN/Inf pixel value(s)"),  # second
    ("restore-device-mps", R + " --device mps --out {tmp}/o", 2, "MPS is not available here"),  # second
    ("restore-renamed-checkpoint", R.replace("{run}", "{renamed_run}") + " --out {tmp}/o", 2, "(renamed?)"),  # second
    ("restore-nan-pixels-in-a-folder", "restore {run} --input {nanfolder} --t 1 --out {tmp}/o --no-progress", 2,
     "a.tif holds 1 NaN/Inf pixel value(s)"),  # second
    # ---- generate
    ("generate-out-is-file", "generate {run} --n 2 --out {afile} --no-progress", 2, "is a file; give a folder"),  # first
    ("generate-n-zero", "generate {run} --n 0 --out {tmp}/g", 2, "argument --n: must be at least 1"),
    ("generate-k-zero", "generate {run} --k 0 --out {tmp}/g", 2, "argument --k: must be at least 1"),
    ("generate-batch-size-text", "generate {run} --batch-size lots --out {tmp}/g", 2,
     "argument --batch-size: must be a whole number"),
    ("generate-noise-negative", "generate {run} --noise -0.5 --out {tmp}/g", 2, "argument --noise: must be at least 0"),
    ("generate-not-generative", "generate {nogen_run} --n 2 --out {tmp}/g --no-progress", 2,
     "generation is not defined for desaturate"),
    ("generate-into-users-photos", G + " --out {photos}", 2, "already holds files colddiff did not write"),  # second
    ("generate-out-is-the-run", G + " --out {run}", 2, "is the input folder itself"),  # second
    ("generate-out-inside-the-run", G + " --out {run}/samples", 2, "inside the input folder"),  # second
    ("generate-out-is-a-link", G + " --out {photos_link}", 2, "is a symbolic link"),  # second
    ("generate-into-a-restore-result", G + " --out {restored}", 2, "holds the result of `colddiff restore`"),  # second
    ("generate-into-owned-folder-with-users-file", G + " --out {owned_gen}", 2,
     "notes.txt, a file that colddiff did not write"),  # second
    ("generate-seed-huge", G + " --seed 18446744073709551616 --out {tmp}/g", 2, "argument --seed: must be at most"),  # second
    ("generate-device-mps", G + " --device mps --out {tmp}/g", 2, "MPS is not available here"),  # second
    ("generate-a-billion", G.replace("--n 2", "--n 1000000000") + " --out {tmp}/g", 2,
     "is more than one generate writes (1,000,000 images"),  # second
    ("generate-just-over-the-limit", G.replace("--n 2", "--n 1000001") + " --out {tmp}/g", 2,
     "generate in parts with different --seed"),  # second
    ("generate-renamed-checkpoint", "generate {renamed_run} --n 2 --out {tmp}/g --no-progress", 2, "(renamed?)"),  # second
    ("generate-seed-negative", G + " --seed -3 --out {tmp}/g", 2, "argument --seed: must be at least 0"),  # second
    # ---- export
    ("export-into-users-photos", X + " --out {photos}", 2, "already holds files colddiff did not write"),  # second
    ("export-out-is-the-run", X + " --out {run}", 2, "is the input folder itself"),  # second
    ("export-out-inside-the-run", X + " --out {run}/export", 2, "inside the input folder"),  # second
    ("export-out-is-a-file", X + " --out {afile}", 2, "is a file"),  # second
    ("export-device-meta", X + " --device meta --out {tmp}/m", 2, "device 'meta' cannot run colddiff"),  # second
    ("export-renamed-checkpoint", X.replace("{run}", "{renamed_run}") + " --out {tmp}/m", 2, "(renamed?)"),  # second
    # ---- data and weights
    ("data-root-missing", "data list --root {tmp}/nowhere", 2, "is not a folder (it does not exist)"),   # first
    ("data-info-unknown", "data info mnistt", 2, "mnistt"),
    ("data-verify-root-is-file", "data verify mnist --root {afile}", 2, "--root"),
    ("weights-verify-etc-passwd", "weights verify --path /etc/passwd", 2, "is not the FID Inception weights file"),  # second
    ("weights-verify-an-image", "weights verify --path {img}", 2, "is not the FID Inception weights file"),  # second
    ("weights-verify-a-folder", "weights verify --path {empty}", 2, "is a folder"),  # second
    ("weights-verify-missing-file", "weights verify --path {tmp}/none.pth", 2, "no file there"),  # second
]

# ---------------------------------------------------------------------------- the table's test and its helpers


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


# ---------------------------------------------------------------------------- helpers of the fault tests


TINY = ["train.steps=8", "train.batch_size=4", "train.grad_accum=1", "train.checkpoint_every=3",
        "train.keep_last=5", "train.log_every=4", "train.sample_every=0", "train.ema_start=2",
        "model.dim=8", "model.dim_mults=1,2", "train.lr=1e-3"]


ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


FAULTS = ("kill-during-first-checkpoint", "full-disk-at-checkpoint", "file-size-limit", "read-only-output",
          "read-only-before-evaluate", "ctrl-c-exit-status", "resume-between-log-lines",
          "real-full-disk-at-a-checkpoint", "killed-generate", "killed-restore", "killed-export",
          "second-train-into-a-locked-run", "ctrl-c-while-importing")


def _tiny(*extra):
    from colddiff.presets import preset

    return preset("mnist5k-blur").override(TINY + list(extra))


def _read_only(monkeypatch, under: Path):
    """Every new file under ``under`` fails as on a read-only mount (chmod does not stop root)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and Path(dir).resolve().is_relative_to(under.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _kill_at(boundary: str, k: int, argv: list) -> subprocess.CompletedProcess:
    """Run ``colddiff argv`` in a child that SIGKILLs itself at a real boundary: after the k-th image file is
    saved (``save``), when the replaced result is being removed after the swap (``swap``), or when an
    export writes its model card, its last file (``card``)."""
    hooks = {
        "save": ("import colddiff.images as images, colddiff.generation, colddiff.restoration, colddiff.export\n"
                 "real = images.save_image\nn = [0]\n"
                 "def hook(x, path):\n    out = real(x, path)\n    n[0] += 1\n"
                 f"    if n[0] == {k}:\n        os.kill(os.getpid(), signal.SIGKILL)\n    return out\n"
                 "for m in list(sys.modules.values()):\n"
                 "    if getattr(m, '__name__', '').startswith('colddiff') and getattr(m, 'save_image', None) is real:\n"
                 "        m.save_image = hook\n"),
        "swap": ("import shutil\nreal = shutil.rmtree\n"
                 "def hook(path, *a, **kw):\n    if f'.tmp-{os.getpid()}-' in str(path):\n"
                 "        os.kill(os.getpid(), signal.SIGKILL)\n"
                 "    return real(path, *a, **kw)\nshutil.rmtree = hook\n"),
        "card": ("import colddiff.export as ex\nreal = ex._write_text\n"
                 "def hook(text, path):\n    if path.name == 'README.md':\n        os.kill(os.getpid(), signal.SIGKILL)\n"
                 "    return real(text, path)\nex._write_text = hook\n"),
    }
    code = "import os, signal, sys\n" + hooks[boundary] + f"from colddiff.cli import main\nsys.exit(main({argv!r}))\n"
    return subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _consistent(folder: Path, index: str) -> None:
    """The folder is one complete result: its manifest lists exactly its files, and its index agrees."""
    man = json.loads((folder / ".colddiff-output.json").read_text())
    assert sorted(man["files"]) == sorted(k for k in _snapshot(folder) if k != ".colddiff-output.json")
    assert index in man["files"]


def _strip_cells(path: Path, n_cols: int = 2, n_rows: int = 2, cell: int = 84, pad: int = 2, top: int = 16):
    a = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return [[a[top + pad + i * (cell + pad):top + pad + i * (cell + pad) + cell,
              pad + j * (cell + pad):pad + j * (cell + pad) + cell] for j in range(n_cols)] for i in range(n_rows)]


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


# ---------------------------------------------------------------------------- degrade


def check_degrade_16bit_png(world, tmp):
    strip = np.asarray(Image.open(tmp / "o.png").convert("L"), dtype=np.float64)
    ramp = np.asarray(Image.open(world / "ramp16.png"), dtype=np.float64) / 65535 * 255
    # t=0 shows the image itself, enlarged 3x: its mean is the ramp's mean, not near-white
    cell = strip[16 + 2:16 + 2 + 84, 2:2 + 84]
    assert abs(cell.mean() - ramp.mean()) < 2 and cell.min() < 10 and cell.max() > 245


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


def check_degrade_out_tiff(world, tmp):
    with Image.open(tmp / "o.tiff") as im:     # the extension's format, not PNG bytes under a .tiff name
        assert im.format == "TIFF" and im.size[0] > 28


def check_degrade_out_upper_case_bmp(world, tmp):
    assert (tmp / "o.BMP").read_bytes()[:2] == b"BM"


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


# ---------------------------------------------------------------------------- plug-ins


def test_a_plugin_replaces_a_registered_name_only_when_it_says_so(tmp_path):
    from colddiff import degradations as deg
    from colddiff.errors import ConfigError
    from colddiff.plugins import load_plugin

    src = ("from colddiff.degradations import register\nfrom colddiff.degradations.blur import GaussianBlur\n"
           "@register('twice'{extra})\nclass Mine(GaussianBlur):\n    pass\n")
    (tmp_path / "first.py").write_text(src.format(extra=""))
    (tmp_path / "second.py").write_text(src.format(extra=""))
    (tmp_path / "third.py").write_text(src.format(extra=", override=True"))
    try:
        first = load_plugin(str(tmp_path / "first.py"))
        with pytest.raises(ConfigError, match="registers a degradation named 'twice', which is registered by"):
            load_plugin(str(tmp_path / "second.py"))
        assert deg.get_class("twice") is first.Mine
        third = load_plugin(str(tmp_path / "third.py"))
        assert deg.get_class("twice") is third.Mine
        assert deg.get_class("blur").__module__.startswith("colddiff.")
    finally:
        from colddiff.degradations.base import _REGISTRY

        _REGISTRY.pop("twice", None)


# ---------------------------------------------------------------------------- train


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


def test_fault_real_full_disk_at_a_checkpoint(tmp_path, capsys):
    """A real full disk (a 1.4 MB tmpfs: the first checkpoint fits, the second does not): safetensors reports it
    with its own error type, which must still be the one-line disk-full error; after more space, resume works."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1400k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "run"
        assert main(["train", "--preset", "mnist5k-blur", "--set", *TINY, "--no-progress", "--out", str(out)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert all(line.startswith("colddiff: step ") for line in lines[:-1]), lines   # the progress log lines
        err = lines[-1]
        assert err.startswith("colddiff: error: ") and "the disk is full; free some space [ENOSPC]" in err, err
        assert "training stopped at step 6: continue from ckpt-00000003.safetensors" in err
        assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [3] and not list(out.rglob(".tmp-*"))
        assert not (out / ".colddiff-train.lock").exists()
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        assert main(["train", "--resume", str(out), "--no-progress"]) == 0
        assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [3, 6, 8]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


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


def test_resume_drops_metrics_lines_that_are_no_record(tmp_path):
    from colddiff.training import train

    def stop_at_5(info):
        if info["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "run"
    assert train(_tiny(), out, callbacks=[stop_at_5], progress=False)["step"] == 5
    with open(out / "metrics.jsonl", "a") as f:
        f.write('[1, 2]\n7\n"text"\n{"step": "x"}\nnull\n')
    assert train(_tiny(), out, resume=True, progress=False)["step"] == 8
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [4, 8]


def test_fault_second_train_into_a_locked_run_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom colddiff.outputs import RunLock\n"
                               "with RunLock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(300)\n",
                               str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        train = ["train", "--preset", "mnist5k-blur", "--set", *TINY, "--no-progress", "--out", str(out)]
        assert main(train) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"is locked by a training that is still running (PID {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    assert main(train) == 0                              # its process is gone: the stale lock is taken over
    err = capsys.readouterr().err
    assert f"took over the stale lock of {out} (its training, PID {holder.pid}" in err
    assert not (out / ".colddiff-train.lock").exists() and [s for s, _ in list_checkpoints(out / "checkpoints")] \
        == [3, 6, 8]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [4, 8]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see when torch is being loaded")
def test_fault_ctrl_c_while_importing(tmp_path):
    """Ctrl-C while torch is still being imported (the first seconds of a command): one line, status 130."""
    p = subprocess.Popen([sys.executable, "-m", "colddiff", "train", "--preset", "mnist5k-blur", "--out",
                          str(tmp_path / "r")], env=ENV, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        try:
            if "libtorch" in Path(f"/proc/{p.pid}/maps").read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and err == "colddiff: interrupted\n", err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------- evaluate


def test_fault_read_only_run_folder_fails_before_evaluating(world, tmp_path, monkeypatch, capsys):
    import colddiff.evaluation as evaluation

    run = _copy_run(world / "run", tmp_path / "run")
    _read_only(monkeypatch, run)
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking the output"))
    for argv in (["evaluate", str(run), "--no-progress"], ["report", str(run), "--no-progress"]):
        assert main(argv) == 2
        assert "read-only" in capsys.readouterr().err


def test_psnr_mean_never_turns_nan_into_the_best_score():
    from colddiff.errors import InputError
    from colddiff.evaluation import _mean_finite

    assert _mean_finite(torch.tensor([10.0, float("inf"), 20.0])) == 15.0   # an exact match: left out
    with pytest.raises(InputError, match="NaN"):
        _mean_finite(torch.tensor([10.0, float("nan")]))


def test_a_corrupt_classifier_cache_names_the_fix_that_exists(tmp_path):
    from colddiff.classifier import load_classifier
    from colddiff.errors import InputError

    bad = tmp_path / "clf.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="delete the file: the next evaluation trains a new one") as e:
        load_classifier(bad)
    assert "pass retrain=True" not in str(e.value)


# ---------------------------------------------------------------------------- report


def check_report_metrics_lines_not_objects(world, tmp):
    from colddiff.figures import read_metrics_log

    assert read_metrics_log(world / "metrics-run" / "metrics.jsonl") == [{"step": 1, "loss": 0.5},
                                                                         {"step": 2, "loss": 0.4}]
    assert (world / "metrics-run" / "report.html").exists()


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


# ---------------------------------------------------------------------------- restore


def check_restore_name_collisions(world, tmp):
    out = tmp / "out"
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*.direct.png"))
    assert made == ["a-x.direct.png", "a/x.direct.png", "d0-bmp.direct.png", "d0-png.direct.png"]
    # every input has its own result: four different restorations of four different grey levels
    means = {np.asarray(Image.open(out / m)).mean() for m in made}
    assert len(means) == 4
    record = json.loads((out / "restore.json").read_text())
    assert len({r["direct"] for r in record["images"]}) == 4


def check_restore_16bit_png(world, tmp):
    from colddiff.images import read_image

    x = read_image(world / "ramp16.png")
    ramp = np.asarray(Image.open(world / "ramp16.png"), dtype=np.float64) / 65535
    assert np.allclose((x[0].numpy() + 1) / 2, ramp, atol=1e-4)   # full 16-bit range kept, not clipped
    assert (tmp / "out" / "ramp16.direct.png").exists()


def test_fault_killed_restore_leaves_the_old_result(world, tmp_path, capsys):
    out = tmp_path / "restored"
    cmd = ["restore", str(world / "run"), "--input", str(world / "photos"), "--t", "1", "--out", str(out),
           "--no-progress"]
    assert main(cmd + ["--sampler", "direct"]) == 0
    before = _snapshot(out)
    p = _kill_at("save", 3, cmd)                        # with algorithm2 too: killed after 3 of 9 images
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert _snapshot(out) == before
    assert json.loads((out / "restore.json").read_text())["samplers"] == ["direct"]
    assert main(cmd) == 0
    _consistent(out, "restore.json")
    assert json.loads((out / "restore.json").read_text())["samplers"] == ["direct", "algorithm2"]
    assert not list(tmp_path.glob(".restored.tmp-*"))
    assert sorted(p.name for p in (world / "photos").iterdir()) == ["0000.png", "0001.png", "0002.png", "sheet.png"]


def test_nan_in_the_input_is_blamed_on_the_input_not_the_weights(world):
    from colddiff.errors import InputError
    from colddiff.runs import load_run

    run = load_run(world / "run", device="cpu")
    x = torch.zeros(3, 1, 28, 28)
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(InputError) as e:
        run.sample(x, 2, sampler="direct")
    assert "1 of 3 input image(s)" in str(e.value) and "not the network" in str(e.value)
    assert "weights are broken" not in str(e.value)


# ---------------------------------------------------------------------------- generate


def test_fault_killed_generate_leaves_the_old_result_or_the_new_one(world, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", str(world / "run"), "--n", "3", "--out", str(out), "--no-progress"]) == 0
    before = _snapshot(out)
    again = ["generate", str(world / "run"), "--n", "5", "--seed", "1", "--out", str(out), "--no-progress"]
    p = _kill_at("save", 2, again)                      # killed with 2 of 5 new images written
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert _snapshot(out) == before                     # the old result, whole: no new image, no new index
    assert list(tmp_path.glob(".gen.tmp-*"))             # the new half, aside in a hidden sibling
    p = _kill_at("swap", 0, again)                      # killed just after the swap, while removing the old
    assert p.returncode == -signal.SIGKILL, p.stderr
    info = json.loads((out / "generation.json").read_text())
    assert info["n_images"] == 5 and info["seed"] == 1
    _consistent(out, "generation.json")
    assert sorted(k for k in _snapshot(out) if k.endswith(".png") and k != "grid.png") == info["files"]
    assert main(["generate", str(world / "run"), "--n", "2", "--out", str(out), "--no-progress"]) == 0
    assert not list(tmp_path.glob(".gen.*"))           # what the killed runs left is cleared by the next one
    _consistent(out, "generation.json")


# ---------------------------------------------------------------------------- export


def test_fault_killed_export_leaves_the_old_export(world, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["export", str(world / "run"), "--out", str(out), "--n", "2", "--license", "mit", "--no-progress"]) == 0
    before = _snapshot(out)
    p = _kill_at("card", 0, ["export", str(world / "run"), "--out", str(out), "--n", "2", "--license",
                             "apache-2.0", "--no-progress"])   # killed with all but the new model card written
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert _snapshot(out) == before and "license: mit" in (out / "README.md").read_text()
    _consistent(out, "README.md")


def test_export_copies_no_link_and_deletes_nothing_through_one(world, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    run = _copy_run(world / "run", tmp_path / "run")
    (run / "evaluation").mkdir()
    (run / "evaluation" / "passwd.json").symlink_to(secret)           # a link to a file outside the run
    (run / "generation").mkdir(exist_ok=True)
    (run / "generation" / "gmm-k1.json").unlink(missing_ok=True)
    (run / "generation" / "gmm-k1.json").symlink_to(secret)
    elsewhere = tmp_path / "elsewhere"                                 # a linked evaluation/ folder in the old export
    elsewhere.mkdir()
    (elsewhere / "restoration.json").write_text("keep me")
    out = tmp_path / "model"
    assert main(["export", str(run), "--out", str(out), "--n", "2", "--no-progress"]) == 0
    copied = _snapshot(out)
    assert not any("password" in v.decode("utf-8", "replace") for v in copied.values())
    assert "evaluation/passwd.json" not in copied and "generation/gmm-k1.json" not in copied
    shutil.rmtree(out / "evaluation", ignore_errors=True)
    (out / "evaluation").symlink_to(elsewhere, target_is_directory=True)
    assert main(["export", str(run), "--out", str(out), "--n", "2", "--no-progress"]) == 2
    assert "evaluation, a symbolic link that colddiff did not write" in capsys.readouterr().err
    assert (elsewhere / "restoration.json").read_text() == "keep me"
    linked = tmp_path / "linked-eval-run"                              # the run's evaluation/ itself a link
    _copy_run(world / "run", linked)
    (linked / "evaluation").symlink_to(elsewhere, target_is_directory=True)
    assert main(["export", str(linked), "--out", str(tmp_path / "m2"), "--n", "2", "--no-progress"]) == 0
    assert not (tmp_path / "m2" / "evaluation").exists()


def test_model_card_front_matter_and_body_cannot_be_broken_out_of(world, tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    from colddiff.checkpoint import checkpoint_path

    run = tmp_path / "run"
    ck = load_checkpoint(list_checkpoints(world / "run" / "checkpoints")[-1][1])
    evil = 'x\n---\n<script>alert(1)</script> [a](javascript:alert(2)) `code` "q" \\ \u2028 end'
    cfg = {**ck.config, "preset": evil, "description": evil}
    save_checkpoint(checkpoint_path(run / "checkpoints", 0), config=cfg, model=ck.model, state={"step": 0})
    out = tmp_path / "model"
    assert main(["export", str(run), "--out", str(out), "--n", "2", "--license", evil, "--no-progress"]) == 0
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    front, body = card[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta["license"] == evil and meta["library_name"] == "colddiff"   # the value, whole, inside the front matter
    assert "<script>" not in body and "](javascript:" not in body and "\n---\n" not in body
    assert "&lt;script&gt;" in body


# ---------------------------------------------------------------------------- data and weights


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


def test_weights_verify_never_advises_deleting_a_file_that_is_not_the_weights(capsys, tmp_path):
    assert main(["weights", "verify", "--path", "/etc/passwd"]) == 2
    err = capsys.readouterr().err
    assert "delete" not in err and "is not the FID Inception weights file" in err
    named = tmp_path / "pt_inception-2015-12-05-6726825d.pth"     # the weights' own name, damaged: delete it
    named.write_bytes(b"garbage")
    assert main(["weights", "verify", "--path", str(named)]) == 2
    assert "delete it and fetch it again" in capsys.readouterr().err


# ---------------------------------------------------------------------------- every command: written files, OS errors, the Python API


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


def test_an_os_error_outside_the_atomic_writer_is_still_one_line(monkeypatch, capsys):
    import colddiff.cli as cli

    def denied(args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/locked.png")

    monkeypatch.setattr(cli, "cmd_degradations", denied)
    assert main(["degradations"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "colddiff: error: cannot use /data/locked.png: permission denied; choose a folder you can write " \
                  "to [EACCES]"


def test_numpy_scalars_are_numbers_everywhere_python_numbers_are(world):
    from colddiff import degradations as deg
    from colddiff.generation import generate
    from colddiff.runs import load_run
    from colddiff.validate import number, whole

    assert whole(np.int64(5), "n") == 5 and type(whole(np.int64(5), "n")) is int
    assert number(np.float32(0.5), "x") == 0.5 and type(number(np.float32(0.5), "x")) is float
    D = deg.create("blur", T=np.int64(4), sigma=np.float64(1.0), kernel_size=np.int32(3), image_size=np.int64(28))
    assert D.T == 4 and type(D.T) is int
    run = load_run(world / "run", device="cpu")
    a = generate(run, np.int64(2), seed=np.int64(3), noise=np.float32(0.0), batch_size=np.int64(2), progress=False)
    assert torch.equal(a, generate(run, 2, seed=3, noise=0.0, batch_size=2, progress=False))
    with pytest.raises(Exception, match="must be a whole number"):
        whole(np.float64(2.5), "n")


# ---------------------------------------------------------------------------- the table's own counts


def test_the_table_covers_the_first_list_and_forty_more():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    src = Path(__file__).read_text().split("CASES = [", 1)[1].split("\n]\n", 1)[0]
    marked, second = src.count("# first"), src.count("# second")
    assert marked == EXPECTED_FIRST_CASES and len(CASES) - second - marked >= 40
    assert second >= 60
    assert len(FAULTS) == len([n for n in globals() if n.startswith("test_fault_")])


def test_the_failure_docs_quote_the_counts_of_this_table():
    readme = " ".join((Path(__file__).resolve().parents[1] / "docs" / "failures.md").read_text().split())
    clean = sum(1 for c in CASES if c[2] == 2)
    assert f"{len(CASES)} bad command lines" in readme
    assert f"the {EXPECTED_FIRST_CASES} cases of the first list and {len(CASES) - EXPECTED_FIRST_CASES} more" in readme
    assert f"{clean} end in one clear line" in readme and f"{len(CASES) - clean} give the right output" in readme
    assert f"{len(FAULTS)} faults survived" in readme

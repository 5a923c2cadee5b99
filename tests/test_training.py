"""Training: exact resume after SIGKILL, Ctrl-C, NaN stop, corrupt checkpoints, DDP, configs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import colddiff.degradations as deg
from colddiff.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from colddiff.cli import main
from colddiff.config import RunConfig
from colddiff.presets import PRESETS, preset
from colddiff.errors import ConfigError, InputError
from colddiff.training import TrainingError, train

# a tiny, fast run that still exercises everything random: mask centres (context generator),
# dropout (global RNG), data order, EMA, gradient accumulation
TINY = ["train.steps=24", "train.batch_size=8", "train.grad_accum=2", "train.checkpoint_every=4",
        "train.keep_last=2", "train.log_every=4", "train.sample_every=0", "train.ema_start=6",
        "train.ema_every=2", "model.dim=8", "model.dim_mults=1,2", "model.dropout=0.1", "train.lr=1e-3"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def tiny_cfg(*extra) -> RunConfig:
    return preset("mnist5k-inpaint").override(TINY + list(extra))


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "colddiff", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, **kw)


def train_cli(out, *extra):
    sets = [a for s in TINY for a in ("--set", s)]
    return cli("train", "--preset", "mnist5k-inpaint", *sets, *extra, "--no-progress", "--out", str(out))


def digest(run) -> str:
    return json.loads((Path(run) / "train_summary.json").read_text())["weights_sha256"][0]


def wait_for_checkpoint(run, n=1, timeout=120):
    t0 = time.time()
    while len(list_checkpoints(Path(run) / "checkpoints")) < n:
        assert time.time() - t0 < timeout, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    p = train_cli(out)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out


def test_sigkill_at_any_moment_then_resume_is_bit_identical(reference_run, tmp_path):
    out = tmp_path / "run"
    p = train_cli(out)
    wait_for_checkpoint(out, 1)
    time.sleep(0.37)  # somewhere in the middle of a step or of writing a checkpoint
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    killed_at = list_checkpoints(out / "checkpoints")[-1][0]
    assert killed_at < 24
    # kill the resumed run too, then resume again
    p = cli("train", "--resume", str(out), "--no-progress")
    wait_for_checkpoint_after(out, killed_at)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = cli("train", "--resume", str(out), "--no-progress")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert digest(out) == digest(reference_run)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 24  # no duplicated log lines after resumes


def wait_for_checkpoint_after(run, step, timeout=120):
    t0 = time.time()
    while list_checkpoints(Path(run) / "checkpoints")[-1][0] <= step:
        assert time.time() - t0 < timeout
        time.sleep(0.02)


def test_ctrl_c_saves_and_resume_matches(reference_run, tmp_path):
    out = tmp_path / "run"
    p = train_cli(out)
    wait_for_checkpoint(out, 1)
    p.send_signal(signal.SIGINT)
    stdout, err = p.communicate(timeout=120)
    assert p.returncode == 3, err  # stopped and saved: not 0, which means finished
    assert "stopped at step" in stdout and "--resume" in stdout
    stopped = json.loads((out / "train_summary.json").read_text())["step"]
    assert list_checkpoints(out / "checkpoints")[-1][0] == stopped
    p = cli("train", "--resume", str(out), "--no-progress")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert digest(out) == digest(reference_run)


def test_in_process_training_matches_the_cli_and_writes_the_run_folder(reference_run, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the CLI runs (OMP_NUM_THREADS=1): float sums depend on the split
    try:
        summary = train(tiny_cfg(), tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert summary["weights_sha256"][0] == digest(reference_run)
    cfg = RunConfig.load(tmp_path / "run" / "config.toml")
    assert cfg == tiny_cfg()
    ck = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])
    assert ck.step == 24 and RunConfig.from_dict(ck.config) == cfg
    assert len(list_checkpoints(tmp_path / "run" / "checkpoints")) == 2  # keep_last
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))
    # EMA differs from the raw weights once it averages
    assert any(not torch.equal(ck.ema[k], ck.model[k]) for k in ck.model if ck.model[k].is_floating_point())


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(info):
        if info["step"] == 9:
            with torch.no_grad():
                next(info["model"].parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"at step 10.*last good checkpoint .*ckpt-00000008"):
        train(tiny_cfg(), tmp_path / "run", callbacks=[poison], progress=False)
    ck = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])
    assert ck.step == 8 and all(torch.isfinite(v).all() for v in ck.model.values() if v.is_floating_point())


def test_corrupt_truncated_and_foreign_checkpoints_are_clear_errors(reference_run, tmp_path, capsys):
    good = list_checkpoints(reference_run / "checkpoints")[-1][1]
    truncated = tmp_path / "ckpt-00000001.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_checkpoint(garbage)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(InputError, match="not a colddiff checkpoint"):
        load_checkpoint(foreign)
    # through the CLI: one line, exit 2
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-00000004.safetensors").write_bytes(good.read_bytes()[:100])
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt or truncated" in err[0]


def test_checkpoint_round_trip_keeps_optimizer_and_rng(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(5)
    path = save_checkpoint(tmp_path / "ckpt-00000001.safetensors", config={"a": 1}, model=model.state_dict(),
                           optimizer=opt.state_dict(), rng={"rank0.train": g.get_state()}, state={"step": 1})
    ck = load_checkpoint(path)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    opt2.load_state_dict(ck.optimizer)
    assert opt2.param_groups[0]["lr"] == 0.1
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(ck.rng["rank0.train"], g.get_state()) and ck.step == 1


def test_existing_run_needs_resume_and_finished_run_needs_more_steps(reference_run, capsys):
    assert main(["train", "--preset", "mnist5k-blur", "--out", str(reference_run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(reference_run), "--no-progress"]) == 2
    assert "train.steps=N" in capsys.readouterr().err


def test_ddp_two_processes_keep_identical_weights_and_only_rank0_writes(tmp_path):
    out = tmp_path / "ddp"
    sets = [a for s in TINY + ["train.steps=8"] for a in ("--set", s)]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "colddiff", "train", "--preset", "mnist5k-inpaint", *sets, "--no-progress",
                        "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["weights_sha256"]) == 2 and summary["ranks_agree"]
    # rank 0's files only (tensorboard/ where that optional package is installed); the lock is released
    assert sorted(p.name for p in out.iterdir() if p.name != "tensorboard") == [
        ".colddiff-output.json", "checkpoints", "config.toml", "metrics.jsonl", "train_summary.json"]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8]  # one writer: no line twice
    ck = load_checkpoint(list_checkpoints(out / "checkpoints")[-1][1])
    assert {k.split(".")[0] for k in ck.rng} == {"rank0", "rank1"}
    assert r.stdout.count("trained") == 1


def test_presets_cover_the_paper_and_validate_without_data():
    expected = {"mnist-blur", "cifar10-blur", "celeba-blur", "mnist-inpaint", "cifar10-inpaint", "celeba-inpaint",
                "mnist-sr", "cifar10-sr", "celeba-sr", "cifar10-snow", "celeba-snow", "cifar10-desaturate",
                "celeba-blur-gen", "afhq-blur-gen", "celeba-mask-gen", "celeba-animorph", "celeba-noise",
                "mnist5k-blur", "mnist5k-inpaint", "mnist5k-sr", "afhq-noise", "celeba-desaturate"}
    assert expected <= set(PRESETS)
    for name, p in PRESETS.items():
        p.validate()
        p.build_degradation()
        assert p.train.lr > 0 and p.description
    assert PRESETS["cifar10-blur"].train.lr == 2e-5 and PRESETS["cifar10-blur"].train.grad_accum == 2
    # the authors' inpainting code: batch 32 for MNIST (defading mnist_train.py), 100 for CelebA (celebA_train.py)
    assert PRESETS["mnist-inpaint"].train.batch_size == 32 and PRESETS["celeba-inpaint"].train.batch_size == 100
    assert PRESETS["mnist-blur"].data.image_size == 32


def test_set_overrides_are_typed_and_checked():
    cfg = preset("mnist5k-blur").override(["train.steps=10", "train.lr=3e-4", "model.dim_mults=1,2",
                                           "degradation.sigma=1.5", "train.deterministic=true"])
    assert cfg.train.steps == 10 and cfg.train.lr == 3e-4 and cfg.model.dim_mults == [1, 2]
    assert cfg.degradation.params["sigma"] == 1.5 and cfg.train.deterministic is True
    with pytest.raises(ConfigError, match="expected int"):
        preset("mnist5k-blur").override(["train.steps=many"])
    with pytest.raises(ConfigError, match="at least 1"):
        preset("mnist5k-blur").override(["train.batch_size=0"])
    with pytest.raises(ConfigError, match="unknown config key"):
        preset("mnist5k-blur").override(["optimizer.lr=1"])


def test_toml_config_file_merges_over_the_preset(tmp_path, capsys):
    f = tmp_path / "run.toml"
    f.write_text('[train]\nsteps = 2\nbatch_size = 4\nsample_every = 1\nlog_every = 1\n[model]\ndim = 8\n'
                 'dim_mults = [1, 2]\n')
    out = tmp_path / "run"
    assert main(["train", "--preset", "mnist5k-sr", "--config", str(f), "--out", str(out), "--no-progress"]) == 0
    assert RunConfig.load(out / "config.toml").train.batch_size == 4
    assert (out / "samples" / "step-00000002.png").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps=")
    assert main(["train", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


# ---------------------------------------------------------------------------- IHD's training-input noise σ
def test_input_noise_zero_is_the_papers_stream_and_sigma_adds_gaussian_noise():
    from colddiff.objective import degrade_batch

    D = deg.create("blur", T=10, kernel_size=7, sigma=1.5, padding="circular")
    x0 = torch.rand(64, 1, 16, 16) * 2 - 1
    g0, g1 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, ta = degrade_batch(D, x0, g0)
    b, tb = degrade_batch(D, x0, g1, input_noise=0.0)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert torch.equal(g0.get_state(), g1.get_state())      # σ = 0 draws nothing: the stream is unchanged
    g2 = torch.Generator().manual_seed(3)
    c, tc = degrade_batch(D, x0, g2, input_noise=0.01)
    assert torch.equal(tc, ta)
    d = c - a
    assert 0.009 < float(d.std()) < 0.011 and abs(float(d.mean())) < 1e-3


def test_input_noise_and_generation_settings_live_in_the_saved_config(tmp_path):
    from colddiff.config import RunConfig, check_resumable
    from colddiff.presets import preset

    cfg = preset("mnist5k-blur-ihd")
    assert cfg.degradation.input_noise == 0.01
    assert (cfg.generation.sampler, cfg.generation.delta) == ("stochastic", 0.0125)
    assert preset("mnist5k-blur-gen").degradation.input_noise == 0.0          # the paper: no noise
    back = RunConfig.load(cfg.save(tmp_path / "config.toml"))
    assert back.to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="degradation.input_noise"):
        preset("mnist5k-blur-gen").override(["degradation.input_noise=-0.1"])
    with pytest.raises(ConfigError, match="generation.delta"):
        preset("mnist5k-blur-gen").override(["generation.delta=-1"])
    saved = cfg.to_dict()
    check_resumable(saved, cfg.copy().override(["generation.delta=0.02", "train.steps=10"]))  # sampling may change
    with pytest.raises(ConfigError, match="degradation.input_noise"):
        check_resumable(saved, cfg.copy().override(["degradation.input_noise=0.02"]))     # what R learns may not
    old = cfg.to_dict()
    del old["generation"], old["degradation"]["input_noise"]                              # a run from before
    assert RunConfig.from_dict(old).generation.sampler == "algorithm2"

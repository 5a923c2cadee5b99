"""Speed switches change how fast, never what: compile, channels_last, fused Adam, the device-side
loss, DataLoader settings, prepared folders and CUDA-graph sampling (CPU: their fall-backs)."""
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colddiff import data, speed
from colddiff.cli import main
from colddiff.presets import preset
from colddiff.errors import ConfigError
from colddiff.graphs import GraphedRestorer
from colddiff.samplers import SAMPLERS, algorithm2
from colddiff.training import BatchStream, train

from conftest import make, make_run

TINY = ["train.steps=6", "train.batch_size=4", "train.grad_accum=2", "train.checkpoint_every=3",
        "train.keep_last=3", "train.log_every=1", "train.sample_every=0", "train.ema_start=2",
        "model.dim=8", "model.dim_mults=1,2", "model.attn_levels=", "model.num_res_blocks=1", "train.lr=1e-3",
        "train.device=cpu"]  # bit-exact resume is a CPU promise


def tiny(*extra):
    return preset("mnist5k-blur").override(TINY + list(extra))


def losses(run) -> list:
    return [json.loads(line)["loss"] for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def digest(run) -> str:
    return json.loads((Path(run) / "train_summary.json").read_text())["weights_sha256"][0]


def resumed_digest(tmp_path, cfg_extra, name):
    """Train 3 steps, then resume to 6 in a fresh train() call: the digest of the resumed run."""
    out = tmp_path / name
    train(tiny(*cfg_extra, "train.steps=3"), out, progress=False)
    train(tiny(*cfg_extra), out, resume=True, progress=False)
    return digest(out)


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize("key,value,words", [
    ("train.compile", "fast", "train.compile must be one of off, default"),
    ("train.fused_adam", "maybe", "train.fused_adam must be one of auto, on, off"),
    ("data.num_workers", "-2", "data.num_workers must be a whole number >= 0, or -1"),
])
def test_bad_speed_settings_are_one_line_errors(key, value, words):
    with pytest.raises(ConfigError, match=words):
        tiny(f"{key}={value}")


def test_cli_refuses_a_bad_compile_mode_with_exit_2(tmp_path, capsys):
    assert main(["train", "--preset", "mnist5k-blur", "--set", "train.compile=turbo", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.compile" in err[0]
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_fused_adam_is_chosen_by_device():
    p = [torch.nn.Parameter(torch.zeros(3))]
    assert not speed.make_adam(p, 1e-3, torch.device("cpu"), "auto").defaults.get("fused")
    assert speed.make_adam(p, 1e-3, torch.device("cpu"), "on").defaults["fused"] is True
    assert not speed.make_adam(p, 1e-3, torch.device("cpu"), "off").defaults.get("fused")


def test_auto_workers_only_for_decoded_files_on_a_gpu():
    assert speed.auto_workers(torch.device("cpu"), lazy=True) == 0
    assert speed.auto_workers(torch.device("cuda"), lazy=False) == 0
    n = speed.auto_workers(torch.device("cuda"), lazy=True)
    assert 0 <= n <= 8
    assert speed.loader_kwargs(2, torch.device("cuda")) == dict(num_workers=2, pin_memory=True, prefetch_factor=4,
                                                              persistent_workers=True)
    assert speed.loader_kwargs(0, torch.device("cpu")) == dict(num_workers=0, pin_memory=False)


# ---------------------------------------------------------------------------- loss on the device
def test_loss_accumulator_mean_equals_the_python_mean_and_names_the_first_bad_step():
    acc = speed.LossAccumulator(torch.device("cpu"))
    vals = [0.3, 0.25, 0.2125]
    for i, v in enumerate(vals, 1):
        acc.add(torch.tensor(v, dtype=torch.float32), i)
    mean, last, bad = acc.read()
    assert mean == sum(float(torch.tensor(v, dtype=torch.float32)) for v in vals) / 3
    assert last == float(torch.tensor(0.2125, dtype=torch.float32)) and bad == 0
    acc.add(torch.tensor(float("nan")), 4)
    acc.add(torch.tensor(float("inf")), 5)
    assert acc.read()[2] == 4
    acc.reset()
    acc.add(torch.tensor(1.0), 6)
    assert acc.read()[0] == 1.0


# ---------------------------------------------------------------------------- channels_last
def test_channels_last_trains_like_eager_and_resumes_exactly(tmp_path):
    train(tiny(), tmp_path / "eager", progress=False)
    train(tiny("train.channels_last=true"), tmp_path / "cl", progress=False)
    np.testing.assert_allclose(losses(tmp_path / "cl"), losses(tmp_path / "eager"), rtol=1e-4, atol=1e-5)
    assert resumed_digest(tmp_path, ["train.channels_last=true"], "cl-resumed") == digest(tmp_path / "cl")


def _compile_matches_eager_and_resumes(tmp_path):
    train(tiny(), tmp_path / "eager", progress=False)
    train(tiny("train.compile=default"), tmp_path / "compiled", progress=False)
    np.testing.assert_allclose(losses(tmp_path / "compiled"), losses(tmp_path / "eager"), rtol=1e-4, atol=1e-5)
    # resume: copy the run at step 3 and continue it; the weights must be bit-identical
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "compiled", part)
    for ck in (part / "checkpoints").glob("ckpt-00000006*"):
        ck.unlink()
    train(tiny("train.compile=default"), part, resume=True, progress=False)
    assert digest(part) == digest(tmp_path / "compiled")


def test_compiled_step_matches_eager_loss_and_resumes_exactly(tmp_path, monkeypatch):
    """torch.compile's graph capture of network + loss + backward (dynamo, AOTAutograd) with the
    aot_eager back end: seconds.  The inductor back end (C++ code generation) is the test below."""
    monkeypatch.setenv("COLDDIFF_COMPILE_BACKEND", "aot_eager")
    _compile_matches_eager_and_resumes(tmp_path)


@pytest.mark.skipif(not os.environ.get("COLDDIFF_SLOW_TESTS"),
                    reason="inductor compiles C++: about 7 min on the busy 2-core machine; "
                           "set COLDDIFF_SLOW_TESTS=1")
def test_inductor_compiled_step_matches_eager_loss_and_resumes_exactly(tmp_path):
    ok, why = speed.compiler_available()
    if not ok:
        pytest.skip(why)
    _compile_matches_eager_and_resumes(tmp_path)


# ---------------------------------------------------------------------------- data path
class Numbered(torch.utils.data.Dataset):
    """Image i is filled with the value i: batches tell which images they hold."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.full((1, 2, 2), float(i)), -1


def _ids(x):
    return x[:, 0, 0, 0].long().tolist()


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_stream_order_survives_epochs_and_restarts(workers):
    ref = BatchStream(Numbered(), 3, seed=5)
    seq = [_ids(ref.next()) for _ in range(7)]  # 3 full batches per epoch of 10: crosses two epochs
    s = BatchStream(Numbered(), 3, seed=5, num_workers=workers)
    assert [_ids(s.next()) for _ in range(7)] == seq
    r = BatchStream(Numbered(), 3, seed=5, num_workers=workers)  # restarted from the state after 4 batches
    for _ in range(4):
        r.next()
    st = r.state()
    r2 = BatchStream(Numbered(), 3, seed=5, num_workers=workers, epoch=st["epoch"], position=st["position"])
    assert [_ids(r2.next()) for _ in range(3)] == seq[4:]


def make_folder(root: Path, n=6, size=(20, 24)) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n // 2):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_prepared_folder_is_bit_identical_and_batched(tmp_path):
    from colddiff.data import prepare
    from colddiff.data.prepared import PreparedImages, bypass

    folder = make_folder(tmp_path / "faces")
    (folder / "cat" / "broken.png").write_bytes(b"not a png")
    [(path, man)] = prepare(f"folder:{folder}", image_size=16, channels=3, progress=False)
    assert path.parent == folder / ".colddiff" and path.suffix == ".npy" and path.with_suffix(".json").is_file()
    assert man["sources"] == 7 and len(man["labels"]) == 6 and len(man["skipped"]) == 1
    ds = data.load(f"folder:{folder}", image_size=16, channels=3)
    assert isinstance(ds, PreparedImages) and ds.classes == ["cat", "dog"]
    with bypass():
        lazy = data.load(f"folder:{folder}", image_size=16, channels=3)
    for i in range(len(lazy)):
        assert torch.equal(ds[i][0], lazy[i][0]) and ds[i][1] == lazy[i][1]
    assert torch.equal(ds.get_batch(torch.tensor([4, 0, 2])), torch.stack([lazy[i][0] for i in (4, 0, 2)]))
    # another size is another array: none prepared, so the files are decoded
    assert not isinstance(data.load(f"folder:{folder}", image_size=8, channels=3), PreparedImages)


def test_a_stale_prepared_folder_is_explained_and_ignored(tmp_path, caplog):
    from colddiff.data import prepare
    from colddiff.data.prepared import PreparedImages

    folder = make_folder(tmp_path / "faces")
    prepare(f"folder:{folder}", image_size=16, channels=3, progress=False)
    Image.new("RGB", (20, 24), "red").save(folder / "dog" / "new.png")
    with caplog.at_level(logging.WARNING, logger="colddiff.data"):
        ds = data.load(f"folder:{folder}", image_size=16, channels=3)
    assert not isinstance(ds, PreparedImages) and len(ds) == 7
    assert "changed since it was written" in caplog.text and "colddiff data prepare" in caplog.text
    # a truncated array is refused too
    prepare(f"folder:{folder}", image_size=16, channels=3, progress=False)
    npy = folder / ".colddiff" / "train-16px-3ch.npy"
    npy.write_bytes(npy.read_bytes()[:-50])
    assert not isinstance(data.load(f"folder:{folder}", image_size=16, channels=3), PreparedImages)


def test_training_reads_a_prepared_folder_like_its_files(tmp_path):
    folder = make_folder(tmp_path / "faces", n=12, size=(16, 16))
    sets = ["train.steps=2", "train.batch_size=4", "train.grad_accum=1", "train.log_every=1", "train.sample_every=0",
            f"data.name=folder:{folder}", "data.image_size=16", "data.channels=3", "model.dim=8",
            "model.dim_mults=1,2", "model.attn_levels=", "model.num_res_blocks=1", "train.device=cpu"]
    train(preset("mnist5k-blur").override(sets), tmp_path / "files", progress=False)
    assert main(["data", "prepare", f"folder:{folder}", "--size", "16", "--channels", "3", "--quiet"]) == 0
    train(preset("mnist5k-blur").override(sets), tmp_path / "prepared", progress=False)
    assert digest(tmp_path / "prepared") == digest(tmp_path / "files")


def test_cli_prepare_refuses_in_memory_sets(capsys):
    assert main(["data", "prepare", "mnist-5k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folder data sets" in err[0]


# ---------------------------------------------------------------------------- CUDA graphs
def test_graphed_restorer_falls_back_to_the_eager_loop_on_a_cpu(tmp_path):
    run = make_run(tmp_path / "run", dict(name="blur", T=6, params=dict(kernel_size=5, sigma=1.0)))
    x0 = torch.rand(5, 1, 28, 28) * 2 - 1
    x_t = run.degrade(x0, 6)
    G = GraphedRestorer(run.R)
    for name in ("algorithm1", "algorithm2"):
        assert torch.equal(SAMPLERS[name](G, run.D, x_t, 6), SAMPLERS[name](run.R, run.D, x_t, 6))
    assert G.stats["captured_whole"] == G.stats["replayed"] == 0
    want = run.sample(x_t, 6, batch_size=2)
    run.cuda_graphs = True
    assert torch.equal(run.sample(x_t, 6, batch_size=2), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("family,kw", [("blur", dict(T=12, kernel_size=7, sigma=1.5)), ("mask", dict(T=20))])
def test_cuda_graph_sampling_matches_the_eager_loop(family, kw):
    from colddiff.networks.unet import UNet

    torch.manual_seed(0)
    net = UNet(channels=3, dim=8, dim_mults=(1, 2), attn_levels=(), num_res_blocks=1).cuda().eval()
    D = make(family, **kw)
    R = lambda x, t: net(x, t)  # noqa: E731
    G = GraphedRestorer(R)
    x0 = torch.rand(4, 3, 32, 32, device="cuda") * 2 - 1
    ctx = D.context(x0, torch.Generator(device="cuda").manual_seed(1))
    x_t = D(x0, D.T, ctx)
    with torch.no_grad():
        want = algorithm2(R, D, x_t, D.T, ctx)
        first = algorithm2(G, D, x_t, D.T, ctx)      # eager, then captured
        again = algorithm2(G, D, x_t, D.T, ctx)      # replayed
        x0b = torch.rand(4, 3, 32, 32, device="cuda") * 2 - 1  # another batch of the same shape
        ctxb = D.context(x0b, torch.Generator(device="cuda").manual_seed(2))
        x_tb = D(x0b, D.T, ctxb)
        other = algorithm2(G, D, x_tb, D.T, ctxb)
        want_b = algorithm2(R, D, x_tb, D.T, ctxb)
    torch.testing.assert_close(first, want)
    torch.testing.assert_close(again, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(other, want_b, rtol=1e-4, atol=1e-4)
    assert G.stats["replayed"] >= 2 and G.stats["captured_whole"] + G.stats["captured_network"] == 1


def test_cuda_graphs_flag_gives_the_eager_images_on_a_cpu(tmp_path):
    from colddiff.images import read_image, save_image

    run = make_run(tmp_path / "run", dict(name="blur", T=4, params=dict(kernel_size=5, sigma=1.0)))
    ds, _ = run.held_out()
    save_image(run.D(ds[0][0][None], 3)[0], tmp_path / "in" / "d.png")
    for flag, out in (([], "eager"), (["--cuda-graphs"], "graphs")):
        assert main(["restore", str(run.folder), "--input", str(tmp_path / "in"), "--t", "3", "--device", "cpu",
                     "--out", str(tmp_path / out), "--no-progress", *flag]) == 0
    assert torch.equal(read_image(tmp_path / "graphs" / "d.algorithm2.png"),
                       read_image(tmp_path / "eager" / "d.algorithm2.png"))


# ---------------------------------------------------------------------------- the benchmarked step
def test_the_benchmarks_step_is_the_step_train_takes(tmp_path):
    """benchmarks.common.step_parts + train_step, step after step, end on train()'s weights (input noise on)."""
    from benchmarks.common import step_parts
    from colddiff.training import train_step, weights_digest

    cfg = tiny("degradation.input_noise=0.05").validate()
    train(cfg, tmp_path / "run", progress=False)
    torch.manual_seed(cfg.train.seed)
    base = cfg.build_model()
    ds = data.load(cfg.data.name, "train", image_size=cfg.data.image_size, channels=cfg.data.channels)
    parts = step_parts(cfg, base, ds, cfg.build_degradation(), torch.device("cpu"), cfg.train.seed)
    torch.manual_seed(cfg.train.seed + 1)  # as train() seeds dropout
    for step in range(cfg.train.steps):
        train_step(cfg, step, parts)
    assert weights_digest(parts.model) == digest(tmp_path / "run")


# ---------------------------------------------------------------------------- benchmark FLOPs and peaks
def test_flop_count_is_two_per_multiply_add_and_peaks_are_looked_up_by_name():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.flops import flops_per_image, peak_flops

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.Conv2d(5, 2, 1)

        def forward(self, x, t):
            return self.b(self.a(x))

    fwd = flops_per_image(Two(), 3, 8, train=False)
    assert fwd == 2 * (5 * 3 * 9 + 2 * 5) * 8 * 8
    assert flops_per_image(Two(), 3, 8, train=True) >= 2 * fwd  # + the weight gradients at least
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")[0] == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16")[0] == 756e12
    assert peak_flops("NVIDIA H200", "float32")[0] == 494e12  # TF32: train() allows it on CUDA
    assert peak_flops("NVIDIA A100-SXM4-80GB", "bfloat16")[0] == 312e12
    value, label = peak_flops("Tesla T4", "bfloat16")
    assert value is None and label.startswith("unknown device")
    assert peak_flops("AMD EPYC", "float32", "cpu")[0] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device syncs exist only with a GPU")
def test_a_training_step_never_waits_for_the_gpu():
    import contextlib

    from colddiff.graphs import _sync_errors
    from colddiff.objective import degrade_batch, l1_loss
    from colddiff.training import _update_ema

    cfg = tiny()
    dev = torch.device("cuda")
    D = cfg.build_degradation()
    net, ema = cfg.build_model().to(dev), cfg.build_model().to(dev)
    opt = speed.make_adam(net.parameters(), 1e-3, dev, "auto")
    loss_fn = speed.compiled(l1_loss(net, contextlib.nullcontext()), "off")
    acc = speed.LossAccumulator(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    x0_cpu = (torch.rand(4, 1, 28, 28) * 2 - 1).pin_memory()
    for i in range(2):  # the first step initialises (cuBLAS, Adam state); the second is watched
        with _sync_errors() if i else contextlib.nullcontext():
            x0 = x0_cpu.to(dev, non_blocking=True)
            x_t, t = degrade_batch(D, x0, gen)
            loss = loss_fn(x_t, t, x0)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            _update_ema(ema, net, 0.99, reset=False)
            acc.add(loss.detach(), i + 1)
    assert acc.read()[2] == 0


def test_a_late_read_non_finite_loss_still_names_its_step(tmp_path):
    """On a GPU the loss is read back only at log/checkpoint steps: the error names the first bad step."""
    from colddiff.training import TrainingError, _stop_if_not_finite

    _stop_if_not_finite(0, 0.5, 8, tmp_path)  # nothing wrong: no error
    with pytest.raises(TrainingError, match=r"loss became non-finite at step 5; .*No checkpoint was written yet"):
        _stop_if_not_finite(5, float("nan"), 8, tmp_path)
    with pytest.raises(TrainingError, match=r"loss became nan at step 8"):
        _stop_if_not_finite(8, float("nan"), 8, tmp_path)


def test_data_info_says_when_a_folder_is_read_from_its_prepared_copy(tmp_path, capsys):
    folder = make_folder(tmp_path / "faces", n=4, size=(8, 8))
    assert main(["data", "info", f"folder:{folder}"]) == 0
    assert "prepared copy" not in capsys.readouterr().out
    assert main(["data", "prepare", f"folder:{folder}", "--quiet"]) == 0
    assert "train: 4 images 3x8x8 uint8" in capsys.readouterr().out
    assert main(["data", "info", f"folder:{folder}"]) == 0
    assert "read from the prepared copy" in capsys.readouterr().out


def test_a_graph_entry_takes_each_batch_inputs_into_its_static_tensors():
    """What a replay reads: x_t and every tensor of the context copied into the captured buffers."""
    from colddiff.graphs import _Entry, _signature

    ctx = {"center": torch.zeros(2, 2), "extra": {"noise": torch.zeros(2, 1, 4, 4)}, "level": 3}
    entry = _Entry(torch.zeros(2, 1, 4, 4), ctx, whole=True)
    new = {"center": torch.ones(2, 2), "extra": {"noise": torch.full((2, 1, 4, 4), 2.0)}, "level": 3}
    x = torch.rand(2, 1, 4, 4)
    entry.load(x, new)
    assert torch.equal(entry.x, x) and torch.equal(entry.ctx["center"], new["center"])
    assert torch.equal(entry.ctx["extra"]["noise"], new["extra"]["noise"])
    assert entry.ctx["center"] is not new["center"] and ctx["center"].sum() == 0  # the caller's tensors untouched
    assert _signature(new) == _signature(ctx) != _signature({**new, "level": 4})  # other constants: another key

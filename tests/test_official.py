"""The authors' networks weight for weight: golden tests against fixtures made by their own code.

``scripts/authors_fixtures.py`` produced ``tests/fixtures/authors/<arch>.{pt,safetensors}`` once from the
authors' commit f8b1379 (arpitbansal297/Cold-Diffusion-Models): a narrow network's checkpoint as their
Trainer saves it, its output for inputs x at step index i, one training step of their loop, and their
EMA schedule.  Each test here holds colddiff to them: ``import-official`` gives their output, colddiff's
``train_step`` ends on their weights, and the EMA follows theirs step for step.  ``FIXTURES`` lists the
architectures (one entry per fixture pair; another architecture's fixture is one more entry).
"""
from __future__ import annotations

import contextlib
import json
import types
from pathlib import Path

import pytest
import torch

from colddiff import speed
from colddiff.cli import main
from colddiff.config import RunConfig
from colddiff.networks import build
from colddiff.objective import l1_loss
from colddiff.official import network_state, sha256
from colddiff.training import StepParts, train_step

HERE = Path(__file__).parent / "fixtures" / "authors"
# arch -> (a paper preset that trains it, the --set that narrows it to the fixture's widths)
FIXTURES = {
    "lucidrains-convnext": ("mnist-blur", ["model.dim=4", "model.dim_mults=1,2"]),
    "ddpm": ("cifar10-blur", ["data.channels=1", "model.dim=8", "model.dim_mults=1,2", "model.num_res_blocks=1",
                              "model.dropout=0"]),
    "convnext-snow": ("cifar10-snow", ["data.channels=1", "model.dim=4", "model.dim_mults=1,2"]),
}
TOL = 1e-5


def fixture(arch):
    from safetensors import safe_open

    with safe_open(str(HERE / f"{arch}.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def authors_weights(arch, which="ema"):
    d = torch.load(HERE / f"{arch}.pt", weights_only=True)
    return network_state(d[which])[0]


@pytest.fixture(params=list(FIXTURES))
def arch(request):
    return request.param


def _import(arch, out, extra=()):
    preset, sets = FIXTURES[arch]
    return main(["import-official", str(HERE / f"{arch}.pt"), "--preset", preset, "--set", *sets, *extra,
                 "--out", str(out)])


# ---------------------------------------------------------------------------- the network
def test_import_official_gives_the_authors_output(arch, tmp_path, capsys):
    from colddiff import load_run

    assert _import(arch, tmp_path / "run") == 0
    printed = capsys.readouterr()
    assert "step 1,234" in printed.out and "left out 10 tensors" in printed.err   # their blur kernels
    f, meta = fixture(arch)
    run = load_run(tmp_path / "run", device="cpu")
    assert run.step == 1234 and run.cfg.model.arch == arch
    with torch.no_grad():
        y = run.model(f["x"], f["i"] + 1)    # colddiff's t = their step index + 1
    assert (y - f["y"]).abs().max().item() < TOL
    # the raw weights are theirs too (they differ from the EMA in one tensor of the fixture)
    raw = load_run(tmp_path / "run", device="cpu", ema=False).model.state_dict()
    theirs = authors_weights(arch, "model")
    assert all(torch.equal(raw[k], theirs[k]) for k in theirs)
    assert not all(torch.equal(raw[k], run.model.state_dict()[k]) for k in theirs)
    # provenance: the file's name, its sha256, their step
    prov = json.loads((tmp_path / "run" / "imported.json").read_text())
    assert prov["source"] == f"{arch}.pt" and prov["step"] == 1234
    assert prov["sha256"] == sha256(HERE / f"{arch}.pt") == meta["checkpoint_sha256"]
    assert all(k.startswith("module.gaussian_kernels.") for k in prov["ignored"])


def test_an_imported_run_is_an_ordinary_run(tmp_path):
    """restore, generate and export take the imported folder as they take a trained run (on the embedded digits:
    generation fits its start statistics to the training data)."""
    from PIL import Image

    arch = next(iter(FIXTURES))
    assert _import(arch, tmp_path / "run", ["degradation.T=3", "data.name=mnist-5k", "data.image_size=28"]) == 0
    Image.fromarray((torch.rand(32, 32) * 255).byte().numpy(), "L").save(tmp_path / "in.png")
    assert main(["restore", str(tmp_path / "run"), "--input", str(tmp_path / "in.png"), "--t", "2",
                 "--out", str(tmp_path / "restored"), "--no-progress"]) == 0
    assert any(p.suffix == ".png" for p in (tmp_path / "restored").iterdir())
    assert main(["generate", str(tmp_path / "run"), "--n", "2", "--out", str(tmp_path / "gen"),
                 "--no-progress"]) == 0
    assert len([p for p in (tmp_path / "gen").rglob("*.png")]) >= 2
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "exported"), "--n", "2",
                 "--no-progress"]) == 0
    assert (tmp_path / "exported" / "model.safetensors").is_file()


def test_network_keys_are_found_under_every_wrapper_of_the_authors_scripts():
    """DataParallel(GaussianDiffusion(net)) everywhere; resolution-diffusion's celebA.py wraps net in DataParallel
    too."""
    w = torch.zeros(2)
    state = {"module.denoise_fn.a.weight": w, "module.denoise_fn.module.b.bias": w, "denoise_fn.c": w,
             "module.gaussian_kernels.0.weight": w, "module.num_timesteps": 3}
    net, other = network_state(state)
    assert sorted(net) == ["a.weight", "b.bias", "c"]
    assert other == ["module.gaussian_kernels.0.weight", "module.num_timesteps"]


# ---------------------------------------------------------------------------- one training step
@pytest.fixture
def one_thread():
    """The fixtures' step was taken on one thread (scripts/authors_fixtures.py): with two, the convolutions'
    gradient sums come out in another order, and Adam's first step, which moves each weight by about +-lr
    whatever its gradient's size, turns a 1e-9 difference in a near-zero gradient into 1e-5 in the weights."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_step_ends_on_the_authors_weights(arch, one_thread):
    """From the same weights, batches and steps: their two micro-batches of L1 / 2, Adam 2e-5, zero_grad;
    colddiff's train_step (their blurred inputs are fed in place of the ones train_step would draw)."""
    f, meta = fixture(arch)
    model_config = json.loads(meta["model_config"])
    cfg = RunConfig()
    cfg.data.channels = model_config["channels"]
    cfg.train.lr, cfg.train.grad_accum = float(meta["lr"]), int(meta["accum"])
    model = build(model_config)
    model.load_state_dict(authors_weights(arch, "ema"))   # the weights before their step
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema = build(model_config).requires_grad_(False)
    opt = speed.make_adam(model.parameters(), cfg.train.lr, torch.device("cpu"), "off")
    loss = l1_loss(model, contextlib.nullcontext())
    micro = iter(range(cfg.train.grad_accum))
    seen = []

    def their_inputs(x_t, t, x0):
        k = next(micro)
        assert torch.equal(x0, f[f"batch{k}.x0"])
        out = loss(f[f"batch{k}.x_t"], f[f"batch{k}.i"] + 1, x0)
        seen.append(out.item())
        return out

    batches = iter([f[f"batch{k}.x0"] for k in range(cfg.train.grad_accum)])
    stream = types.SimpleNamespace(next=lambda: next(batches))
    D = types.SimpleNamespace(T=int(meta["T"]), context=lambda x0, g: None, observe=lambda x0, t, ctx, **kw: x0)
    train_step(cfg, 0, StepParts(model, ema, opt, their_inputs, stream, D, torch.Generator().manual_seed(0)))

    assert seen == pytest.approx(json.loads(meta["losses"]), abs=TOL)
    after = model.state_dict()
    moved = max((after[k] - before[k]).abs().max().item() for k in after)
    assert moved > 1e-6   # the step changed the weights (Adam's first step moves each by ~lr)
    worst = max((after[k] - f[f"after.{k}"]).abs().max().item() for k in after)
    assert worst < TOL, f"colddiff's step differs from the authors' by {worst}"


# ---------------------------------------------------------------------------- the EMA schedule
class _Scripted(torch.optim.Optimizer):
    """An 'optimizer' that sets the weights after step s to trajectory[s] (what the EMA then follows)."""

    def __init__(self, params, trajectory):
        super().__init__(params, {})
        self.trajectory, self.s = trajectory, 0

    @torch.no_grad()
    def step(self, closure=None):
        self.param_groups[0]["params"][0].copy_(self.trajectory[self.s][None])
        self.s += 1


def test_ema_schedule_matches_the_authors_step_for_step():
    """Their Trainer: after optimizer step s (0-based), every 10th s, the EMA is a copy before s = 2000 and
    0.995 EMA + 0.005 weights from then on.  colddiff's train_step with the same settings, 2,100 steps."""
    f, meta = fixture(next(iter(FIXTURES)))
    decay, start, every = json.loads(meta["ema"])
    trajectory, theirs = f["ema_trajectory"], f["ema_after"]
    cfg = RunConfig()
    cfg.train.grad_accum, cfg.train.ema_decay, cfg.train.ema_start, cfg.train.ema_every = 1, decay, start, every
    model = torch.nn.Linear(2, 1, bias=False)
    ema = torch.nn.Linear(2, 1, bias=False).requires_grad_(False)
    ema.load_state_dict(model.state_dict())   # as train builds it
    parts = StepParts(model, ema, _Scripted(model.parameters(), trajectory),
                      lambda x_t, t, x0: (model.weight.sum() * 0).requires_grad_(),
                      types.SimpleNamespace(next=lambda: torch.zeros(1, 1, 2, 2)),
                      types.SimpleNamespace(T=1, context=lambda x0, g: None, observe=lambda x0, t, ctx, **kw: x0),
                      torch.Generator().manual_seed(0))
    for s in range(len(trajectory)):
        train_step(cfg, s, parts)
        assert (ema.weight[0] - theirs[s]).abs().max().item() < TOL, f"the EMA differs from the authors' after step {s}"


# ---------------------------------------------------------------------------- bad input: one line, exit 2
def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_import_official_refuses_bad_input(tmp_path, capsys):
    arch = next(iter(FIXTURES))
    ck = str(HERE / f"{arch}.pt")
    narrow = ["--set", *FIXTURES[arch][1]]
    assert main(["import-official", str(tmp_path / "nope.pt"), "--preset", "mnist-blur", "--out",
                 str(tmp_path / "a")]) == 2
    _one_line(capsys, "not found")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert main(["import-official", str(text), "--preset", "mnist-blur", "--out", str(tmp_path / "b")]) == 2
    _one_line(capsys, "not a PyTorch checkpoint")
    code = tmp_path / "code.pt"
    torch.save({"step": 1, "model": {"x": torch.zeros(1)}, "ema": contextlib.nullcontext()}, code)
    assert main(["import-official", str(code), "--preset", "mnist-blur", "--out", str(tmp_path / "c")]) == 2
    _one_line(capsys, "needs code")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    assert main(["import-official", str(other), "--preset", "mnist-blur", "--out", str(tmp_path / "d")]) == 2
    _one_line(capsys, "not a checkpoint of the authors' Trainer")
    # the wrong preset: celeba's network is 64 wide and has 3 channels
    assert main(["import-official", ck, "--preset", "celeba-blur", "--out", str(tmp_path / "e")]) == 2
    _one_line(capsys, "time_mlp.1.weight", "(16, 4)", "(256, 64)")
    # the right architecture at other widths: the first tensor of another shape is named
    assert main(["import-official", ck, "--preset", "mnist-blur", "--set", "model.dim=4", "model.dim_mults=1,2,2",
                 "--out", str(tmp_path / "f")]) == 2
    _one_line(capsys, "ups.0.0.net.1.weight has shape (8, 16, 3, 3)", "(16, 16, 3, 3)")
    assert main(["import-official", ck, "--preset", "mnist-blur", "--set", "model.arch=colddiff", "model.dim=8",
                 "--out", str(tmp_path / "g")]) == 2
    _one_line(capsys, "does not have")
    assert main(["import-official", ck, "--preset", "mnist-blur", "--set", "model.arch=unet9", "--out",
                 str(tmp_path / "h")]) == 2
    _one_line(capsys, "model.arch", "lucidrains-convnext")
    # the output rule: a folder of the user's files is never written into
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.png").write_bytes(b"x")
    assert main(["import-official", ck, "--preset", "mnist-blur", *narrow, "--out", str(mine)]) == 2
    _one_line(capsys, "photo.png")
    assert sorted(p.name for p in mine.iterdir()) == ["photo.png"]
    for name in "abcdefgh":
        assert not (tmp_path / name).exists()   # nothing half-written


# ---------------------------------------------------------------------------- the presets' networks
def test_paper_presets_train_the_authors_network_at_their_parameter_count(capsys):
    from colddiff.networks import parameters_of
    from colddiff.presets import PRESETS

    assert PRESETS["mnist-blur"].model.arch == "lucidrains-convnext"
    assert parameters_of(PRESETS["mnist-blur"].model_kwargs()) == 56_612_916   # their Unet(64, (1, 2, 4, 8), 1 ch)
    assert parameters_of(PRESETS["celeba-blur-gen"].model_kwargs()) == 56_615_708
    from colddiff.paper import AUTHORS_NETWORK, UNET, provenance

    for name, text in AUTHORS_NETWORK.items():   # the provenance names the network the preset trains
        assert (PRESETS[name].model.arch == "lucidrains-convnext") == (text == UNET), name
        assert provenance(name).network == text
    for name, p in PRESETS.items():   # the CPU presets keep colddiff's own small U-Net
        if name.startswith(("mnist5k-", "folder-")):
            assert p.model.arch == "colddiff", name
    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    assert "56,612,916" in out and "lucidrains-convnext" in out
    assert all(name in out for name in PRESETS)
    head, _, *rows = out.split("the presets' networks:\n", 1)[1].splitlines()
    col = head.index("presets")                  # every row's presets start under the header: nothing overflows
    assert rows and all(r[col - 2:col] == "  " and r[col] != " " for r in rows), rows


def test_a_run_trains_saves_and_loads_the_architecture_it_names(tmp_path):
    from colddiff import load_run

    out = tmp_path / "run"
    assert main(["train", "--preset", "mnist5k-blur", "--set", "model.arch=lucidrains-convnext", "model.dim=4",
                 "model.dim_mults=1,2", "train.steps=2", "train.batch_size=2", "train.checkpoint_every=2",
                 "train.sample_every=0", "--out", str(out), "--no-progress"]) == 0
    run = load_run(out, device="cpu")
    assert run.cfg.model.arch == "lucidrains-convnext" and type(run.model).__name__ == "ConvNeXtUNet"
    with torch.no_grad():
        assert run.model(torch.zeros(1, 1, 27, 27), 3).shape == (1, 1, 27, 27)   # padded to 28, cropped back

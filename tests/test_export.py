"""Exported model folders (Hub layout): what is in them, and that they load to the very same model.

The round trip is checked bit for bit on the CPU: a run folder and its export give identical
restorations and identical images from `colddiff restore` / `colddiff generate`.  hf:// is
checked against a Hub cache laid out on disk (offline) and against a missing huggingface_hub;
nothing here touches the network.
"""
import json
import os
import sys
import types

import pytest
import torch
from safetensors import safe_open

from colddiff import __version__
from colddiff.checkpoint import checkpoint_path, save_checkpoint
from colddiff.cli import main
from colddiff.config import DataConfig, DegradationConfig, ModelConfig, RunConfig
from colddiff.errors import InputError
from colddiff.evaluation import evaluate, write_evaluation
from colddiff.checkpoint import is_export
from colddiff.hub import parse_hf
from colddiff.runs import load_run

from conftest import TINY_NET

BLUR = dict(name="blur", T=4, input_noise=0.0, params=dict(kernel_size=7, sigma=1.5, padding="circular"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder whose checkpoint has raw weights, different EMA weights, optimizer state and an evaluation."""
    folder = tmp_path_factory.mktemp("run")
    cfg = RunConfig(preset="custom", data=DataConfig(name="mnist-5k", image_size=28, channels=1),
                    degradation=DegradationConfig(**BLUR), model=ModelConfig(**TINY_NET))
    torch.manual_seed(0)
    net = cfg.build_model()
    raw = net.state_dict()
    ema = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in raw.items()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.zeros(2, 1, 28, 28), torch.ones(2, dtype=torch.long)).sum().backward()
    opt.step()
    save_checkpoint(checkpoint_path(folder / "checkpoints", 7), config=cfg.to_dict(), model=raw, ema=ema,
                    optimizer=opt.state_dict(), state={"step": 7})
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 7, "loss": 0.5}) + "\n")
    run = load_run(folder, device="cpu")
    write_evaluation(evaluate(run, n=8, fid="none", classifier=False, progress=False), folder / "evaluation")
    return folder


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "model"
    assert main(["export", str(trained), "--out", str(out), "--n", "3", "--device", "cpu", "--no-progress"]) == 0
    return out


def test_export_holds_ema_weights_config_card_and_samples(trained, exported):
    assert is_export(exported)
    with safe_open(str(exported / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        saved = {k: f.get_tensor(k) for k in keys}
    run = load_run(trained, device="cpu")                # EMA weights
    raw = load_run(trained, device="cpu", ema=False)
    assert keys == set(run.model.state_dict())           # weights only: no optimizer moments, no RNG state
    assert all(torch.equal(saved[k], v) for k, v in run.model.state_dict().items())
    assert not all(torch.equal(saved[k], v) for k, v in raw.model.state_dict().items())
    size = (exported / "model.safetensors").stat().st_size
    assert size < 0.6 * (trained / "checkpoints" / "ckpt-00000007.safetensors").stat().st_size

    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["colddiff_version"] == __version__ and cfg["step"] == 7 and cfg["weights"] == "ema"
    assert cfg["config"]["degradation"] == BLUR and RunConfig.from_dict(cfg["config"]) == run.cfg
    assert RunConfig.load(exported / "config.toml") == run.cfg

    card = (exported / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: colddiff" in front and "license: cc-by-sa-3.0" in front
    assert "- ylecun/mnist" in front and "- cold-diffusion" in front and "- deblurring" in front
    assert "| Algorithm 2 |" in card and "| Degraded |" in card     # the evaluation table
    assert "colddiff train --config config.toml" in card and "![samples](samples.png)" in card
    from PIL import Image

    im = Image.open(exported / "samples.png")
    assert im.width > 4 * 28 and im.height > 3 * 28            # clean | degraded | direct | Alg. 1 | Alg. 2, 3 rows
    assert (exported / "evaluation" / "restoration.json").exists()
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in exported.rglob("*") if p.is_file())   # readable by others


def test_export_load_round_trip_is_bit_identical(trained, exported):
    a, b = load_run(trained, device="cpu"), load_run(exported, device="cpu")
    c = load_run(exported / "model.safetensors", device="cpu")
    assert b.step == a.step == 7 and b.ema and b.cfg == a.cfg and repr(b.D) == repr(a.D)
    x0 = torch.rand(5, 1, 28, 28) * 2 - 1
    x_t = a.degrade(x0, 3)
    assert torch.equal(x_t, b.degrade(x0, 3))
    for sampler in ("direct", "algorithm1", "algorithm2"):
        ya = a.sample(x_t, 3, sampler=sampler)
        assert torch.equal(ya, b.sample(x_t, 3, sampler=sampler))
        assert torch.equal(ya, c.sample(x_t, 3, sampler=sampler))


def test_every_run_command_takes_the_export(trained, exported, tmp_path, capsys):
    from colddiff.images import save_image

    blurry = tmp_path / "in"
    blurry.mkdir()
    run = load_run(trained, device="cpu")
    for i in range(2):
        save_image(run.degrade(torch.rand(1, 1, 28, 28) * 2 - 1, 2)[0], blurry / f"{i}.png")
    outs = {}
    for name, folder in (("run", trained), ("export", exported)):
        assert main(["restore", str(folder), "--input", str(blurry), "--t", "auto", "--out",
                     str(tmp_path / f"r-{name}"), "--device", "cpu", "--no-progress"]) == 0
        assert main(["generate", str(folder), "--n", "3", "--out", str(tmp_path / f"g-{name}"), "--device", "cpu",
                     "--no-progress"]) == 0
        outs[name] = {p.relative_to(tmp_path / f"{kind}-{name}"): p.read_bytes()
                      for kind in ("r", "g") for p in sorted((tmp_path / f"{kind}-{name}").glob("*.png"))}
    assert outs["run"] == outs["export"] and len(outs["run"]) >= 2 * 2 + 3
    assert main(["evaluate", str(exported), "--n", "4", "--fid", "none", "--no-classifier", "--no-progress"]) == 0
    assert main(["report", str(exported), "--no-progress"]) == 0
    html = (exported / "report.html").read_text()
    assert "Algorithm 2" in html and "model.safetensors" in html


def test_export_refusals_are_one_line(trained, exported, tmp_path, capsys):
    assert main(["evaluate", str(exported), "--raw", "--n", "2"]) == 2
    assert "only the EMA weights" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["export", str(trained), "--out", str(busy)]) == 2
    assert "files colddiff did not write" in capsys.readouterr().err and (busy / "notes.txt").read_text() == "mine"
    assert main(["export", str(trained), "--out", str(trained)]) == 2
    assert "is the input folder itself" in capsys.readouterr().err
    # exporting again over an export replaces it
    assert main(["export", str(exported), "--out", str(tmp_path / "again"), "--n", "2", "--no-progress"]) == 0
    with safe_open(str(tmp_path / "again" / "model.safetensors"), framework="pt") as f1, \
            safe_open(str(exported / "model.safetensors"), framework="pt") as f2:
        assert all(torch.equal(f1.get_tensor(k), f2.get_tensor(k)) for k in f2.keys())
    stale = tmp_path / "again" / "evaluation" / "restoration-t9.json"
    stale.write_text("{}")                  # a table of an earlier export (its manifest lists it): gone after
    manifest = tmp_path / "again" / ".colddiff-output.json"   # exporting over it
    man = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**man, "files": man["files"] + ["evaluation/restoration-t9.json"]}))
    assert main(["export", str(trained), "--out", str(tmp_path / "again"), "--n", "2", "--no-progress"]) == 0
    assert not stale.exists() and (tmp_path / "again" / "evaluation" / "restoration.json").exists()
    mine = tmp_path / "again" / "notes.md"  # a file colddiff did not write: the export is refused, the file kept
    mine.write_text("mine")
    assert main(["export", str(trained), "--out", str(tmp_path / "again"), "--n", "2", "--no-progress"]) == 2
    assert "notes.md, a file that colddiff did not write" in capsys.readouterr().err and mine.read_text() == "mine"


def test_hf_addresses_parse_and_bad_ones_are_one_line(capsys):
    assert parse_hf("hf://owner/name") == ("owner/name", None)
    assert parse_hf("hf://owner/name@v1.0") == ("owner/name", "v1.0")
    for bad in ("hf://noslash", "hf://a/b/c", "hf://a/b@"):
        assert main(["evaluate", bad]) == 2
        assert "hf://owner/name" in capsys.readouterr().err


def test_hf_and_push_without_huggingface_hub_say_what_to_install(trained, exported, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)   # import fails as if not installed
    assert main(["restore", "hf://someone/model", "--input", str(tmp_path / "in.png"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install huggingface_hub" in err
    assert main(["export", str(trained), "--out", str(tmp_path / "e"), "--n", "2", "--push", "me/model",
                 "--no-progress"]) == 2
    assert "pip install huggingface_hub" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()   # checked before anything is written


def test_push_uploads_the_folder_through_the_hub_api(exported, monkeypatch, capsys, tmp_path):
    calls = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create", kw))

        def upload_folder(self, **kw):
            calls.append(("upload", kw))
            raise OSError("401 Client Error: Unauthorized")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(HfApi=FakeApi))
    from colddiff.hub import push

    with pytest.raises(InputError) as e:
        push(exported, "me/model")
    assert "upload to me/model failed" in str(e.value) and "huggingface-cli login" in str(e.value)
    assert calls[0] == ("create", dict(repo_id="me/model", repo_type="model", private=False, exist_ok=True))
    assert calls[1][1]["folder_path"] == str(exported) and calls[1][1]["repo_id"] == "me/model"
    assert calls[1][1]["ignore_patterns"] == [".colddiff-output.json"]   # the local manifest is not uploaded


def test_hf_address_loads_from_the_hub_cache_offline(exported, tmp_path, monkeypatch):
    if os.environ.get("COLDDIFF_REQUIRE_DEMO") == "1":   # CI installs the demo extra, which brings huggingface_hub
        import huggingface_hub as hub
    else:
        hub = pytest.importorskip("huggingface_hub")
    import shutil

    from huggingface_hub import constants

    # the Hub cache layout: models--OWNER--NAME/{refs/main, snapshots/COMMIT/...}
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--cold-blur"
    shutil.copytree(exported, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = load_run(exported, device="cpu")
    for spec in ("hf://someone/cold-blur", f"hf://someone/cold-blur@{commit}"):
        b = load_run(spec, device="cpu")
        assert b.folder == repo / "snapshots" / commit
        x_t = torch.rand(2, 1, 28, 28) * 2 - 1
        assert torch.equal(a.sample(x_t, 4), b.sample(x_t, 4))
    with pytest.raises(InputError) as e:
        load_run("hf://someone/not-there", device="cpu")
    assert "cannot get hf://someone/not-there" in str(e.value)
    del hub

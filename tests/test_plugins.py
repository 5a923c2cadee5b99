"""User degradations as plug-ins, the property suite over the registry, and the seam's library rules
(config resolution, the resume rule, checkpoint headers, one sampler signature)."""
import json
import os
import subprocess
import sys
import textwrap
import re
from pathlib import Path

import pytest
import torch

import colddiff.degradations as deg
from colddiff.checkpoint import checkpoint_path, read_meta, save_checkpoint
from colddiff.cli import main
from colddiff.config import RunConfig
from colddiff.presets import preset, resolve_config
from colddiff.degradations.checks import check, example
from colddiff.errors import ConfigError
from colddiff.samplers import SAMPLERS, sampler_names
from conftest import installed_plugin_env

# The complete plug-in the docs show (the "fade.py" block of docs/plugins.md), as a user saves it in a folder of
# their own.
PLUGIN_PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FADE = next(b for b in re.findall(r"```python\n(.*?)```", PLUGIN_PAGE.read_text(), re.S) if b.startswith('"""fade.py'))

# A broken one: its closed form loops over steps, and its step disagrees with it.
SLOW = textwrap.dedent('''
    import torch
    from colddiff.degradations import Degradation, register


    @register("slowfade")
    class SlowFade(Degradation):
        def __init__(self, T: int = 10, image_size=None, channels=None):
            super().__init__(T, image_size=image_size, channels=channels)

        def forward(self, x0, t, ctx):
            x = x0
            for _ in range(int(t.max())):
                x = x * 0.9
            return x

        def step(self, x, s, ctx):
            return x * 0.5
''')


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("my-plugins")
    (d / "fade.py").write_text(FADE)
    (d / "slowfade.py").write_text(SLOW)
    return d


TINY = ["train.steps=4", "train.batch_size=4", "train.grad_accum=1", "train.checkpoint_every=4",
        "train.sample_every=0", "train.log_every=2", "model.dim=8", "model.dim_mults=1,2", "model.attn_levels=",
        "model.num_res_blocks=1", "degradation.T=6"]


def test_a_plugin_from_its_own_folder_trains_evaluates_restores_and_passes_the_checks(plugin_dir, tmp_path, capsys,
                                                                                        clf):
    plug = str(plugin_dir / "fade.py")
    assert main(["--plugin", plug, "check-degradation", "fade"]) == 0
    out = capsys.readouterr().out
    assert "7 passed, 0 failed, 0 skipped" in out
    assert "FAIL" not in out and "pass  closed form == steps" in out and "pass  cost flat in t" in out
    run = tmp_path / "run"
    # --set degradation.name=fade on a blur preset drops the blur's parameters (kernel_size, sigma, ...)
    assert main(["--plugin", plug, "train", "--preset", "mnist5k-blur", "--set", "degradation.name=fade", *TINY,
                 "--no-progress", "--out", str(run)]) == 0
    cfg = RunConfig.load(run / "config.toml")
    assert cfg.degradation.name == "fade" and cfg.degradation.params == {} and cfg.degradation.T == 6
    assert main(["--plugin", plug, "evaluate", str(run), "--n", "6", "--fid", "none", "--no-progress"]) == 0
    assert "Algorithm 2" in capsys.readouterr().out
    (tmp_path / "in").mkdir()
    from colddiff.images import save_image
    save_image(torch.zeros(1, 28, 28), tmp_path / "in" / "a.png")
    assert main(["--plugin", plug, "restore", str(run), "--input", str(tmp_path / "in"), "--t", "3",
                 "--out", str(tmp_path / "restored"), "--no-progress"]) == 0
    assert (tmp_path / "restored" / "a.algorithm2.png").is_file()


def test_plugins_from_the_environment_reach_a_fresh_process(plugin_dir):
    env = dict(os.environ, COLDDIFF_PLUGINS=str(plugin_dir / "fade.py"))
    r = subprocess.run([sys.executable, "-m", "colddiff", "degradations"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "fade" in r.stdout and "Fade towards black" in r.stdout
    r = subprocess.run([sys.executable, "-m", "colddiff", "degradations"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "COLDDIFF_PLUGINS"})
    assert r.returncode == 0 and "fade" not in r.stdout.split()


def test_an_installed_plugin_is_found_through_its_entry_point(tmp_path):
    env = installed_plugin_env(tmp_path, "fadepkg", FADE, "fade")
    r = subprocess.run([sys.executable, "-m", "colddiff", "check-degradation", "fade"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "7 passed, 0 failed" in r.stdout, r.stderr


def test_a_broken_plugin_fails_the_checks_with_one_line(plugin_dir, capsys):
    assert main(["--plugin", str(plugin_dir / "slowfade.py"), "check-degradation", "slowfade"]) == 2
    cap = capsys.readouterr()
    assert "FAIL  closed form == steps" in cap.out and "FAIL  cost flat in t" in cap.out
    assert "FAIL  batch axis" in cap.out  # it also ignores per-sample t (loops to t.max())
    assert cap.err.count("\n") == 1 and "slowfade fails 3 properties" in cap.err


@pytest.mark.parametrize("spec,message", [("nope.py", "plug-in file not found"),
                                          ("no_such_module_xyz", "plug-in module 'no_such_module_xyz' not found")])
def test_bad_plugins_are_one_line_errors(spec, message, capsys):
    assert main(["--plugin", spec, "degradations"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_plugin_that_raises_on_import_is_named(tmp_path, capsys):
    (tmp_path / "bad.py").write_text("raise RuntimeError('oops')\n")
    assert main(["--plugin", str(tmp_path / "bad.py"), "degradations"]) == 2
    assert "failed to load: RuntimeError: oops" in capsys.readouterr().err


def test_unknown_degradation_hints_at_plugins():
    with pytest.raises(ConfigError, match="--plugin"):
        deg.create("definitely-not-registered")


# ---------------------------------------------------------------------------- the property suite
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", deg.names())
def test_every_registered_family_passes_the_property_suite(name, channels):
    results = check(example(deg.get_class(name), image_size=16, channels=channels))
    failed = [r.line() for r in results if r.ok is False]
    assert not failed, failed
    assert sum(r.ok is True for r in results) >= 6


# ---------------------------------------------------------------------------- samplers and configs
def test_every_sampler_has_one_signature_and_its_metadata():
    D = deg.create("noise", T=3)
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    ctx = D.context(x0, torch.Generator().manual_seed(0))
    oracle = lambda x, t: x0  # noqa: E731
    for name, fn in SAMPLERS.items():
        calls = []
        out = fn(oracle, D, D(x0, 3, ctx), 3, ctx, callback=lambda s, x, y: calls.append(s), generator=None)
        # the perfect restorer gives x0, except for a sampler that says it does not (the authors' shifted
        # update stops one step short, at D(x0, 1))
        assert torch.allclose(out, x0, atol=1e-6) == fn.oracle_exact, name
        assert calls == ([3] if fn.one_call else [3, 2, 1]) and fn.label and fn.sampler_name == name
    assert sampler_names(deg.create("blur", T=3)) == ["direct", "algorithm1", "algorithm2", "authors-shifted",
                                                      "stochastic"]
    assert "ddim" in sampler_names(D)


def test_set_takes_several_pairs_and_a_new_family_drops_the_old_parameters(tmp_path):
    cfg = resolve_config("mnist5k-blur", None, ["train.steps=7", "model.dim=8", "degradation.name=mask",
                                                "degradation.position=center"])
    assert cfg.train.steps == 7 and cfg.model.dim == 8
    assert cfg.degradation.name == "mask" and cfg.degradation.params == {"position": "center"}
    toml = tmp_path / "mine.toml"
    toml.write_text('[degradation]\nname = "desaturate"\nT = 12\n')
    cfg = resolve_config("mnist5k-blur", toml, [])
    assert cfg.degradation.name == "desaturate" and cfg.degradation.params == {} and cfg.degradation.T == 12
    cfg.build_degradation()
    with pytest.raises(ConfigError, match="is a folder"):
        resolve_config("mnist5k-blur", tmp_path, [])


def test_resume_refuses_changed_settings_in_the_library_too(tmp_path):
    from colddiff.training import train

    cfg = preset("mnist5k-blur").override(TINY)
    train(cfg, tmp_path / "run", progress=False)
    changed = cfg.copy().override(["train.steps=8", "degradation.sigma=2.0"])
    with pytest.raises(ConfigError, match="degradation.params differ"):
        train(changed, tmp_path / "run", resume=True, progress=False)
    more = cfg.copy().override(["train.steps=6"])
    assert train(more, tmp_path / "run", resume=True, progress=False)["step"] == 6


def test_checkpoint_header_is_read_without_its_tensors(tmp_path):
    cfg = preset("mnist5k-blur")
    path = checkpoint_path(tmp_path, 5)
    save_checkpoint(path, config=cfg.to_dict(), model={"w": torch.zeros(3)}, state={"step": 5})
    config, state = read_meta(path)
    assert config == json.loads(json.dumps(cfg.to_dict())) and state["step"] == 5

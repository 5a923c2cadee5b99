"""Optional packages fail cleanly and leave nothing (issue 30, class 5): a TensorBoard, W&B, huggingface_hub or Gradio
that is missing, broken, too old or fails to start is one line naming the package and how to install it, and no run
folder or output is left behind."""
import sys
import types

import pytest

from colddiff import extras
from colddiff.cli import main
from colddiff.errors import ConfigError

TINY = ["train.steps=2", "train.batch_size=4", "train.grad_accum=1", "train.checkpoint_every=2", "train.log_every=1",
        "train.sample_every=0", "model.dim=8", "model.dim_mults=1,2"]


def fake_package(tmp_path, monkeypatch, name: str, body: str):
    """A package ``name`` first on sys.path, with ``body`` as its __init__.py (whatever is installed is shadowed)."""
    root = tmp_path / "site"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(body)
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.syspath_prepend(str(root))


def train_args(out, log):
    return ["train", "--preset", "mnist5k-blur", "--no-progress", "--out", str(out), "--log", log,
            *[a for s in TINY for a in ("--set", s)]]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_tensorboard_whose_import_raises_is_one_line_and_no_run_folder(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path, monkeypatch, "tensorboard", "raise RuntimeError('protobuf descriptors clash')\n")
    out = tmp_path / "run"
    assert main(train_args(out, "tensorboard")) == 2
    err = one_line(capsys)
    assert "--log tensorboard needs the tensorboard package, whose import fails here (RuntimeError: protobuf " \
           "descriptors clash)" in err and "pip install 'colddiff[tensorboard]'" in err and "--log none" in err
    assert not out.exists()


def test_a_wandb_too_old_to_have_init_is_one_line_and_an_empty_out_stays_empty(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path, monkeypatch, "wandb", "__version__ = '0.0.1'\n")
    out = tmp_path / "run"
    out.mkdir()
    assert main(train_args(out, "wandb")) == 2
    err = one_line(capsys)
    assert "--log wandb needs wandb.init, which the installed wandb 0.0.1 lacks (too old or broken)" in err
    assert "pip install 'colddiff[wandb]'" in err
    assert list(out.iterdir()) == []


def test_a_wandb_that_fails_to_start_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path, monkeypatch, "wandb",
                 "import os\n"
                 "def init(dir, **kw):\n"
                 "    os.makedirs(os.path.join(dir, 'wandb', 'run-1'))\n"
                 "    raise PermissionError('api key not configured (no-tty)')\n")
    out, existing = tmp_path / "run", tmp_path / "mine"
    existing.mkdir()
    for folder in (out, existing):
        assert main(train_args(folder, "wandb")) == 2
        err = one_line(capsys)
        assert err == ("colddiff: error: --log wandb: wandb failed to start (PermissionError: api key not configured "
                       "(no-tty)); fix it, or train with --log none (metrics.jsonl is always written)")
    assert not out.exists() and list(existing.iterdir()) == []


def test_hf_models_with_a_broken_huggingface_hub_are_one_line_before_any_output(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path, monkeypatch, "huggingface_hub", "import not_a_module_anywhere\n")
    out = tmp_path / "gen"
    assert main(["generate", "hf://me/model", "--out", str(out), "--no-progress"]) == 2
    err = one_line(capsys)
    assert "hf:// models needs the huggingface_hub package, whose import fails here (ModuleNotFoundError: No " \
           "module named 'not_a_module_anywhere')" in err and "pip install huggingface_hub" in err
    assert not out.exists()


def test_push_with_a_huggingface_hub_without_hfapi_names_what_is_missing(monkeypatch):
    from colddiff.hub import check_push

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.ModuleType("huggingface_hub"))
    with pytest.raises(ConfigError, match=r"--push needs huggingface_hub.HfApi, which the installed huggingface_hub "
                                          r"lacks \(too old or broken\); install a current one: pip install "):
        check_push("me/model")


def test_the_demo_with_a_broken_gradio_says_which_package_and_how_to_install(tmp_path, monkeypatch):
    from colddiff.demo import DEMO_INSTALL, _gradio

    fake_package(tmp_path, monkeypatch, "gradio", "raise ImportError('cannot import name HfFolder')\n")
    with pytest.raises(ConfigError) as e:
        _gradio()
    assert str(e.value) == ("colddiff demo needs the gradio package, whose import fails here (ImportError: cannot "
                            f"import name HfFolder); reinstall it: {DEMO_INSTALL}")


def test_require_tells_a_missing_package_from_a_broken_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "colddiff_absent_pkg", None)
    with pytest.raises(ConfigError, match="^X needs the colddiff_absent_pkg package, which is not installed: pip x$"):
        extras.require("colddiff_absent_pkg", package="colddiff_absent_pkg", needed_for="X", install="pip x")
    assert extras.require("json", package="json", needed_for="X", install="pip x", attrs=("dumps",)).dumps([]) == "[]"

import pytest
import torch

import colddiff.degradations as deg

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make(name: str, **kw):
    """A degradation with small, test-friendly settings (overridable)."""
    defaults = {
        "blur": dict(T=12, kernel_size=7, sigma=1.5),
        "mask": dict(T=20, quantize=False),
        "resolution": dict(T=3),
        "snow": dict(T=16, level=3),
        "snow-c": dict(T=16, level=3),
        "desaturate": dict(T=10),
        "noise": dict(T=40),
        "animorph": dict(T=40),
    }.get(name, {})
    defaults.update(kw)
    if name == "animorph" and "partners" not in defaults:
        raise ValueError("animorph needs partners")
    return deg.create(name, **defaults)


def images(B=3, C=3, H=32, W=None, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, C, H, W or H, generator=g, dtype=torch.float64) * 2 - 1).to(device=device, dtype=dtype)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


TINY_NET = dict(dim=8, dim_mults=[1, 2], attn_levels=[], num_res_blocks=1)


def make_run(folder, degradation, data=None, net=None, seed=0):
    """A run folder holding one checkpoint of a freshly initialised (untrained) tiny network."""
    from colddiff.checkpoint import checkpoint_path, save_checkpoint
    from colddiff.config import DataConfig, DegradationConfig, ModelConfig, RunConfig
    from colddiff.runs import load_run

    cfg = RunConfig(data=DataConfig(**(data or dict(name="mnist-5k", image_size=28, channels=1))),
                    degradation=DegradationConfig(**degradation), model=ModelConfig(**(net or TINY_NET)))
    torch.manual_seed(seed)
    save_checkpoint(checkpoint_path(folder / "checkpoints", 0), config=cfg.to_dict(),
                    model=cfg.build_model().state_dict(), state={"step": 0})
    return load_run(folder, device="cpu")


@pytest.fixture(scope="session")
def quick_classifier():
    """A one-epoch classifier on the real mnist-5k digits (seconds), used instead of the cached default."""
    import colddiff.classifier as classifier_mod

    return classifier_mod.train_classifier("mnist-5k", 28, 1, epochs=1, progress=False)


@pytest.fixture
def clf(quick_classifier, monkeypatch):
    """Every get_classifier call gets the quick classifier (no training, nothing cached in the user's home)."""
    import colddiff.classifier as classifier_mod

    monkeypatch.setattr(classifier_mod, "get_classifier", lambda *a, **k: quick_classifier)
    return quick_classifier


def installed_plugin_env(tmp_path, package: str, code: str, entry_point: str) -> dict:
    """The environment of a fresh process in which ``package`` (its ``__init__`` is ``code``) is installed and
    declares ``entry_point`` in colddiff's plug-in group, as a pip-installed plug-in would."""
    import os
    import sys

    from colddiff import plugins

    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(code)
    dist = site / f"{package}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\n{entry_point} = {package}\n")
    env = {k: v for k, v in os.environ.items() if k != "COLDDIFF_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in sys.path if p])
    return env

"""Rules 9 and 11 of the third reliability audit (issue 30): the Python API checks its arguments with one
shared checker (validate.images) and raises ColddiffError subclasses naming the argument; long work
without a progress bar says up front what it will do and then reports at a steady rate."""
import logging
import time

import numpy as np
import pytest
import torch

from colddiff import load_run, runs, validate
from colddiff.errors import ColddiffError, InputError
from colddiff.evaluation import evaluate
from colddiff.generation import generate
from colddiff.restoration import estimate_t, restore
from colddiff.samplers import SAMPLERS, algorithm2, direct
from conftest import make_run

BLUR = dict(name="blur", T=4, params=dict(kernel_size=3, sigma=1.0))
GREY16 = dict(name="mnist-5k", image_size=16, channels=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("api") / "run", BLUR, data=GREY16)


@pytest.mark.parametrize("path", [123, None, 1.5, True, ["runs/x"]])
def test_load_run_names_a_wrong_path_type(path):
    with pytest.raises(InputError, match="load_run's path must be a run folder"):
        load_run(path)


def test_load_run_device_type(run):
    with pytest.raises(InputError, match="load_run's device must be text"):
        load_run(run.folder, device=0)


BAD_IMAGES = [
    (lambda: torch.rand(1, 16, 16), r"must have shape \(N, C, H, W\), got \(1, 16, 16\); for one image pass y\[None\]"),
    (lambda: torch.rand(1, 1, 1, 16, 16), r"must have shape \(N, C, H, W\)"),
    (lambda: torch.zeros(1, 1, 16, 16, dtype=torch.uint8), r"floating-point.*uint8.*127.5"),
    (lambda: np.zeros((1, 1, 16, 16), dtype=np.int64), r"floating-point.*int64"),
    (lambda: np.zeros((1, 16, 16)), r"must have shape"),
    (lambda: torch.rand(1, 3, 16, 16), r"has the wrong number of channels for the (run|degradation) .*: 3, expected 1"),
    (lambda: [[0.0]], r"must be a torch tensor or numpy array"),
    (lambda: np.array([["a"]], dtype=object), r"numpy array of numbers"),
]


@pytest.mark.parametrize("make,msg", BAD_IMAGES)
def test_restore_refuses_bad_images_naming_y(run, make, msg):
    with pytest.raises(InputError, match=msg) as e:
        restore(run, make(), 2, progress=False)
    assert str(e.value).startswith("y ")


@pytest.mark.parametrize("call,name", [
    (lambda run, x: estimate_t(run, x), "y"),
    (lambda run, x: run.sample(x, 2), "x_t"),
    (lambda run, x: run.degrade(x, 2), "x0"),
    (lambda run, x: run.D(x, 2), "x0"),
])
def test_every_entry_uses_the_one_checker(run, call, name):
    for make, msg in BAD_IMAGES[:6]:
        with pytest.raises(InputError, match=msg.replace("y\\[None\\]", name + "\\[None\\]")) as e:
            call(run, make())
        assert str(e.value).startswith(name + " ")


def test_numpy_arrays_are_accepted_where_tensors_are(run):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, 16, 16)).astype(np.float32)
    xt = torch.from_numpy(x.copy())
    assert torch.equal(restore(run, x, 2, sampler="direct", progress=False),
                       restore(run, xt, 2, sampler="direct", progress=False))
    assert torch.equal(run.degrade(x, 2), run.degrade(xt, 2))
    assert torch.equal(run.D(x, 3), run.D(xt, 3))
    assert estimate_t(run, x).shape == (2,)


def test_run_arguments_must_be_runs(run):
    x = torch.zeros(1, 1, 16, 16)
    for call in (lambda: restore("runs/x", x, 2), lambda: estimate_t(None, x), lambda: generate("runs/x", 2),
                 lambda: evaluate(run.folder)):
        with pytest.raises(InputError, match="run must be a run loaded with colddiff.load_run"):
            call()


@pytest.mark.parametrize("call,msg", [
    (lambda run: generate(run, 10**30, progress=False), "n must be at most 1000000,"),
    (lambda run: generate(run, 2, seed=2**40, progress=False), "seed must be at most 4294967295"),
    (lambda run: generate(run, 2, batch_size=10**9, progress=False), "batch_size must be at most 65536"),
    (lambda run: run.sample(torch.zeros(1, 1, 16, 16), 2, batch_size=0), "batch_size must be at least 1"),
    (lambda run: evaluate(run, n=10**30, progress=False), "n must be at most"),
    (lambda run: evaluate(run, n=4, seed=-1, progress=False), "seed must be at least 0"),
])
def test_numbers_of_the_api_are_bounded(run, call, msg):
    with pytest.raises(ColddiffError, match=msg):
        call(run)


@pytest.mark.parametrize("sampler", ["direct", "algorithm2"])
@pytest.mark.parametrize("R,got", [(lambda x, t: x[:, :, :4], r"shape \(2, 1, 4, 16\)"),
                                   (lambda x, t: None, "NoneType"),
                                   (lambda x, t: x.flatten(1), r"shape \(2, 256\)")])
def test_a_user_restorer_of_the_wrong_shape_is_named(run, sampler, R, got):
    x = torch.zeros(2, 1, 16, 16)
    with pytest.raises(InputError, match=rf"the restorer R returned {got} for x_t of shape \(2, 1, 16, 16\)"):
        SAMPLERS[sampler](R, run.D, x, 2)


def test_a_right_restorer_still_works(run):
    x0 = torch.rand(2, 1, 16, 16) * 2 - 1
    x_t = run.D(x0, 3)
    assert torch.allclose(algorithm2(lambda x, t: x0, run.D, x_t, 3), x0, atol=1e-5)
    assert torch.equal(direct(lambda x, t: x0, run.D, x_t, 3), x0)


def test_the_checker_keeps_good_input():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert validate.images(x, "x", 3) is x
    with pytest.raises(InputError, match="NaN or Inf"):
        validate.images(torch.full((1, 1, 2, 2), float("nan")), "x", finite=True)


# ---------------------------------------------------------------------------- rule 11: large images
def test_without_a_bar_progress_lines_come_at_a_steady_rate(monkeypatch, caplog):
    monkeypatch.setattr(runs, "PROGRESS_EVERY", 0.05)
    caplog.set_level(logging.INFO, logger="colddiff.progress")
    bar = runs.progress_bar(4, "restore (algorithm2)", progress=False)
    time.sleep(0.3)  # one long step: lines keep coming while it runs
    during = [r.getMessage() for r in caplog.records]
    bar.update(1)
    time.sleep(0.2)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(during) >= 2 and all("0 of 4 steps" in m and "estimating" in m for m in during)
    assert any("1 of 4 steps (25%)" in m and "left" in m for m in lines[len(during):])
    n = len(caplog.records)
    time.sleep(0.2)
    assert len(caplog.records) == n  # closed: silent


def test_a_tiled_restoration_states_tiles_and_time_up_front(run, caplog):
    caplog.set_level(logging.INFO, logger="colddiff.progress")
    y = torch.rand(1, 1, 80, 72) * 2 - 1
    out = restore(run, y, 2, sampler="algorithm2", progress=False, tile=32, overlap=8)
    assert out.shape == y.shape
    first = [r.getMessage() for r in caplog.records if "tiles" in r.getMessage()]
    assert len(first) == 1
    from colddiff.restoration import tiles

    k = len(tiles(80, 32, 8, run.D.tile_multiple())) * len(tiles(72, 32, 8, run.D.tile_multiple()))
    assert k > 1 and f"1 image(s) of 72x80 in {k} tiles of 32x32" in first[0] and "about" in first[0]
    assert "2 network call(s)" in first[0]


def test_per_image_steps_may_be_a_list_or_a_numpy_array():
    """D(x, t) takes per-image steps as a tensor, a list or a NumPy array, with the same checks."""
    from colddiff.degradations import create
    from colddiff.errors import ConfigError

    D = create("blur", T=5, kernel_size=5, sigma=1.0, image_size=16, channels=1)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    want = D(x, torch.tensor([1, 3]))
    assert torch.equal(D(x, np.array([1, 3])), want) and torch.equal(D(x, [1, 3]), want)
    assert torch.equal(D(x, np.int64(3)), D(x, 3))
    with pytest.raises(ConfigError, match="out of range"):
        D(x, np.array([1, 9]))
    with pytest.raises(InputError, match=r"\(2,\)"):
        D(x, ["a", "b"])
    with pytest.raises(InputError, match=r"\(2,\)"):
        D(x, np.array([1, 2, 3]))

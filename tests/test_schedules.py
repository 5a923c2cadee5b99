"""Step schedules (colddiff.samplers.Schedule, ``--sample-steps``): Algorithm 2's jumps are exact on a linear
degradation for any schedule and any restorer, a schedule that visits every step is today's sampler bit for bit,
bad schedules are refused in one line, and every command that samples takes and records the schedule."""
import json
import random

import pytest
import torch

from colddiff import cli
from colddiff.errors import ColddiffError
from colddiff.samplers import (SAMPLERS, SPACINGS, Schedule, ScheduleError, algorithm1, algorithm2, check_schedule,
                               ddim, parse_schedule, stochastic)

from conftest import images, make, make_run
from test_sampler_contract import OPTIONS, degradation_for, tiny_restorer
from test_samplers import LinearShift, random_restorer


def random_schedule(rng: random.Random, t: int) -> list:
    """A random strictly decreasing list t = t_0 > ... > 0."""
    inner = sorted(rng.sample(range(1, t), rng.randint(0, t - 1)), reverse=True) if t > 1 else []
    return [t] + inner + [0]


# ---------------------------------------------------------------------------- the schedule itself
def test_counts_give_exactly_that_many_strictly_decreasing_steps_from_t_to_0():
    rng = random.Random(0)
    for _ in range(300):
        T = rng.randint(1, 400)
        t, count, spacing = rng.randint(1, T), rng.randint(1, T), rng.choice(SPACINGS)
        steps = Schedule(count=count, spacing=spacing).for_t(t, T)
        assert steps[0] == t and steps[-1] == 0
        assert all(a > b for a, b in zip(steps, steps[1:]))
        assert len(steps) - 1 == min(count, t)          # network calls


def test_spacings_are_what_they_say():
    assert Schedule(count=4).for_t(20, 20) == [20, 15, 10, 5, 0]
    assert parse_schedule("4:quadratic").for_t(20, 20) == [20, 11, 5, 1, 0]   # 20·(k/4)^2, dense near 0
    assert parse_schedule("20,7,2,0").for_t(20, 30) == [20, 7, 2, 0]
    assert parse_schedule(None).full and parse_schedule("all").full
    assert parse_schedule(30).for_t(30, 30) == list(range(30, -1, -1))
    assert [str(parse_schedule(v)) for v in (None, 5, "5:quadratic", [9, 3, 0])] == ["all", "5", "5:quadratic",
                                                                                     "9,3,0"]


@pytest.mark.parametrize("value, T, t, words", [
    ("20,20,0", 20, 20, "strictly decreasing"),
    ("20,10", 20, 20, "must end at 0"),
    ("25,10,0", 20, 20, "within 1..T=20"),
    ("12,6,0", 20, 20, "start at 12 but the images are at t=20"),
    ("0", 20, 20, ">= 1"),
    ("30", 20, 20, "T=20"),
    ("5:cubic", 20, 20, "unknown step spacing 'cubic'"),
    ("five", 20, 20, "not understood"),
    ([10, 2.5, 0], 20, 10, "whole numbers"),
])
def test_bad_schedules_are_refused_in_one_line(value, T, t, words):
    with pytest.raises(ScheduleError, match=words) as e:
        parse_schedule(value).for_t(t, T)
    assert isinstance(e.value, ColddiffError) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------- the samplers over a schedule
def test_algorithm2_with_any_schedule_is_exact_on_a_linear_degradation_with_any_restorer():
    """Sec. 3.3 carried over to jumps: x_s = x_t − D(x0_hat, t) + D(x0_hat, s) moves x by (s − t)·e whatever R
    predicts, so any schedule ends at x0 (a property over random schedules, restorers and start steps)."""
    rng = random.Random(1)
    e = images(1, 3, 16, seed=42)[0] * 0.1
    for trial in range(25):
        D = LinearShift(T=rng.randint(2, 60), e=e)
        t = rng.randint(1, D.T)
        x0 = images(2, 3, 16, seed=trial)
        schedule = rng.choice([random_schedule(rng, t), Schedule(count=rng.randint(1, t), spacing=rng.choice(SPACINGS))])
        g = torch.Generator().manual_seed(trial)
        R = random_restorer(trial) if trial % 2 else \
            (lambda x, s: torch.randn(x.shape, generator=g, dtype=x.dtype) * 5)
        out = algorithm2(R, D, D(x0, t), t, schedule=schedule)
        assert torch.allclose(out, x0, atol=1e-9), (D.T, t, schedule)
    # ... while Algorithm 1 over the same jumps is only as good as R
    D = LinearShift(T=20, e=e)
    x0 = images(2, 3, 16)
    assert (algorithm1(random_restorer(), D, D(x0, 20), 20, schedule=4) - x0).abs().max() > 0.1


def test_per_sample_steps_run_each_over_its_own_schedule():
    e = images(1, 3, 16, seed=42)[0] * 0.1
    D = LinearShift(T=20, e=e)
    x0 = images(4, 3, 16)
    t = torch.tensor([20, 0, 7, 20])
    R = random_restorer()
    out = algorithm1(R, D, D(x0, t), t, schedule="3:quadratic")
    for b in range(4):
        alone = algorithm1(R, D, D(x0[b:b + 1], int(t[b])), int(t[b]), schedule="3:quadratic")
        assert torch.allclose(out[b:b + 1], alone, atol=1e-12)
    assert torch.equal(out[1], x0[1])     # t = 0: passed through
    assert torch.allclose(algorithm2(R, D, D(x0, t), t, schedule=2), x0, atol=1e-9)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_schedule_that_visits_every_step_is_the_default_sampler_bit_for_bit(name):
    fn = SAMPLERS[name]
    D = degradation_for(fn)
    x0 = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    t = torch.tensor([D.T, 2, D.T])
    ctx = D.context(x0, torch.Generator().manual_seed(2))
    x_t = D(x0, t, ctx)
    opts = {k: OPTIONS[k] for k in fn.options}

    def once(**kw):
        return fn(tiny_restorer(), D, x_t, t, ctx, generator=torch.Generator().manual_seed(0), **kw, **opts)

    default = once()
    for schedule in (None, "all", D.T, f"{D.T}:quadratic", Schedule(count=D.T)):
        assert torch.equal(once(schedule=schedule), default), schedule


def test_callbacks_see_the_schedules_steps_and_each_step_calls_R_once():
    D = make("blur", T=12)
    x0 = images(2, 3, 8, dtype=torch.float32)
    seen, calls = [], []

    def R(x, s):
        calls.append(int(s[0]))
        return x * 0.5

    algorithm2(R, D, D(x0, 12), 12, callback=lambda s, x_s, x0_hat: seen.append(s), schedule="12,9,4,1,0")
    assert seen == calls == [12, 9, 4, 1]


def test_ddim_takes_its_skipped_steps_and_retraces_the_oracle():
    D = make("noise", T=40)
    x0 = images(2, 3, 8, dtype=torch.float64)
    ctx = D.context(x0, torch.Generator().manual_seed(3))
    x_t = D(x0, 40, ctx)
    assert torch.allclose(ddim(lambda x, s: x0, D, x_t, 40, ctx, schedule=5), x0, atol=1e-8)
    # one jump 40 -> 17 by hand: x_17 = √ᾱ_17·x0_hat + √(1−ᾱ_17)·ε_hat, ε_hat read back from x_40
    ab = [float(a) for a in D.mixing_schedule()]
    R = lambda x, s: torch.tanh(x)  # noqa: E731
    states = []
    ddim(R, D, x_t, 40, ctx, schedule="40,17,0", callback=lambda s, x_s, x0_hat: states.append(x_s))
    x0_hat = torch.tanh(x_t)
    eps = (x_t - ab[40] ** 0.5 * x0_hat) / (1 - ab[40]) ** 0.5
    assert torch.allclose(states[1], ab[17] ** 0.5 * x0_hat + (1 - ab[17]) ** 0.5 * eps, atol=1e-12)


def test_samplers_that_cannot_skip_steps_refuse_a_schedule_in_one_line():
    D = make("blur", T=12)
    x0 = images(2, 3, 8, dtype=torch.float32)
    R = tiny_restorer()
    with pytest.raises(ScheduleError, match="authors-shifted .* visits every step"):
        SAMPLERS["authors-shifted"](R, D, D(x0, 12), 12, schedule=4)
    with pytest.raises(ScheduleError, match="delta"):
        stochastic(R, D, D(x0, 12), 12, schedule=4, delta=0.01)
    with pytest.raises(ScheduleError, match="authors-shifted"):
        check_schedule("authors-shifted", 4, 12, 12)
    with pytest.raises(ScheduleError, match="delta"):
        check_schedule("stochastic", 4, 12, None, {"delta": 0.01})
    # δ = 0 is Algorithm 2, schedule included; every step is always allowed
    assert torch.equal(stochastic(R, D, D(x0, 12), 12, schedule=4), algorithm2(R, D, D(x0, 12), 12, schedule=4))
    assert check_schedule("authors-shifted", 12, 12, 12).count == 12
    assert SAMPLERS["direct"].schedules == "ignored" and SAMPLERS["algorithm2"].schedules == "jumps"
    assert SAMPLERS["authors-shifted"].schedules == "refused"


# ---------------------------------------------------------------------------- where a sampler runs
@pytest.fixture(scope="module")
def blur_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"), dict(name="blur", T=6, params=dict(kernel_size=5, sigma=1.0)))


def test_run_sample_takes_a_schedule_and_refuses_a_bad_one_before_any_work(blur_run):
    x0 = images(3, 1, 28, dtype=torch.float32)
    x_t = blur_run.degrade(x0, 6)
    seen = []
    full = blur_run.sample(x_t, 6, sampler="algorithm2")
    assert torch.equal(blur_run.sample(x_t, 6, sampler="algorithm2", schedule=6), full)
    two = blur_run.sample(x_t, 6, sampler="algorithm2", schedule="6,2,0", callback=lambda s, *_: seen.append(s))
    assert seen == [6, 2]
    assert not torch.equal(two, full)
    for bad in ("7", "6,6,0"):
        with pytest.raises(ScheduleError):
            blur_run.sample(x_t, 6, sampler="algorithm2", schedule=bad, callback=lambda *a: pytest.fail("ran"))
    with pytest.raises(ScheduleError, match="authors-shifted"):
        blur_run.sample(x_t, 6, sampler="authors-shifted", schedule=2)


def test_generate_and_evaluate_take_and_record_the_schedule(blur_run, clf):
    from colddiff.evaluation import evaluate
    from colddiff.generation import generate

    a = generate(blur_run, 4, sampler="algorithm2", schedule="2:quadratic", progress=False)
    b = generate(blur_run, 4, sampler="algorithm2", progress=False)
    assert a.shape == b.shape and not torch.equal(a, b)
    assert torch.equal(generate(blur_run, 4, sampler="algorithm2", schedule=6, progress=False), b)
    ev = evaluate(blur_run, n=4, fid="none", classifier=False, progress=False, protocol="colddiff", schedule=3)
    assert ev.sample_steps == "3" and "3 (--sample-steps)" in ev.caption()
    assert evaluate(blur_run, n=4, fid="none", classifier=False, progress=False,
                    protocol="colddiff").sample_steps == "all"


def test_cli_restore_records_the_steps_and_bad_steps_exit_2_in_one_line(blur_run, tmp_path, capsys):
    from colddiff.images import save_image

    inp = tmp_path / "in"
    inp.mkdir()
    save_image(blur_run.degrade(images(1, 1, 28, dtype=torch.float32), 4)[0], inp / "a.png")
    out = tmp_path / "out"
    assert cli.main(["restore", str(blur_run.folder), "--input", str(inp), "--t", "4", "--out", str(out),
                     "--sample-steps", "2", "--no-progress"]) == 0
    rec = json.loads((out / "restore.json").read_text())
    assert rec["sample_steps"] == "2"
    assert "(steps 2)" in capsys.readouterr().out
    for args in (["restore", str(blur_run.folder), "--input", str(inp), "--t", "4", "--out", str(tmp_path / "o2"),
                  "--sample-steps", "4,4,0"],
                 ["generate", str(blur_run.folder), "--n", "2", "--out", str(tmp_path / "o3"),
                  "--sample-steps", "x"],
                 ["generate", str(blur_run.folder), "--n", "2", "--out", str(tmp_path / "o4"),
                  "--sample-steps", "9"]):
        assert cli.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "step" in err
    assert not (tmp_path / "o4" / "generation.json").exists()


def test_the_demo_takes_sampling_steps_per_request(blur_run, tmp_path):
    from colddiff.demo import DemoApp
    from colddiff.images import save_image

    app = DemoApp(blur_run, schedule=parse_schedule("3"))
    img, msg = app.generate(1, 0.0, "algorithm2", 2)
    assert img is not None and "steps 3" in msg
    assert "steps" not in app.generate(1, 0.0, "algorithm2", 2, "all")[1]
    assert app.generate(1, 0.0, "algorithm2", 2, "6,6,0")[1].startswith("⚠ sampling steps must be strictly")
    path = tmp_path / "y.png"
    save_image(blur_run.degrade(images(1, 1, 28, dtype=torch.float32), 4)[0], path)
    out = app.restore(str(path), False, 4, "4,1,0")
    assert out[3] is not None and "steps 4,1,0" in out[5]


def test_the_generation_evaluation_records_its_steps_and_reads_them_back(blur_run, clf, tmp_path):
    from colddiff.generation_eval import (evaluate_generation, read_generation_evaluation,
                                          write_generation_evaluation)

    settings = [{"setting": "Algorithm 2", "sampler": "algorithm2", "noise": 0.0}]
    gev = evaluate_generation(blur_run, n=4, fid="none", progress=False, settings=settings, schedule="3:quadratic")
    row = gev.rows[0]
    assert row["sample_steps"] == "3:quadratic" and row["setting"] == "Algorithm 2, steps 3:quadratic"
    assert row["folder"].endswith("-steps3-quadratic")
    paths = write_generation_evaluation(gev, tmp_path / "evaluation")
    assert read_generation_evaluation(paths["json"]).rows[0]["sample_steps"] == "3:quadratic"
    with pytest.raises(ScheduleError, match="delta"):   # refused before anything is generated
        evaluate_generation(blur_run, n=4, fid="none", progress=False, schedule=2,
                            settings=[{"setting": "IHD", "sampler": "stochastic", "noise": 0.0, "delta": 0.01}])


def test_the_demo_restore_tab_follows_the_run_restore_default_unless_steps_are_given(blur_run, tmp_path):
    """As `colddiff restore` does: the run's [restore] sample_steps, unless the app or the request names steps."""
    import copy
    import dataclasses

    from colddiff.demo import DemoApp
    from colddiff.images import save_image

    run = dataclasses.replace(blur_run, cfg=copy.deepcopy(blur_run.cfg))
    run.cfg.restore.sample_steps = "1"
    path = tmp_path / "y.png"
    save_image(run.degrade(images(1, 1, 28, dtype=torch.float32), 4)[0], path)
    assert "steps 4,0" in DemoApp(run).restore(str(path), False, 4)[5]                     # the run's default
    assert "steps" not in DemoApp(run, schedule=parse_schedule("all")).restore(str(path), False, 4)[5]
    assert "steps" not in DemoApp(run).restore(str(path), False, 4, "all")[5]              # per request
    assert "steps" not in DemoApp(blur_run).restore(str(path), False, 4)[5]                # runs without one
    assert str(DemoApp(run).schedule) == "all"                                             # generation: every step


@pytest.mark.parametrize("steps,k", [("3", 6), ("3", 3), ("5", 3), ("6,5,1,0", 2)])
def test_the_trajectory_figure_records_k_evenly_spaced_visited_steps_and_all_when_k_is_more(blur_run, steps, k):
    """algorithm2_trajectory on a schedule that skips steps shows min(k, visited) of the visited steps, the first
    and the last among them; asking for more frames than the schedule visits shows every visited step (it
    dropped the last ones before)."""
    from colddiff.figures import algorithm2_trajectory
    from colddiff.samplers import parse_schedule

    visited = parse_schedule(steps).for_t(6, blur_run.T)[:-1]          # from t = 6 down to the last step > 0
    x_t = blur_run.degrade(images(1, 1, 28, dtype=torch.float32), 6)
    final, recorded, xs, x0s = algorithm2_trajectory(blur_run, x_t, 6, k=k, schedule=steps)
    assert len(recorded) == min(k, len(visited)) and set(recorded) <= set(visited)
    assert recorded[0] == visited[0] and recorded[-1] == visited[-1]
    assert set(xs) == set(x0s) == set(recorded) and final.shape == x_t.shape

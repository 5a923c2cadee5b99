"""The thread policy (colddiff.threads): a lone run keeps every core, a shared machine gets a fair share.

The decision is tested on synthetic /proc readings (deterministic); that torch really gets the chosen
count, and that OMP_WAIT_POLICY is set before torch loads, in fresh interpreters."""
import json
import os
import subprocess
import sys

import pytest
import torch

from colddiff import threads
from colddiff.errors import ConfigError


@pytest.fixture(autouse=True)
def _fresh_plan(monkeypatch):
    for name in ("OMP_NUM_THREADS", "COLDDIFF_THREADS", "OMP_WAIT_POLICY"):   # a user's own setting would win
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    threads.reset()
    yield
    threads.reset()
    torch.set_num_threads(before)


@pytest.mark.parametrize("busy, n, want", [
    (None, 2, 2),     # nothing measurable (no /proc): torch's default
    (0.0, 2, 2),      # a quiet machine: every core
    (0.3, 2, 2),      # an editor's background load does not cost a lone run a core
    (0.67, 2, 1),     # another process starved by our threads still shows: give it a core
    (1.9, 2, 1),      # two other trainings: at least one thread
    (3.0, 16, 13),    # a big machine: one core fewer per core of others' load
    (40.0, 16, 1),
])
def test_choose_takes_the_cores_others_leave_free(busy, n, want):
    assert threads.choose(n, busy) == want


def test_others_busy_subtracts_this_process_own_time():
    hz = threads._hz()
    # over 2 s the machine was busy 3 core-seconds, this process 1 core-second: others kept 1 core busy
    assert threads.others_busy((0, 0), (int(3 * hz), int(1 * hz)), 2.0) == pytest.approx(1.0)
    assert threads.others_busy((0, 0), (int(1 * hz), int(1 * hz)), 1.0) == 0.0
    assert threads.others_busy(None, (1, 1), 1.0) is None


def test_an_explicit_count_wins_in_order_argv_env_omp():
    env = {"COLDDIFF_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert threads.requested(["train", "--threads", "2"], env) == (2, "--threads")
    assert threads.requested(["train", "--threads=7"], env) == (7, "--threads")
    assert threads.requested(["train"], env) == (3, "COLDDIFF_THREADS")
    assert threads.requested(["train"], {"OMP_NUM_THREADS": "4"}) == (4, "OMP_NUM_THREADS")
    assert threads.requested(["train"], {}) is None
    assert threads.requested(["--", "--threads", "2"], {}) is None   # after --: not an option


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "100000"])
def test_a_bad_count_is_one_clear_error(value):
    with pytest.raises(ConfigError, match="CPU threads"):
        threads.requested(["train", "--threads", value], {})
    with pytest.raises(ConfigError, match="COLDDIFF_THREADS"):
        threads.requested([], {"COLDDIFF_THREADS": value})


def _fake_proc(monkeypatch, readings):
    """Make _cpu_ticks return the given (machine busy, own) tick pairs in turn."""
    it = iter(readings)
    monkeypatch.setattr(threads, "_cpu_ticks", lambda: next(it))


def test_adapt_gives_a_core_back_when_others_start_and_takes_it_again_when_they_end(monkeypatch):
    if threads.cores() < 2:
        pytest.skip("needs 2 cores")
    hz = threads._hz()
    n = threads.cores()
    monkeypatch.setattr(threads, "time", type("T", (), {"monotonic": staticmethod(lambda: 0.0),
                                                        "sleep": staticmethod(lambda s: None)}))
    # start: quiet (no load at all between the two readings) -> every core
    _fake_proc(monkeypatch, [(0, 0), (0, 0)])
    plan = threads.plan_before_torch([], window=0.1)
    assert plan.threads == n and not plan.fixed
    threads.apply(plan)
    assert torch.get_num_threads() == n
    # 5 s later: others kept 1.5 cores busy, we 0.5 -> give cores up
    _fake_proc(monkeypatch, [(int(2 * 5 * hz), int(0.5 * 5 * hz))])
    assert threads.adapt(now=5.0) == threads.choose(n, 1.5)
    assert torch.get_num_threads() == threads.choose(n, 1.5)
    # 1 s later: too soon, nothing is read
    monkeypatch.setattr(threads, "_cpu_ticks", lambda: pytest.fail("read /proc before the interval"))
    assert threads.adapt(now=6.0) is None
    # 10 s later: the others ended (the machine's busy time is all ours) -> every core again
    _fake_proc(monkeypatch, [(int(2 * 5 * hz) + int(10 * hz), int(0.5 * 5 * hz) + int(10 * hz))])
    assert threads.adapt(now=15.0) == n
    assert torch.get_num_threads() == n


def test_a_user_chosen_count_is_never_adapted(monkeypatch):
    plan = threads.plan_before_torch(["train", "--threads", "1"])
    assert plan.fixed and plan.threads == 1 and plan.source == "--threads"
    monkeypatch.setattr(threads, "_cpu_ticks", lambda: pytest.fail("a fixed count measured the machine"))
    assert threads.adapt(now=1e9) is None


PROBE = r"""
import json, os, sys
from colddiff import threads
if sys.argv[1] == "busy":   # pretend others keep every core busy between the two start-up readings
    hz = threads._hz(); ticks = iter([(0, 0), (int(threads.cores() * hz * 0.1), 0)])
    threads._cpu_ticks = lambda: next(ticks)
import colddiff.cli as cli
try:
    code = cli._main(sys.argv[2:])
except SystemExit as e:   # --help
    code = e.code
import torch
print("PROBE " + json.dumps({"code": code, "threads": torch.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY"),
                  "plan": threads.current().__dict__}))
"""


def _probe(mode, *argv, **env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "COLDDIFF_THREADS", "OMP_WAIT_POLICY")}
    env.update(env_extra)
    res = subprocess.run([sys.executable, "-c", PROBE, mode, *argv], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def test_threads_option_sets_torch_threads_in_a_fresh_process():
    got = _probe("quiet", "--threads", "1", "presets")
    assert got["code"] == 0 and got["threads"] == 1 and got["plan"]["fixed"]
    assert got["wait"] is None   # the user's choice: the wait policy is left alone


EMBED = r"""
import torch
torch.set_num_threads(1)
import colddiff.cli as cli
code = cli.main(["--threads", "2", "presets"])
print("EMBED", code, torch.get_num_threads())
"""


def test_a_program_that_calls_main_gets_its_own_thread_count_back():
    """The policy (here --threads 2) is the command's: an embedding program's torch thread count is restored."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "COLDDIFF_THREADS")}
    res = subprocess.run([sys.executable, "-c", EMBED], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert next(x for x in res.stdout.splitlines() if x.startswith("EMBED ")) == "EMBED 0 1"


def test_the_environment_variable_is_honoured_too():
    got = _probe("quiet", "presets", COLDDIFF_THREADS="1")
    assert got["threads"] == 1 and got["plan"]["source"] == "COLDDIFF_THREADS"


def test_a_busy_machine_gets_one_thread_and_passive_waits_before_torch_loads(tmp_path):
    got = _probe("busy", "degrade", "--help")   # --help: not measured
    assert got["plan"]["source"] == "default"
    got = _probe("busy", "check-degradation", "blur", "--T", "3", "--size", "8")
    assert got["plan"]["source"] == "measured" and got["plan"]["threads"] == 1
    assert got["threads"] == 1 and got["wait"] == "PASSIVE" and got["plan"]["passive"]


@pytest.mark.parametrize("argv,want", [
    (["train", "--preset", "x"], True),
    (["--plugin", "mine.py", "train"], True),          # the option's value is not the command
    (["--threads", "2", "restore", "r"], True),
    (["--plugin=mine.py", "presets"], False),
    (["--plugin", "train.py", "presets"], False),
    (["train", "--help"], False),
    ([], False),
])
def test_the_start_up_measurement_finds_the_command_after_options_with_values(argv, want):
    from colddiff.cli import _computes

    assert _computes(argv) is want

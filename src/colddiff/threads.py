"""How many CPU threads torch may use: every core for a lone run, a fair share on a busy machine.

Why this exists: PyTorch's OpenMP threads wait for each other by spinning.  When several processes
each ask for every core, the spinning threads steal the cores their partners need: measured on 2
cores, three concurrent ``colddiff train --preset mnist5k-sr --set train.steps=150`` took 256 s
against 21 s for one alone, 4x worse than a fair share of the CPU (3 x 21 s).  One thread per process
took 42 s; a passive wait policy 65 s.  Alone, those settings cost 29% and 20%, so the answer depends
on what else runs, and it changes while a run trains.

The policy:

* An explicit choice wins and is never changed: ``--threads N``, ``COLDDIFF_THREADS=N``, or
  ``OMP_NUM_THREADS`` set by the user.
* Otherwise a command measures, before torch loads, how many cores other processes keep busy (from
  ``/proc/stat`` minus its own CPU time, over 0.1 s), and takes the cores that are left (at least
  one).  Fewer than every core also sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it), so
  waiting threads sleep instead of spinning.
* While it trains or samples, :func:`adapt` (called once per step, cheap) measures again every few
  seconds and moves the thread count to what is free now: a run that started alone gives cores back
  when others start, and takes them again when they end.

This module imports no torch at its top (the CLI calls :func:`plan_before_torch` before anything
heavy loads); where /proc is missing (macOS, Windows) nothing is measured and torch's default stays.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from .errors import ConfigError

ENV = "COLDDIFF_THREADS"
MAX_THREADS = 1024
#: how often :func:`adapt` measures the machine while a run works (seconds)
INTERVAL = 5.0
#: the window the start-up measurement looks at (seconds)
START_WINDOW = 0.1


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask; os.cpu_count() where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_threads(value, source: str = "--threads") -> int:
    """A thread count as the user gave it: an integer in 1..MAX_THREADS, or a clear ConfigError."""
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a whole number of CPU threads (1..{MAX_THREADS}), got {value!r}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ConfigError(f"{source} must be between 1 and {MAX_THREADS} CPU threads, got {n}")
    return n


def _cpu_ticks() -> Optional[tuple[int, int]]:
    """(busy ticks of the whole machine, this process's own ticks) from /proc; None without /proc."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
        with open("/proc/self/stat", "rb") as f:
            own = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        ticks = [int(v) for v in fields[:8]]
        idle = ticks[3] + ticks[4]   # idle + iowait
        # utime, stime of this process (fields 14 and 15 of /proc/self/stat; 11 and 12 after the name)
        return sum(ticks) - idle, int(own[11]) + int(own[12])
    except (ValueError, IndexError):
        return None


def _hz() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


def others_busy(before: Optional[tuple[int, int]], after: Optional[tuple[int, int]], seconds: float) -> Optional[float]:
    """Cores kept busy by OTHER processes between two :func:`_cpu_ticks` readings ``seconds`` apart."""
    if before is None or after is None or seconds <= 0:
        return None
    busy = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, busy / (_hz() * seconds))


#: others' load (in cores) from which a core is given up to them.  Below one core on purpose: a
#: process starved by our spinning threads shows less than it wants (three runnable threads on two
#: cores get 2/3 of a core each), so "0.35 core busy" already means "someone wants a core".
GIVE_UP_AT = 0.35


def choose(n_cores: int, busy: Optional[float]) -> int:
    """The threads to take when other processes keep ``busy`` cores working: every core for a quiet
    machine (background load under GIVE_UP_AT of a core), one core fewer per core of others' load,
    at least one thread."""
    if busy is None:
        return n_cores
    return max(1, min(n_cores, n_cores - int(busy + 1.0 - GIVE_UP_AT)))


@dataclass
class Plan:
    threads: int          # what torch should use now
    fixed: bool           # chosen by the user: never adapted
    source: str           # where the choice came from, for the log and the run record
    passive: bool = False  # OMP_WAIT_POLICY=PASSIVE was set by this policy


_plan: Optional[Plan] = None
_last: Optional[tuple[float, tuple[int, int]]] = None


def requested(argv: Sequence[str] = (), environ=None) -> Optional[tuple[int, str]]:
    """The user's explicit thread count, if any: ``--threads N`` in ``argv``, COLDDIFF_THREADS, OMP_NUM_THREADS."""
    environ = os.environ if environ is None else environ
    argv = list(argv)
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == "--threads" and i + 1 < len(argv):
            return parse_threads(argv[i + 1]), "--threads"
        if a.startswith("--threads="):
            return parse_threads(a.split("=", 1)[1]), "--threads"
    if environ.get(ENV, "").strip():
        return parse_threads(environ[ENV], ENV), ENV
    if environ.get("OMP_NUM_THREADS", "").strip():
        try:
            return parse_threads(environ["OMP_NUM_THREADS"].split(",")[0], "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
        except ConfigError:
            return None   # torch reads it (and complains) itself
    return None


def plan_before_torch(argv: Sequence[str] = (), window: float = START_WINDOW) -> Plan:
    """Decide the thread count of this process, before torch loads (the OpenMP wait policy is read
    once, when torch's OpenMP runtime starts).  Sets OMP_WAIT_POLICY=PASSIVE for a shared machine."""
    global _plan, _last
    asked = requested(argv)
    n = cores()
    if asked is not None:
        _plan = Plan(asked[0], True, asked[1])
        return _plan
    if window <= 0:   # a listing or --help: nothing to measure, torch's default
        _plan = Plan(n, False, "default")
        return _plan
    start = _cpu_ticks()
    t0 = time.monotonic()
    if start is not None:
        time.sleep(window)
    end = _cpu_ticks()
    t1 = time.monotonic()
    busy = others_busy(start, end, t1 - t0)
    threads = choose(n, busy)
    passive = False
    if threads < n and "OMP_WAIT_POLICY" not in os.environ and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        passive = True
    _plan = Plan(threads, False, "measured" if busy is not None else "default", passive)
    if end is not None:
        _last = (t1, end)
    return _plan


def apply(plan: Optional[Plan] = None) -> Optional[Plan]:
    """Give torch the planned thread count (call once torch is imported; a no-op without a plan)."""
    import torch

    plan = plan or _plan
    if plan is not None and torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    return plan


def current() -> Optional[Plan]:
    return _plan


def adapt(now: Optional[float] = None) -> Optional[int]:
    """Once per step of a long loop: every INTERVAL seconds, move torch's thread count to the cores
    that other processes leave free.  Returns the new count when it changed, else None.  Does nothing
    for a fixed (user-chosen) count, before :func:`plan_before_torch`, or off the main thread (OpenMP's
    thread count is a per-thread setting: only the main thread's is the one that computes)."""
    global _last
    if _plan is None or _plan.fixed:
        return None
    now = time.monotonic() if now is None else now
    if _last is not None and now - _last[0] < INTERVAL:
        return None
    ticks = _cpu_ticks()
    if ticks is None:
        return None
    before, _last = _last, (now, ticks)
    if before is None:
        return None
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    busy = others_busy(before[1], ticks, now - before[0])
    threads = choose(cores(), busy)
    if threads == _plan.threads:
        return None
    import torch

    _plan.threads = threads
    torch.set_num_threads(threads)
    return threads


def reset() -> None:
    """Forget the plan (tests)."""
    global _plan, _last
    _plan = None
    _last = None

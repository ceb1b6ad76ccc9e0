"""The resource sampler on real process trees: short-lived children, zombies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from lab.events import ResourceSample
from lab.monitor import ResourceSampler

# A target whose work runs in short-lived child processes, each burning CPU for a while and
# reaped by the target (as a pool of forked jobs is): on "go" it runs CHILDREN of them one
# after another, then prints the CPU they reported and its own (times(2), not /proc) and
# waits for its stdin to close.
CHILD = ("import time\nt = time.process_time()\nwhile time.process_time() - t < {burn_s}: pass\n"
         "print(time.process_time())")
PARENT = textwrap.dedent("""
    import os, subprocess, sys
    sys.stdin.readline()
    own = os.times()
    children = 0.0
    for _ in range({n}):
        out = subprocess.run([sys.executable, "-I", "-S", "-c", {child!r}], capture_output=True,
                             text=True, check=True).stdout
        children += float(out)
    after = os.times()
    print(children, (after.user + after.system) - (own.user + own.system), flush=True)
    sys.stdin.read()
""")
# A target that starts a child and never waits for it: the child stays a zombie.
ZOMBIE_PARENT = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", {child!r}])
    print(child.pid, flush=True)
    sys.stdin.read()
""")


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        for child in psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []:
            child.kill()
        proc.kill()
        proc.wait(10)


def _wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"process {pid} never exited"
        time.sleep(0.01)


def _target(samples: list[ResourceSample]) -> list[ResourceSample]:
    return [s for s in samples if s.role == "target"]


def test_a_tree_of_short_lived_children_keeps_all_their_cpu_and_never_falls(
        procs: list[subprocess.Popen[str]]) -> None:
    root = _spawn(PARENT.format(n=12, child=CHILD.format(burn_s=0.06)))
    procs.append(root)
    sampler = ResourceSampler("run", root.pid, [])
    readings = _target(sampler.sample(0.0))
    assert root.stdin is not None and root.stdout is not None
    root.stdin.write("go\n")
    root.stdin.flush()
    # Read faster than a child lives, so some are read and then leave, others are never read.
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(root.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    t = 0.0
    while reader.is_alive():
        time.sleep(0.03)
        t += 0.03
        readings += _target(sampler.sample(t))
    readings += _target(sampler.sample(t + 0.3))
    children_s, own_s = (float(v) for v in line[0].split())

    totals = [r.cpu_seconds for r in readings]
    assert all(b >= a - 1e-3 for a, b in zip(totals, totals[1:], strict=False)), totals
    assert max(r.processes for r in readings) > 1  # some children were read while alive
    # Against what the children and the root measured themselves; a child's exit (after
    # it printed) is not in its figure, so the sampler may see a little more.
    spent = totals[-1] - totals[0]
    independent = children_s + own_s
    assert independent * 0.95 - 0.03 <= spent <= independent * 1.15 + 0.05, (spent, children_s, own_s)


def test_a_process_that_has_exited_is_never_sampled_as_alive_with_zero_memory(
        procs: list[subprocess.Popen[str]]) -> None:
    gone = subprocess.Popen([sys.executable, "-I", "-S", "-c", CHILD.format(burn_s=0.05)],
                            stdout=subprocess.DEVNULL)
    try:
        _wait_zombie(gone.pid)
        sampler = ResourceSampler("run", gone.pid, [])
        assert _target(sampler.sample(0.0)) == []
        assert _target(sampler.sample(0.5)) == []
    finally:
        gone.wait(10)


def test_a_zombie_child_counts_its_cpu_but_not_as_a_live_process(
        procs: list[subprocess.Popen[str]]) -> None:
    root = _spawn(ZOMBIE_PARENT.format(child=CHILD.format(burn_s=0.2)))
    procs.append(root)
    assert root.stdout is not None
    child_pid = int(root.stdout.readline())
    _wait_zombie(child_pid)
    sampler = ResourceSampler("run", root.pid, [])
    (reading,) = _target(sampler.sample(0.0))
    assert reading.processes == 1
    assert reading.rss_bytes > 0
    assert reading.cpu_seconds >= 0.2 - 0.02  # the zombie's CPU (the kernel rounds to 10 ms)

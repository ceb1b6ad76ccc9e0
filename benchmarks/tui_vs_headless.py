"""Does watching a run in the TUI cost throughput? The same run, headless and in the TUI.

Runs one experiment variant (default: caching / lru for 15 s) alternately headless
(``lab run --format json``) and in the TUI (``lab tui`` in a real pseudo-terminal,
started with ``LAB_TUI_AUTORUN`` and quitting by itself via ``LAB_TUI_EXIT_WHEN_DONE``),
``--repeats`` times each, in ABBA order so drift on the machine hits both alike. Prints
each run, the median goodput of each mode and their ratio. The target: the TUI within
5 % of headless.

Both modes read the same copy of the experiment file (with the duration set), so they
run exactly the same configuration. Run from the repository root::

    .venv/bin/python benchmarks/tui_vs_headless.py [--duration 15s] [--repeats 3]

Not a test: its figures depend on the machine, and on what else runs on it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from lab.store import Store

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    """One measured run."""

    mode: str
    """``headless`` or ``tui``."""
    throughput_rps: float
    """Goodput over the measured window."""
    p95_ms: float
    """p95 latency of successful requests."""
    generator_peak_cpu: float | None
    """Highest CPU percent of a generator process (≥ 90: generator-bound)."""
    lab_cpu_mean: float | None
    """Mean CPU percent of the lab's own process (the one drawing the TUI, if any)."""


def prepare(experiments_dir: Path, experiment: str, duration: str, workdir: Path) -> Path:
    """Copy the experiment file into ``workdir`` with its ``[load] duration`` replaced."""
    text = (experiments_dir / f"{experiment}.toml").read_text()
    text, n = re.subn(r'(?m)^duration\s*=\s*"[^"]*"', f'duration = "{duration}"', text, count=1)
    if n != 1:
        sys.exit(f"{experiment}.toml: no `duration = \"...\"` line to replace")
    folder = workdir / "experiments"
    folder.mkdir()
    path = folder / f"{experiment}.toml"
    path.write_text(text)
    return path


def _last_run(db: Path) -> Result | None:
    with Store(db) as store:
        runs = store.list_runs(limit=1)
        if not runs or runs[0].summary is None or runs[0].status != "completed":
            return None
        run = runs[0]
        lab = [r.cpu_percent for r in store.resources(run.id, role="lab") if r.cpu_percent is not None]
    s = run.summary
    assert s is not None
    return Result("", s.throughput_rps, s.latency_ms.p95, s.generator_peak_cpu_percent,
                  statistics.fmean(lab) if lab else None)


def run_headless(path: Path, variant: str, db: Path) -> Result | None:
    """``lab run PATH --variant V --format json``; the figures from its own database."""
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "run", str(path), "--variant", variant, "--format", "json",
         "--quiet", "--db", str(db), "--experiments", str(path.parent)],
        cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  headless run failed ({proc.returncode}): {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    json.loads(proc.stdout)  # the contract holds
    result = _last_run(db)
    return None if result is None else replace(result, mode="headless")


def run_tui(path: Path, variant: str, db: Path, size: tuple[int, int], timeout_s: float) -> Result | None:
    """``lab tui`` in a pseudo-terminal of ``size`` (columns, rows), auto-starting the run.

    The terminal's output is read and thrown away as fast as it comes, as a terminal
    emulator would consume it, so the app never blocks on a full pty buffer.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "LAB_TUI_AUTORUN": f"{path.stem}:{variant}", "LAB_TUI_EXIT_WHEN_DONE": "1",
           "TERM": "xterm-256color", "COLUMNS": str(size[0]), "LINES": str(size[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "tui", "--db", str(db), "--experiments", str(path.parent)],
        cwd=REPO, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    received = [0]

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            received[0] += len(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(30)
        print("  tui run timed out", file=sys.stderr)
        return None
    finally:
        os.close(master)
        reader.join(2)
    if code != 0:
        print(f"  tui exited with {code}", file=sys.stderr)
    if received[0] < 10_000:
        print(f"  tui drew only {received[0]} bytes", file=sys.stderr)
    result = _last_run(db)
    return None if result is None else replace(result, mode="tui")


def main() -> None:
    """Parse options, run the alternating series, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="caching")
    parser.add_argument("--variant", default="lru")
    parser.add_argument("--duration", default="15s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--experiments", type=Path, default=REPO / "experiments")
    parser.add_argument("--size", default="80x24", help="TUI terminal size, COLUMNSxROWS")
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    try:
        path = prepare(args.experiments, args.experiment, args.duration, work)
        print(f"{args.experiment} / {args.variant}, {args.duration}, {args.repeats}× each, "
              f"TUI at {cols}×{rows}, {os.cpu_count()} cores")
        results: list[Result] = []
        for i in range(args.repeats):
            # ABBA: headless first on even rounds, the TUI first on odd ones.
            order = ("headless", "tui") if i % 2 == 0 else ("tui", "headless")
            for mode in order:
                db = work / f"{mode}.db"
                if mode == "headless":
                    r = run_headless(path, args.variant, db)
                else:
                    r = run_tui(path, args.variant, db, (cols, rows), timeout_s=180)
                if r is None:
                    continue
                results.append(r)
                gen = "–" if r.generator_peak_cpu is None else f"{r.generator_peak_cpu:.0f}%"
                lab = "–" if r.lab_cpu_mean is None else f"{r.lab_cpu_mean:.1f}%"
                print(f"  round {i + 1} {mode:8} {r.throughput_rps:9.1f} req/s  p95 {r.p95_ms:7.1f} ms  "
                      f"generator peak CPU {gen:>5}  lab process CPU {lab:>6}", flush=True)
        by_mode = {m: [r.throughput_rps for r in results if r.mode == m] for m in ("headless", "tui")}
        if not all(by_mode.values()):
            sys.exit("not enough completed runs to compare")
        headless = statistics.median(by_mode["headless"])
        tui = statistics.median(by_mode["tui"])
        ratio = tui / headless
        for mode, values in by_mode.items():
            spread = (max(values) - min(values)) / statistics.median(values) * 100
            lab_cpu = [r.lab_cpu_mean for r in results if r.mode == mode and r.lab_cpu_mean is not None]
            cpu = f", lab process {statistics.fmean(lab_cpu):.1f}% CPU" if lab_cpu else ""
            print(f"{mode:8}: median {statistics.median(values):8.1f} req/s, spread {spread:4.0f}% "
                  f"of the median{cpu}")
        # The question is whether watching costs throughput, so only a loss counts.
        verdict = "meets" if ratio >= 0.95 else "MISSES"
        print(f"TUI/headless {ratio:.3f} ({(ratio - 1) * 100:+.1f} %): {verdict} the target "
              "(the TUI at most 5 % below headless); a spread larger than the difference means "
              "the machine's noise, not the TUI, decides it")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The TUI's plain parts: the live snapshot the bridge keeps, the experiments catalog,
and the boundary that keeps Textual out of the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from lab.events import GeneratorBound, GeneratorInfo, GeneratorsReady, ResourceSample, RunFinished
from lab.tui.catalog import discover
from lab.tui.live_model import LiveBridge, LiveSnapshot
from lab.tui.screens.live import clock_warning, level_step, load_source
from tests.conftest import REPO
from tests.synthetic import synthetic_events
from tests.tui.conftest import caching_plans


def _gen(t: float, cpu: float | None, pid: int = 7) -> ResourceSample:
    return ResourceSample("k", t, "generator", pid, cpu, t, 1, 1, 1)


def test_generator_bound_comes_from_the_engines_rule_not_from_psutil_alone() -> None:
    # The live warning is the engine's GeneratorBound (the stored verdict's rule, over the
    # workers' own reports); saturated psutil readings alone no longer raise it.
    bridge = LiveBridge()
    for t in range(7):
        bridge(_gen(t, 99.0))
    assert not bridge.snapshot.generator_bound
    bridge(GeneratorBound("k", 6.0, "generator event-loop lag p99 31.0 ms > 10 ms",
                          "generator loop lag p99 31.0 ms > 10 ms"))
    assert bridge.snapshot.generator_bound and bridge.snapshot.generator_bound_at == 6
    assert bridge.snapshot.generator_bound_headline == "generator loop lag p99 31.0 ms > 10 ms"
    bridge(_gen(7, 10.0))
    assert bridge.snapshot.generator_bound  # it stays: the run's figures are affected


def test_two_generators_are_watched_one_by_one() -> None:
    bridge = LiveBridge()
    for t in (1, 2, 3):
        bridge(_gen(t, 95.0 if t != 2 else 50.0, pid=1))
        bridge(_gen(t, 50.0 if t != 2 else 95.0, pid=2))
    assert not bridge.snapshot.generator_bound
    assert bridge.snapshot.generator_cpu_total == 145.0


def test_bridge_folds_a_run(experiments_dir: Path) -> None:
    plan = caching_plans(experiments_dir)[1]
    snap = LiveSnapshot()
    bridge = LiveBridge(snap)
    events = synthetic_events(plan, "k", 100, 10.0, 6, 0.0, user_change_at=3, errors_every=2)
    for event in events:
        bridge(event)
    assert snap.variant == "lru" and snap.total_s == 20 and snap.phase == "running"
    assert snap.t == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and snap.elapsed_s == 6.0
    assert snap.requests == snap.ok + snap.errors and snap.errors == 3
    assert snap.errors_by_class == {"http_5xx": 3}
    assert [(m.t_s, m.reason) for m in snap.markers] == [(0.0, "stage"), (3.0, "user")]
    assert snap.level == 40 and snap.levels[-1] == 40
    assert snap.target_cpu is not None and snap.system_cpu == 150.0 and snap.cores == 2
    version = snap.version
    bridge(ResourceSample("k", 6.01, "target", 1, None, 1.0, 5, 1, 1))
    assert snap.target_cpu is not None  # a reading without a percent keeps the last one
    assert snap.version == version + 1


def _dask(cluster: str, scheduler: str, *where: tuple[str, float]) -> GeneratorsReady:
    return GeneratorsReady("k", "dask", cluster, scheduler, tuple(
        GeneratorInfo(i, host, 100 + i, f"tcp://{host}:{9000 + i}", offset)
        for i, (host, offset) in enumerate(where)))


def test_load_source_names_the_cluster_then_its_workers_and_scheduler() -> None:
    snap = LiveSnapshot(cluster="local:2")
    bridge = LiveBridge(snap)
    assert load_source(snap) == "load from: Dask cluster local:2 · waiting for its generator workers…"
    bridge(_dask("local:2", "tcp://127.0.0.1:40413", ("lab-a", 1.0), ("lab-a", -2.0)))
    assert load_source(snap) == ("load from: 2 generator workers on 1 host (dask) · cluster local:2 · "
                                 "scheduler tcp://127.0.0.1:40413")
    assert clock_warning(snap) == ""  # both within 50 ms
    # A cluster the user named by its address is its own scheduler: named once.
    snap = LiveSnapshot(cluster="tcp://10.0.0.5:8786")
    LiveBridge(snap)(_dask("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786", ("host-a", 0.0), ("host-b", 0.0),
                           ("host-b", 0.0)))
    assert load_source(snap) == "load from: 3 generator workers on 2 hosts (dask) · cluster tcp://10.0.0.5:8786"
    # Local generator processes: no line (the Resources panel counts them).
    local = LiveSnapshot()
    LiveBridge(local)(GeneratorsReady("k", "local", None, None, (GeneratorInfo(0, "lab-a", 1),)))
    assert load_source(local) == "" and local.load_from == "1 generator worker"


def test_a_run_that_ends_before_its_workers_are_ready_stops_waiting() -> None:
    snap = LiveSnapshot(cluster="tcp://10.0.0.5:8786")
    LiveBridge(snap)(RunFinished("k", "failed", "--cluster tcp://10.0.0.5:8786: no answer", 1.0, None))
    assert load_source(snap) == "load from: Dask cluster tcp://10.0.0.5:8786"


def test_clocks_off_the_scheduler_are_one_warning_naming_each() -> None:
    snap = LiveSnapshot(cluster="tcp://10.0.0.5:8786")
    bridge = LiveBridge(snap)
    bridge(_dask("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786", ("host-a", 3.0), ("host-b", 73.4)))
    assert clock_warning(snap) == (
        "⚠ host-b, worker 1: its clock is +73 ms off the Dask scheduler's (over 50 ms): its intervals "
        "are shifted by as much; sync the clocks (chrony, ntpd)")
    bridge(_dask("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786", ("host-a", -120.0), ("host-b", 50.0),
                 ("host-c", 51.0)))
    # 50 ms is the limit itself, not over it.
    assert clock_warning(snap) == (
        "⚠ clocks over 50 ms off the Dask scheduler's: host-a, worker 0 -120 ms; host-c, worker 2 +51 ms: "
        "their intervals are shifted by as much; sync the clocks (chrony, ntpd)")


def test_level_step_is_a_quarter_of_the_plan(experiments_dir: Path) -> None:
    assert level_step(caching_plans(experiments_dir)[0]) == 8  # 32 VUs


def test_catalog_lists_invalid_files_with_their_error(experiments_dir: Path, tmp_path: Path) -> None:
    (experiments_dir / "notes.txt").write_text("not an experiment")
    (experiments_dir / "garbled.toml").write_text("[experiment\n")
    entries = discover(experiments_dir)
    assert [e.name for e in entries] == ["broken", "caching", "garbled", "quick"]
    garbled = entries[2]
    assert not garbled.valid and garbled.error is not None
    assert garbled.error.startswith("garbled.toml:1: invalid TOML")
    caching = entries[1]
    assert [v.name for v in caching.variants] == ["no-cache", "lru"]
    assert caching.variants[0].load == "closed model, 32 VUs, 20 s (warm-up 3 s)"
    assert discover(tmp_path / "missing") == []


def test_catalog_names_the_cluster_an_experiment_runs_on(experiments_dir: Path) -> None:
    from tests.tui.test_live_cluster import CLUSTERED

    (experiments_dir / "clustered.toml").write_text(CLUSTERED)
    (clustered,) = [e for e in discover(experiments_dir) if e.name == "clustered"]
    assert clustered.variants[0].load == "closed model, 2 VUs, 60 s, from Dask cluster local:2"


def test_textual_stays_inside_lab_tui() -> None:
    """No module outside lab/tui imports textual or lab.tui (read from the source); the
    CLI may, inside the `tui` and `web` commands only, so `lab run` never loads it."""
    offenders = []
    for path in (REPO / "lab").rglob("*.py"):
        if "tui" in path.relative_to(REPO / "lab").parts:
            continue
        tree = ast.parse(path.read_text())
        in_cli = path.relative_to(REPO / "lab").parts[0] in ("cli", "cli.py")
        nodes = tree.body if in_cli else list(ast.walk(tree))
        for node in nodes:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("textual", "textual_plotext", "textual_serve") or \
                        name.startswith("lab.tui"):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


def test_tui_model_modules_do_not_need_textual() -> None:
    code = ("import sys, lab.tui.live_model, lab.tui.catalog; "
            "assert 'textual' not in sys.modules, 'textual imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)

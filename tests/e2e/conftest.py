"""Fixtures of the end-to-end tests: runs made once and shared by several files."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, leaves_no_processes, run_lab


@dataclass(frozen=True)
class CachingRun:
    """``lab run caching`` of no-cache, lru and (with redis-server installed) redis, as a
    table, into ``db``: the runs tests/e2e/test_caching.py and
    tests/e2e/experiments/test_caching_redis.py both assert on (read-only)."""

    db: Path
    res: subprocess.CompletedProcess[str]
    run_ids: tuple[int, ...]
    variants: tuple[str, ...]
    """The variants of ``run_ids``, in run order."""


@pytest.fixture(scope="session")
def caching_run(tmp_path_factory: pytest.TempPathFactory) -> CachingRun:
    """One run of the caching experiment for the session: the no-cache baseline of the two
    tests is the same 4 s run, so it is made once (4 s per variant, 1 s warm-up)."""
    from lab.store import Store

    variants = ["no-cache", "lru"] + (["redis"] if shutil.which("redis-server") else [])
    db = tmp_path_factory.mktemp("caching") / "results.db"
    with leaves_no_processes("lab run caching"):
        res = run_lab("run", "experiments/caching.toml", "--duration", "4s", "--warmup", "1s",
                      *(arg for name in variants for arg in ("--variant", name)),
                      "--db", str(db), cwd=REPO, timeout=180)
    runs: list[tuple[int, str]] = []
    if db.exists():
        with Store(db, readonly=True) as store:
            runs = sorted((r.id, r.variant) for r in store.list_runs())
    return CachingRun(db, res, tuple(i for i, _ in runs), tuple(v for _, v in runs))

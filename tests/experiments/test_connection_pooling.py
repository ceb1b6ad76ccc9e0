"""The connection-pooling experiment: NullPool vs QueuePool (PostgreSQL, or SQLite)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.services import find_components
from targets import pooling
from tests.conftest import REPO, run_lab
from tests.figures import target_stat
from tests.test_targets_apps import running


@pytest.fixture
def pool_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DATABASE_URL", "POOL", "POOL_SIZE", "POOL_MAX_OVERFLOW", "ACCOUNTS",
                 "SQLITE_APP_TABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCOUNTS", "500")
    monkeypatch.setenv("SQLITE_APP_TABLES", "40")
    return monkeypatch


def exists(path: str) -> bool:
    return Path(path).exists()


def test_psycopg_url() -> None:
    assert pooling.psycopg_url("postgresql://lab@127.0.0.1:5433/postgres") == \
        "postgresql+psycopg://lab@127.0.0.1:5433/postgres"
    assert pooling.psycopg_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert pooling.psycopg_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_config_is_validated(pool_env: pytest.MonkeyPatch) -> None:
    config = pooling.PoolConfig.from_env()
    assert (config.pool, config.database_url, config.accounts) == ("queue", None, 500)
    for name, value in [("POOL", "static"), ("POOL_SIZE", "0"), ("POOL_MAX_OVERFLOW", "x"),
                        ("DATABASE_URL", "mysql://u@h/db")]:
        pool_env.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            pooling.PoolConfig.from_env()
        pool_env.delenv(name)


async def _serve(pool_env: pytest.MonkeyPatch, pool: str, n: int) -> tuple[dict[str, Any], list[Any]]:
    pool_env.setenv("POOL", pool)
    made: list[str] = []
    real_mkdtemp = pooling.tempfile.mkdtemp

    def mkdtemp(**kwargs: Any) -> str:
        made.append(real_mkdtemp(**kwargs))
        return made[-1]

    pool_env.setattr(pooling.tempfile, "mkdtemp", mkdtemp)
    async with running(pooling.app) as client:
        bodies = [(await client.get(f"/accounts/{i}")).json() for i in range(1, n + 1)]
        assert (await client.get("/accounts/100000")).status_code == 404
        assert (await client.get("/accounts/abc")).status_code == 404
        stats = (await client.get("/stats")).json()
    assert len(made) == 1 and not exists(made[0])  # the SQLite fallback is removed at exit
    return stats, bodies


async def test_nullpool_opens_a_connection_per_request(pool_env: pytest.MonkeyPatch) -> None:
    stats, bodies = await _serve(pool_env, "null", 20)
    assert [b["id"] for b in bodies] == list(range(1, 21))
    assert stats["requests"] == 22  # the two 404s count too
    assert stats["connections_opened"] == 21  # a connection for each query ("abc" needs none)
    assert stats["gauges"] == {"pool_checked_out": 0, "connections_open": 0}
    assert stats["info"] == {"backend": "sqlite", "pool": "null"}
    assert stats["connect_ms"] > 0


async def test_queuepool_reuses_connections(pool_env: pytest.MonkeyPatch) -> None:
    stats, bodies = await _serve(pool_env, "queue", 20)
    null_stats, null_bodies = await _serve(pool_env, "null", 20)
    assert bodies == null_bodies  # the same data and query, whatever the pool
    assert stats["connections_opened"] == 1  # one request at a time: one pooled connection
    assert stats["gauges"] == {"pool_checked_out": 0, "connections_open": 1}
    assert stats["info"] == {"backend": "sqlite", "pool": "queue"}
    # Per-connection setup (PRAGMAs, parsing the schema) is paid 21 times vs once.
    assert null_stats["connect_ms"] > 3 * stats["connect_ms"]


def test_sqlite_fallback_has_an_application_sized_schema(tmp_path: Path) -> None:
    import sqlite3

    path = str(tmp_path / "app.db")
    pooling.build_sqlite(path, accounts=50, app_tables=10)
    with sqlite3.connect(path) as db:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        indexes = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index'").fetchone()[0]
        assert db.execute("SELECT count(*) FROM accounts").fetchone()[0] == 50
    db.close()
    assert (tables, indexes) == (11, 20)


def test_connection_pooling_experiment_shows_the_pool_winning(db_path: Path) -> None:
    # The pool fills during the 1 s warm-up; 1 s measured. Like this (3 runs on 2 cores,
    # postgres): 379–411 → 1,450–1,750 req/s (3.8–4.4x), p50 38–41 → 8–9 ms.
    res = run_lab("run", "experiments/connection-pooling.toml", "--duration", "2s", "--warmup", "1s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [r["status"] for r in doc["runs"]] == ["completed", "completed"], res.stderr
    runs = {r["variant"]: r for r in doc["runs"]}
    null, queue = runs["nullpool"], runs["queuepool"]
    a, b = null["summary"], queue["summary"]
    assert a["error_rate"] == 0 and b["error_rate"] == 0
    backend = "postgres" if find_components()["postgres"].usable else "sqlite"
    assert target_stat(null, "info") == {"backend": backend, "pool": "null"}
    assert target_stat(queue, "info") == {"backend": backend, "pool": "queue"}
    # Measured on 2 cores over 15 s: postgres 411 -> 1,743 req/s (4.2x), p50 39 -> 8 ms;
    # SQLite fallback 564 -> 4,975 req/s (8.8x). A short run on a busy CI machine: 1.8x.
    assert b["throughput_rps"] >= 1.8 * a["throughput_rps"], (a, b)
    assert b["latency_ms"]["p50"] * 1.5 <= a["latency_ms"]["p50"], (a, b)
    # The cause, counted by the target: a new connection for every NullPool request.
    assert target_stat(null, "per_request", "connections_opened") == pytest.approx(1.0, abs=0.05)
    assert target_stat(queue, "per_request", "connections_opened") < 0.3
    assert target_stat(queue, "gauges", "pool_checked_out", "max") <= 16  # 10 + 6 overflow

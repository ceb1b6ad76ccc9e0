"""The connection-pooling target in process: NullPool vs QueuePool on SQLite, its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from targets import pooling
from tests.asgi import running


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

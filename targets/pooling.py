"""Account lookup: the connection-pooling experiment's target.

``GET /accounts/{id}`` runs one small indexed query through SQLAlchemy (a sync
handler, so Starlette runs it in its threadpool, as most web apps do). The only thing
the variants change is the engine's pool:

- ``POOL=null``: ``NullPool``: every request opens a new database connection and
  closes it afterwards.
- ``POOL=queue``: ``QueuePool`` (``POOL_SIZE`` kept open, default 5, plus up to
  ``POOL_MAX_OVERFLOW`` more under bursts, default 10): connections are opened once and
  reused.

Database: PostgreSQL at ``DATABASE_URL`` (``postgresql://...``; driven with psycopg 3)
when set. A new PostgreSQL connection costs a TCP handshake, a forked server backend,
authentication and session setup: milliseconds, against a sub-millisecond query.

Fallback without ``DATABASE_URL``: a SQLite file in a temporary directory that looks
like a real application's database: besides the ``accounts`` table it holds a schema
of ``SQLITE_APP_TABLES`` other tables (default 120, each with two indexes). SQLite
has no server, network or login, but every new connection runs the per-connection
PRAGMAs and must read and parse the whole schema (``sqlite_master``) before its first
statement, and starts with an empty page cache. That is the cost NullPool pays again
on every request here: real, and smaller per connection than PostgreSQL's (no
round trips), though the throughput gap comes out larger, because a pooled SQLite
query costs almost nothing next to a pooled PostgreSQL one.

Settings (environment, read at startup): ``POOL``, ``POOL_SIZE``, ``POOL_MAX_OVERFLOW``,
``DATABASE_URL``, ``ACCOUNTS`` (rows, default 10000), ``SQLITE_APP_TABLES``.

``GET /stats``: counters ``requests``, ``connections_opened``, ``connect_ms`` (time
spent opening connections, including the per-connection setup); gauges
``pool_checked_out`` (connections in use now) and ``connections_open``; info
``backend`` (``postgres`` | ``sqlite``) and ``pool``. A request and the connection it
opened are counted together when it is answered, so ``NullPool`` reads exactly one
connection per request over any window. Also served on ``LAB_STATS_PORT``
(``targets.statsport``).

Run: ``POOL=queue uvicorn targets.pooling:app --port 8000``
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import NullPool, QueuePool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats

SEED = 20240611
# What a typical app sets on every new SQLite connection (these do not persist in the file).
SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA cache_size = -8000",
    "PRAGMA temp_store = MEMORY",
)


@dataclass
class PoolConfig:
    """Settings read from the environment when the app starts."""

    pool: str = "queue"
    pool_size: int = 5
    max_overflow: int = 10
    database_url: str | None = None
    accounts: int = 10_000
    app_tables: int = 120

    @classmethod
    def from_env(cls) -> PoolConfig:
        """Read and validate the environment; raise ValueError with a readable message."""
        pool = os.environ.get("POOL", "queue").strip().lower()
        if pool not in ("null", "queue"):
            raise ValueError(f"POOL must be 'null' or 'queue', got {pool!r}")

        def number(name: str, default: int, low: int) -> int:
            raw = os.environ.get(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from None
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
            return value

        url = os.environ.get("DATABASE_URL") or None
        if url is not None and not url.startswith(("postgresql://", "postgres://",
                                                   "postgresql+psycopg://")):
            raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url!r}")
        return cls(pool=pool, pool_size=number("POOL_SIZE", 5, 1),
                   max_overflow=number("POOL_MAX_OVERFLOW", 10, 0), database_url=url,
                   accounts=number("ACCOUNTS", 10_000, 1),
                   app_tables=number("SQLITE_APP_TABLES", 120, 0))


def psycopg_url(url: str) -> str:
    """``postgresql://...`` → ``postgresql+psycopg://...`` (SQLAlchemy's psycopg 3 driver)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass
class PoolStats:
    """Counters and gauges, updated from SQLAlchemy pool events in threadpool threads.

    A connection opened while a request runs in the thread is held in the request's
    tally (``request``) and counted with the request when it ends."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    connect_s: float = 0.0
    checked_out: int = 0
    current: threading.local = field(default_factory=threading.local)

    def opened(self, connect_s: float) -> None:
        """Count a connection opened (``connect_s`` spent opening it)."""
        tally = getattr(self.current, "tally", None)
        if tally is not None:
            tally[0] += 1
            tally[1] += connect_s
            return
        with self.lock:
            self.connections_opened += 1
            self.connect_s += connect_s

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count one request, with the connections it opens, when it ends."""
        tally: list[float] = [0, 0.0]
        self.current.tally = tally
        try:
            yield
        finally:
            self.current.tally = None
            with self.lock:
                self.requests += 1
                self.connections_opened += int(tally[0])
                self.connect_s += tally[1]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "connections_opened": self.connections_opened,
                "connect_ms": round(self.connect_s * 1000, 3),
                "gauges": {"pool_checked_out": self.checked_out,
                           "connections_open": self.connections_opened - self.connections_closed},
            }


def build_sqlite(path: str, accounts: int, app_tables: int, seed: int = SEED) -> None:
    """The fallback database file: the accounts table plus a sizeable app schema."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
                   "balance REAL NOT NULL, status TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?, ?)",
            [(i, f"owner{rng.randint(1, 10**6)}", round(rng.uniform(0, 10_000), 2),
              rng.choice(("open", "frozen", "closed"))) for i in range(1, accounts + 1)],
        )
        # The rest of "the application": tables it has but this endpoint never touches.
        # SQLite still parses every one of them on each new connection's first statement.
        for t in range(app_tables):
            columns = ", ".join(f"field_{c} TEXT" for c in range(10))
            parent = f" REFERENCES app_table_{t - 1}(id)" if t else ""
            db.execute(f"CREATE TABLE app_table_{t} (id INTEGER PRIMARY KEY, {columns}, "
                       f"created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, "
                       f"parent_id INTEGER{parent})")
            db.execute(f"CREATE INDEX app_table_{t}_field_0 ON app_table_{t}(field_0)")
            db.execute(f"CREATE INDEX app_table_{t}_parent ON app_table_{t}(parent_id, created_at)")
        db.commit()
    finally:
        db.close()


@dataclass
class Database:
    """The engine requests use, plus what it takes to clean up."""

    engine: Engine
    backend: str
    table: str
    tmpdir: str | None = None
    setup_url: str | None = None


def open_database(config: PoolConfig, stats: PoolStats) -> Database:
    """Create the data (PostgreSQL or the SQLite fallback) and the pooled engine."""
    pool_args: dict[str, Any] = (
        {"poolclass": NullPool} if config.pool == "null"
        else {"poolclass": QueuePool, "pool_size": config.pool_size,
              "max_overflow": config.max_overflow, "pool_timeout": 10}
    )
    if config.database_url is not None:
        url = psycopg_url(config.database_url)
        # One table per process: several targets may share a server; dropped at exit.
        table = f"lab_pooling_accounts_{os.getpid()}"
        setup = create_engine(url, poolclass=NullPool)
        try:
            with setup.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
                conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
                                  "balance NUMERIC(12, 2) NOT NULL, status TEXT NOT NULL)"))
                conn.execute(text(
                    f"INSERT INTO {table} SELECT i, 'owner' || (i * 7919 % 1000003), "
                    f"round(((i * 104729) % 1000000) / 100.0, 2), "
                    f"(ARRAY['open', 'frozen', 'closed'])[1 + i % 3] "
                    f"FROM generate_series(1, :n) AS i"), {"n": config.accounts})
                conn.execute(text(f"ANALYZE {table}"))
        finally:
            setup.dispose()
        db = Database(create_engine(url, **pool_args), "postgres", table, setup_url=url)
    else:
        tmpdir = tempfile.mkdtemp(prefix="lab-pooling-")
        path = os.path.join(tmpdir, "app.db")
        build_sqlite(path, config.accounts, config.app_tables)
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False},
                               **pool_args)

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                for pragma in SQLITE_PRAGMAS:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        db = Database(engine, "sqlite", "accounts", tmpdir=tmpdir)
    watch_pool(db.engine, stats)
    return db


def watch_pool(engine: Engine, stats: PoolStats) -> None:
    """Count connections opened/closed, time spent connecting, and checked-out ones."""

    @event.listens_for(engine, "do_connect")
    def _started(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        record.info["lab_connect_started"] = time.perf_counter()

    # insert=False: runs after the dialect's and the app's own "connect" hooks
    # (session setup, PRAGMAs), so connect_ms covers the full per-connection setup.
    @event.listens_for(engine, "connect")
    def _opened(dbapi_connection: Any, record: Any) -> None:
        started = record.info.pop("lab_connect_started", None)
        stats.opened(time.perf_counter() - started if started is not None else 0.0)

    @event.listens_for(engine, "close")
    def _closed(dbapi_connection: Any, record: Any) -> None:
        with stats.lock:
            stats.connections_closed += 1

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        with stats.lock:
            stats.checked_out += 1

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        with stats.lock:
            stats.checked_out -= 1


def close_database(db: Database) -> None:
    db.engine.dispose()
    if db.backend == "postgres" and db.setup_url is not None:
        setup = create_engine(db.setup_url, poolclass=NullPool)
        try:
            with setup.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {db.table}"))
        except Exception as exc:  # the server may be stopping already; the table is harmless
            print(f"pooling: could not drop {db.table}: {exc}", file=sys.stderr, flush=True)
        finally:
            setup.dispose()
    if db.tmpdir is not None:
        shutil.rmtree(db.tmpdir, ignore_errors=True)


@dataclass
class PoolingApp:
    config: PoolConfig
    db: Database
    stats: PoolStats
    query: Any

    def stats_now(self) -> dict[str, Any]:
        """The ``/stats`` figures (read from any thread)."""
        return {**self.stats.snapshot(), "info": {"backend": self.db.backend, "pool": self.config.pool}}


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, PoolingApp]]:
    """Read config, create the data and the engine; drop them at exit."""
    try:
        config = PoolConfig.from_env()
    except ValueError as exc:
        print(f"pooling: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    stats = PoolStats()
    try:
        db = await run_in_threadpool(open_database, config, stats)
    except Exception as exc:
        print(f"pooling: cannot set up the database: {exc}", file=sys.stderr, flush=True)
        raise
    query = text(f"SELECT id, owner, balance, status FROM {db.table} WHERE id = :id")
    state = PoolingApp(config, db, stats, query)
    try:
        with serve_stats(state.stats_now):
            yield {"pooling": state}
    finally:
        await run_in_threadpool(close_database, db)


def account(request: Request) -> Response:
    """One account by id: a connection from the engine (new or pooled), one query."""
    state: PoolingApp = request.state.pooling
    with state.stats.request():
        try:
            account_id = int(request.path_params["account_id"])
        except ValueError:
            return JSONResponse({"error": "not found"}, status_code=404)
        with state.db.engine.connect() as conn:
            row = conn.execute(state.query, {"id": account_id}).first()
    if row is None:
        return JSONResponse({"error": "not found", "id": account_id}, status_code=404)
    return JSONResponse({"id": row[0], "owner": row[1], "balance": float(row[2]), "status": row[3]})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    state: PoolingApp = request.state.pooling
    return JSONResponse(state.stats_now())


app = Starlette(
    routes=[
        Route("/accounts/{account_id}", account),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)

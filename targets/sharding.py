"""Sample target for the sharding experiment: a write-heavy endpoint on SQLite shards.

``POST /accounts/{key}/deposit`` books one deposit: in one transaction it appends a row
to the ledger and adds the amount to the account's balance, then commits (and SQLite
flushes the commit to disk). Accounts are partitioned by key across ``SHARDS`` SQLite
files: account ``key`` lives in shard ``key % SHARDS``. With one shard every write goes
to the same file.

SQLite lets one writer at a time into a database file: a transaction that wants to
write takes the file's write lock (``BEGIN IMMEDIATE``) and keeps it until its commit is
on disk. Any other writer of that file waits for the lock (SQLite's busy handler sleeps
and retries, up to ``BUSY_TIMEOUT_MS``). Shards are separate files with separate locks,
so writes to different shards run at the same time and their disk flushes overlap.

The handler runs each write in a worker thread (the sqlite3 module releases the GIL
while SQLite works and while it waits for the disk), so one server process has many
writers in flight; with ``workers = 2`` two processes do, and they share the files.

Environment, read at startup:

- ``SHARDS`` (default 1): number of shard files, 1..64.
- ``JOURNAL`` (default ``delete``, SQLite's default rollback journal): ``delete``,
  ``truncate``, ``persist`` or ``wal``.
- ``SYNCHRONOUS`` (default ``full``): ``off``, ``normal``, ``full`` or ``extra``.
- ``BUSY_TIMEOUT_MS`` (default 10000): how long a writer waits for a shard's lock.
- ``ACCOUNTS`` (default 100000): accounts created (balance 0) at startup.

The shard files live in a temporary directory shared by the server's worker processes
and removed when the last one stops. ``/stats`` sums the counters of every worker
process (each keeps its own in a small memory-mapped file in that directory):
``requests`` (deposits committed), ``lock_wait_ms`` (time spent waiting for a shard's
write lock), ``write_ms`` (time from holding the lock to the commit being on disk),
``busy_errors`` (writes that gave up after ``BUSY_TIMEOUT_MS``).

Run: ``SHARDS=4 uvicorn targets.sharding:app --workers 2 --port 8000``
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import mmap
import multiprocessing
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats

JOURNALS = ("delete", "truncate", "persist", "wal")
SYNCHRONOUS = ("off", "normal", "full", "extra")
MAX_SHARDS = 64
READY_FILE = "ready"
# The per-process counters, in this order, as little-endian int64s in counters-<pid>.bin.
COUNTERS = ("requests", "lock_wait_us", "write_us", "busy_errors")
_LAYOUT = struct.Struct("<" + "q" * len(COUNTERS))
SETUP_WAIT_S = 20.0


@dataclass(frozen=True)
class ShardConfig:
    shards: int
    journal: str
    synchronous: str
    busy_timeout_ms: int
    accounts: int

    @classmethod
    def from_env(cls) -> ShardConfig:
        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = os.environ.get(name, "")
            try:
                value = int(raw) if raw.strip() else default
            except ValueError:
                raise ValueError(f"{name} must be an integer (got {raw!r})") from None
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high} (got {value})")
            return value

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = os.environ.get(name, "").strip().lower() or default
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
            return value

        return cls(
            shards=integer("SHARDS", 1, 1, MAX_SHARDS),
            journal=choice("JOURNAL", "delete", JOURNALS),
            synchronous=choice("SYNCHRONOUS", "full", SYNCHRONOUS),
            busy_timeout_ms=integer("BUSY_TIMEOUT_MS", 10_000, 0, 600_000),
            accounts=integer("ACCOUNTS", 100_000, 1, 10_000_000),
        )


def shard_of(key: int, shards: int) -> int:
    """The shard that holds account ``key``."""
    return key % shards


def server_directory() -> str:
    """The data directory every worker process of this server agrees on.

    ``uvicorn --workers N`` spawns the workers from one supervisor process, so they
    share its pid; a single-process server is its own group. The process's start time
    (from /proc, where there is one) keeps a reused pid from meeting an old directory.
    """
    parent = multiprocessing.parent_process()
    pid = parent.pid if parent is not None and parent.pid is not None else os.getpid()
    started = ""
    with contextlib.suppress(OSError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            started = "-" + f.read().rsplit(")", 1)[1].split()[19]
    return os.path.join(tempfile.gettempdir(), f"lab-sharding-{pid}{started}")


class Counters:
    """This process's counters in a memory-mapped file that other workers can read."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, f"counters-{os.getpid()}.bin")
        with open(self.path, "wb") as f:
            f.write(bytes(_LAYOUT.size))
        self._file = open(self.path, "r+b")  # noqa: SIM115 - kept open with the map
        self._map = mmap.mmap(self._file.fileno(), _LAYOUT.size)
        self._lock = threading.Lock()

    def add(self, **deltas: int) -> None:
        with self._lock:
            values = list(_LAYOUT.unpack_from(self._map, 0))
            for name, delta in deltas.items():
                values[COUNTERS.index(name)] += delta
            _LAYOUT.pack_into(self._map, 0, *values)

    def close(self) -> None:
        self._map.close()
        self._file.close()
        with contextlib.suppress(OSError):
            os.remove(self.path)

    @staticmethod
    def total(directory: str) -> dict[str, int]:
        """The sum of the counters of every worker process still running."""
        sums = [0] * len(COUNTERS)
        for path in glob.glob(os.path.join(directory, "counters-*.bin")):
            with contextlib.suppress(OSError, struct.error), open(path, "rb") as f:
                for i, value in enumerate(_LAYOUT.unpack(f.read(_LAYOUT.size))):
                    sums[i] += value
        return dict(zip(COUNTERS, sums, strict=True))


class Shards:
    """The shard files of one server, with one connection per shard per thread."""

    def __init__(self, config: ShardConfig, directory: str) -> None:
        self.config = config
        self.directory = directory
        self.paths = [os.path.join(directory, f"shard-{i}.db") for i in range(config.shards)]
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def connect(self, path: str) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        db = sqlite3.connect(path, timeout=self.config.busy_timeout_ms / 1000,
                             isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA synchronous={self.config.synchronous}")
        return db

    def create(self) -> None:
        """Create every shard with its accounts (balance 0), deterministically."""
        for index, path in enumerate(self.paths):
            db = self.connect(path)
            try:
                db.execute(f"PRAGMA journal_mode={self.config.journal}")
                db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, "
                           "deposits INTEGER NOT NULL, updated_at REAL NOT NULL)")
                db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, account INTEGER NOT NULL, "
                           "amount INTEGER NOT NULL, at REAL NOT NULL)")
                db.execute("CREATE INDEX ledger_account ON ledger (account)")
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO accounts (id, balance, deposits, updated_at) VALUES (?, 0, 0, 0)",
                    ((key,) for key in range(1, self.config.accounts + 1)
                     if shard_of(key, self.config.shards) == index),
                )
                db.execute("COMMIT")
            finally:
                db.close()

    def _connection(self, shard: int) -> sqlite3.Connection:
        conns: dict[int, sqlite3.Connection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        db = conns.get(shard)
        if db is None:
            db = conns[shard] = self.connect(self.paths[shard])
            with self._all_lock:
                self._all.append(db)
        return db

    def deposit(self, key: int, amount: int) -> tuple[int, int, float, float]:
        """Book one deposit in its shard; returns (shard, balance, lock wait s, write s).

        Raises:
            sqlite3.OperationalError: the shard stayed locked for the whole busy timeout.
        """
        shard = shard_of(key, self.config.shards)
        db = self._connection(shard)
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")  # take the shard's write lock, waiting if it is held
        t1 = time.perf_counter()
        try:
            now = time.time()
            db.execute("INSERT INTO ledger (account, amount, at) VALUES (?, ?, ?)", (key, amount, now))
            row = db.execute(
                "INSERT INTO accounts (id, balance, deposits, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance, "
                "deposits = deposits + 1, updated_at = excluded.updated_at RETURNING balance",
                (key, amount, now),
            ).fetchone()
            db.execute("COMMIT")  # the lock is held until the commit is on disk
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return shard, int(row[0]), t1 - t0, time.perf_counter() - t1

    def balance(self, key: int) -> tuple[int, int, int] | None:
        """(shard, balance, deposits) of an account, or None when it does not exist."""
        shard = shard_of(key, self.config.shards)
        row = self._connection(shard).execute(
            "SELECT balance, deposits FROM accounts WHERE id = ?", (key,)).fetchone()
        return None if row is None else (shard, int(row[0]), int(row[1]))

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._all.clear()


@contextlib.contextmanager
def _dir_lock(directory: str) -> Iterator[None]:
    with open(os.path.join(directory, ".lock"), "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_server_data(config: ShardConfig, directory: str) -> None:
    """Create the shards once per server: the first worker builds them, the others wait."""
    try:
        os.mkdir(directory)
    except FileExistsError:
        deadline = time.monotonic() + SETUP_WAIT_S
        while not os.path.exists(os.path.join(directory, READY_FILE)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the shards in {directory} were not ready after "
                                   f"{SETUP_WAIT_S:g} s") from None
            time.sleep(0.02)
        return
    Shards(config, directory).create()
    with open(os.path.join(directory, READY_FILE), "w") as f:
        f.write(f"{config}\n")


def close_server_data(directory: str, counters: Counters) -> None:
    """Drop this worker's counters; the last worker to stop removes the directory."""
    with _dir_lock(directory):
        counters.close()
        if not glob.glob(os.path.join(directory, "counters-*.bin")):
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class App:
    config: ShardConfig
    directory: str
    shards: Shards
    counters: Counters

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures, summed over the worker processes (read from any thread;
        also served on ``LAB_STATS_PORT``, ``targets.statsport``)."""
        totals = Counters.total(self.directory)
        config = self.config
        return {
            "requests": totals["requests"],
            "lock_wait_ms": totals["lock_wait_us"] / 1000,
            "write_ms": totals["write_us"] / 1000,
            "busy_errors": totals["busy_errors"],
            "info": {"shards": str(config.shards),
                     "sqlite": f"journal={config.journal} synchronous={config.synchronous}"},
        }


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, App]]:
    try:
        config = ShardConfig.from_env()
    except ValueError as exc:
        print(f"sharding: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    directory = os.environ.get("SHARDING_DIR") or server_directory()
    open_server_data(config, directory)
    with _dir_lock(directory):
        counters = Counters(directory)
    shards = Shards(config, directory)
    # Enough threads that every virtual user's write can wait for a lock at once.
    anyio.to_thread.current_default_thread_limiter().total_tokens = 64
    state = App(config, directory, shards, counters)
    try:
        with serve_stats(state.stats):
            yield {"app": state}
    finally:
        shards.close()
        close_server_data(directory, counters)


def _key(request: Request) -> int | None:
    try:
        key = int(request.path_params["key"])
    except ValueError:
        return None
    return key if key >= 1 else None


async def deposit(request: Request) -> Response:
    """``POST /accounts/{key}/deposit?amount=N`` (amount default 1): one write."""
    state: App = request.state.app
    key = _key(request)
    if key is None:
        return JSONResponse({"error": "account keys are integers >= 1"}, status_code=404)
    try:
        amount = int(request.query_params.get("amount", "1"))
    except ValueError:
        return JSONResponse({"error": "amount must be an integer"}, status_code=400)
    try:
        shard, balance, waited_s, wrote_s = await anyio.to_thread.run_sync(
            state.shards.deposit, key, amount)
    except sqlite3.OperationalError as exc:
        state.counters.add(busy_errors=1)
        return JSONResponse({"error": f"shard busy: {exc}"}, status_code=503)
    state.counters.add(requests=1, lock_wait_us=round(waited_s * 1e6), write_us=round(wrote_s * 1e6))
    return JSONResponse({"account": key, "shard": shard, "balance": balance})


async def account(request: Request) -> Response:
    """``GET /accounts/{key}``: the account's shard, balance and number of deposits."""
    state: App = request.state.app
    key = _key(request)
    found = None if key is None else await anyio.to_thread.run_sync(state.shards.balance, key)
    if found is None:
        return JSONResponse({"error": "no such account"}, status_code=404)
    shard, balance, deposits = found
    return JSONResponse({"account": key, "shard": shard, "balance": balance, "deposits": deposits})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    state: App = request.state.app
    return JSONResponse(state.stats())


app = Starlette(
    routes=[
        Route("/accounts/{key}/deposit", deposit, methods=["POST"]),
        Route("/accounts/{key}", account),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)

"""sharding: the shard target's writes, routing and shared counters, in process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from targets import sharding
from tests.asgi import running


@pytest.fixture
def shard_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A factory: shard_env(shards) sets a small data set's env and returns the app."""

    def make(shards: int, **extra: str) -> ASGIApp:
        env = {"SHARDS": str(shards), "ACCOUNTS": "100", "SHARDING_DIR": str(tmp_path / "data"),
               "JOURNAL": "delete", "SYNCHRONOUS": "normal", **extra}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return sharding.app

    return make


async def test_deposits_land_in_the_shard_of_their_key(shard_env, tmp_path: Path) -> None:
    async with running(shard_env(4)) as client:
        assert (await client.get("/health")).status_code == 200
        for key in (1, 2, 3, 4, 5, 5, 5):
            resp = await client.post(f"/accounts/{key}/deposit?amount=10")
            assert resp.status_code == 200, resp.text
            assert resp.json()["shard"] == key % 4
        assert (await client.post("/accounts/5/deposit")).json()["balance"] == 31
        account = (await client.get("/accounts/5")).json()
        assert account == {"account": 5, "shard": 1, "balance": 31, "deposits": 4}
        assert (await client.get("/accounts/4")).json()["deposits"] == 1
        # An account created by its first deposit, beyond the ones made at startup.
        assert (await client.post("/accounts/1000/deposit")).json()["balance"] == 1
        stats = (await client.get("/stats")).json()
        shard_files = sorted(os.listdir(tmp_path / "data"))
    assert stats["requests"] == 9
    assert stats["busy_errors"] == 0
    assert stats["lock_wait_ms"] >= 0 and stats["write_ms"] > 0
    assert stats["info"] == {"shards": "4", "sqlite": "journal=delete synchronous=normal"}
    assert [f for f in shard_files if f.endswith(".db")] == [f"shard-{i}.db" for i in range(4)]
    assert not (tmp_path / "data").exists()  # removed when the (last) worker stopped


async def test_bad_requests_and_settings(shard_env) -> None:
    async with running(shard_env(2)) as client:
        assert (await client.post("/accounts/0/deposit")).status_code == 404
        assert (await client.post("/accounts/x/deposit")).status_code == 404
        assert (await client.post("/accounts/1/deposit?amount=lots")).status_code == 400
        assert (await client.get("/accounts/101")).status_code == 404
        assert (await client.get("/accounts/1/deposit")).status_code == 405
        assert (await client.get("/stats")).json()["requests"] == 0
    for name, value in (("SHARDS", "0"), ("JOURNAL", "memory"), ("SYNCHRONOUS", "sometimes")):
        with pytest.raises(RuntimeError, match=name):
            async with running(shard_env(1, **{name: value})):
                pass


def test_concurrent_writers_on_one_shard_lose_nothing(tmp_path: Path) -> None:
    config = sharding.ShardConfig(shards=1, journal="delete", synchronous="normal",
                                  busy_timeout_ms=10_000, accounts=10)
    shards = sharding.Shards(config, str(tmp_path))
    shards.create()
    waits: list[float] = []

    def writer() -> None:
        for i in range(40):
            _, _, waited, _ = shards.deposit(1 + i % 10, 1)
            waits.append(waited)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shards.close()
    db = sqlite3.connect(tmp_path / "shard-0.db")
    assert db.execute("SELECT sum(balance), sum(deposits) FROM accounts").fetchone() == (240, 240)
    assert db.execute("SELECT count(*) FROM ledger").fetchone() == (240,)
    db.close()
    assert len(waits) == 240 and max(waits) > 0


def test_counters_of_every_worker_are_summed(tmp_path: Path) -> None:
    mine = sharding.Counters(str(tmp_path))
    mine.add(requests=3, lock_wait_us=1500, write_us=900)
    mine.add(requests=1, busy_errors=2)
    # Another worker process's file, as that process would have written it.
    (tmp_path / "counters-999999.bin").write_bytes(sharding._LAYOUT.pack(10, 500, 100, 0))
    assert sharding.Counters.total(str(tmp_path)) == {
        "requests": 14, "lock_wait_us": 2000, "write_us": 1000, "busy_errors": 2}
    sharding.close_server_data(str(tmp_path), mine)
    assert tmp_path.exists()  # the other worker is still there
    (tmp_path / "counters-999999.bin").unlink()
    other = sharding.Counters(str(tmp_path))
    sharding.close_server_data(str(tmp_path), other)
    assert not tmp_path.exists()  # the last worker out removes the data


def test_server_directory_is_per_server_process() -> None:
    directory = sharding.server_directory()
    assert f"lab-sharding-{os.getpid()}" in directory
    assert directory == sharding.server_directory()


def test_a_second_worker_waits_for_the_first_ones_data(tmp_path: Path) -> None:
    config = sharding.ShardConfig(shards=2, journal="wal", synchronous="normal",
                                  busy_timeout_ms=1000, accounts=1000)
    directory = str(tmp_path / "data")

    async def both() -> None:
        await asyncio.gather(*(asyncio.to_thread(sharding.open_server_data, config, directory)
                               for _ in range(2)))

    asyncio.run(both())
    shards = sharding.Shards(config, directory)
    assert shards.balance(999) == (1, 0, 0) and shards.balance(1000) == (0, 0, 0)
    shards.close()

"""Every sample target serves its stats on the stats port, from a thread of its own (in process)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import httpx
import pytest

from lab.topology.targets import STATS_PORT_ENV, free_port
from tests.asgi import running

SAMPLE_TARGETS = [
    ("targets.catalog:app", {"CATALOG_ITEMS": "200"}),
    ("targets.complexity:app", {"SIZE": "50", "RANKINGS": "4"}),
    ("targets.cpu:app", {}),
    ("targets.echo:app", {}),
    ("targets.fanout:app", {"DOWNSTREAM_URL": "http://127.0.0.1:9"}),
    ("targets.fanout:downstream", {}),
    ("targets.jobs:app", {"WORK_MS": "1"}),
    ("targets.orm:app", {"AUTHORS": "20"}),
    ("targets.pooling:app", {"ACCOUNTS": "50", "SQLITE_APP_TABLES": "2"}),
    ("targets.replicas:app", {}),
    ("targets.sharding:app", {}),
    ("targets.shared_state:app", {}),
    ("targets.shedding:app", {}),
    ("targets.testing:app", {}),
    ("targets.usl_demo:app", {}),
]


@pytest.mark.parametrize(("app_ref", "env"), SAMPLE_TARGETS, ids=[a for a, _ in SAMPLE_TARGETS])
async def test_every_sample_target_serves_its_stats_on_the_stats_port(
        app_ref: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHARDING_DIR", str(tmp_path / "shards"))  # created by the app
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    port = free_port()
    monkeypatch.setenv(STATS_PORT_ENV, str(port))
    module, name = app_ref.split(":")
    app = getattr(importlib.import_module(module), name)
    url = f"http://127.0.0.1:{port}/stats"
    async with running(app) as client:
        own = (await client.get("/stats")).json()
        # A plain blocking client in a thread: the port is served by a thread of its own.
        resp = await asyncio.to_thread(httpx.get, url, timeout=5.0, trust_env=False)
        assert resp.status_code == 200, resp.text
        there = resp.json()
        assert set(there) == set(own) and there.get("requests") == own.get("requests"), (own, there)
        missing = await asyncio.to_thread(httpx.get, url.replace("/stats", "/nope"), trust_env=False)
        assert missing.status_code == 404
    with pytest.raises(httpx.ConnectError):  # stopped with the app
        await asyncio.to_thread(httpx.get, url, timeout=5.0, trust_env=False)

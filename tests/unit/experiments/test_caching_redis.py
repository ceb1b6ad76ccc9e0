"""The caching target's redis mode in process: its settings, and an unreachable redis."""

from __future__ import annotations

import pytest

from lab.topology.targets import free_port
from targets import catalog
from tests.asgi import running


def test_redis_mode_needs_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE", "redis")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="REDIS_URL"):
        catalog.CatalogConfig.from_env()
    monkeypatch.setenv("CACHE", "memcached")
    with pytest.raises(ValueError, match="'none', 'lru' or 'redis'"):
        catalog.CatalogConfig.from_env()


async def test_unreachable_redis_fails_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE", "redis")
    monkeypatch.setenv("CATALOG_ITEMS", "50")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    with pytest.raises(RuntimeError):
        async with running(catalog.app):
            pass

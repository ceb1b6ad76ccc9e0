"""In-process checks of the sample targets (no sockets, no subprocesses).

The targets read their environment in their lifespan, so each test sets env vars with
monkeypatch and then starts the app with ``running()``, which speaks the ASGI lifespan
protocol the way uvicorn does (including lifespan state) and hands back an httpx
client over ``ASGITransport``. (Starlette's TestClient would do too, but with httpx it
now emits a deprecation warning.)
"""

from __future__ import annotations

import json
import time

import pytest
from starlette.types import ASGIApp

from targets import catalog, testing
from tests.asgi import running


@pytest.fixture
def catalog_env(monkeypatch: pytest.MonkeyPatch):
    """A factory: catalog_env(cache="lru") sets a small catalog's env, returns the app."""

    def make(cache: str = "none", items: int = 300, **extra: str) -> ASGIApp:
        for name in ("CACHE_SIZE", "CACHE_TTL_S"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CATALOG_ITEMS", str(items))
        monkeypatch.setenv("CACHE", cache)
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        return catalog.app

    return make


async def test_catalog_health_and_product(catalog_env) -> None:
    async with running(catalog_env("none")) as client:
        assert (await client.get("/health")).status_code == 200
        response = await client.get("/products/1")
        assert response.status_code == 200
        assert response.headers["x-cache"] == "none"
        body = response.json()
        assert body["id"] == 1
        assert body["name"]
        assert body["reviews"] and body["related"]
        assert len(body["price_history"]) == catalog.PRICE_HISTORY_DAYS
        assert "<article" in body["html"]
        stats = (await client.get("/stats")).json()
        assert stats == {
            "cache": "none",
            "cache_hits": 0,
            "cache_misses": 1,
            "cache_size": 0,
            "items": 300,
        }


async def test_catalog_is_deterministic(catalog_env) -> None:
    async with running(catalog_env("none")) as client:
        first = (await client.get("/products/42")).content
    async with running(catalog_env("none")) as client:
        second = (await client.get("/products/42")).content
    assert first == second


async def test_catalog_unknown_ids_are_404_json(catalog_env) -> None:
    async with running(catalog_env("lru")) as client:
        for path in ("/products/0", "/products/301", "/products/abc"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not found"
        assert (await client.get("/stats")).json()["cache_size"] == 0  # 404s are not cached


async def test_catalog_lru_hit_on_second_request(catalog_env) -> None:
    async with running(catalog_env("lru")) as client:
        miss = await client.get("/products/7")
        hit = await client.get("/products/7")
        assert miss.headers["x-cache"] == "miss"
        assert hit.headers["x-cache"] == "hit"
        assert hit.content == miss.content
        stats = (await client.get("/stats")).json()
        assert stats["cache"] == "lru"
        assert (stats["cache_hits"], stats["cache_misses"], stats["cache_size"]) == (1, 1, 1)


async def test_catalog_lru_is_bounded(catalog_env) -> None:
    async with running(catalog_env("lru", CACHE_SIZE="2")) as client:
        for pid in (1, 2, 3):
            await client.get(f"/products/{pid}")
        assert (await client.get("/stats")).json()["cache_size"] == 2
        # 1 was least recently used, so it was evicted.
        assert (await client.get("/products/1")).headers["x-cache"] == "miss"


@pytest.mark.parametrize(
    ("name", "value"), [("CACHE", "redis"), ("CATALOG_ITEMS", "many"), ("CACHE_SIZE", "0")]
)
async def test_catalog_bad_config_fails_startup(
    catalog_env, name: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = catalog_env("none", **{name: value})
    with pytest.raises(RuntimeError, match=name):
        async with running(app):
            pass
    assert name in capsys.readouterr().err


def test_catalog_render_cost_is_real() -> None:
    """The uncached path must cost milliseconds, or the caching experiment shows nothing."""
    db = catalog.build_database(300)
    start = time.process_time()
    for pid in range(1, 21):
        document = catalog.render_page(catalog.query_product(db, pid))
    per_request = (time.process_time() - start) / 20
    assert per_request > 0.001
    assert len(json.loads(document)["html"]) > 10_000


@pytest.fixture
def testing_env(monkeypatch: pytest.MonkeyPatch):
    """A factory: testing_env(NAME=value, ...) sets the testing target's env, returns the app."""

    def make(**env: str) -> ASGIApp:
        for name in (
            "STALL_AT_S",
            "STALL_FOR_S",
            "TRICKLE_EVERY_S",
            "FAIL_STARTUP",
            "READY_NEVER",
            "CRASH_AFTER_REQUESTS",
        ):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return testing.app

    return make


async def test_testing_basic_endpoints(testing_env) -> None:
    async with running(testing_env()) as client:
        assert (await client.get("/health")).status_code == 200
        fast = await client.get("/fast")
        assert (fast.status_code, fast.text) == (200, "ok")
        assert (await client.get("/stall")).status_code == 200
        assert (await client.get("/crash-after")).json() == {"count": 1}
        stats = (await client.get("/stats")).json()
        assert (stats["cache_hits"], stats["cache_misses"], stats["requests"]) == (1, 1, 2)
        assert stats["gauges"]["fast_total"] == 1
        assert stats["info"] == {"redis": "no", "database": "no"}


@pytest.mark.parametrize("code", [200, 204, 404, 500, 503])
async def test_testing_status(testing_env, code: int) -> None:
    async with running(testing_env()) as client:
        response = await client.get(f"/status/{code}")
        assert response.status_code == code
        assert response.content == b""


async def test_testing_status_rejects_non_final_codes(testing_env) -> None:
    async with running(testing_env()) as client:
        assert (await client.get("/status/101")).status_code == 400
        assert (await client.get("/status/x")).status_code == 400


async def test_testing_chunked(testing_env) -> None:
    async with running(testing_env()) as client:
        response = await client.get("/chunked")
        assert response.status_code == 200
        assert len(response.content) == 3000
        assert "content-length" not in response.headers


async def test_testing_close_header(testing_env) -> None:
    async with running(testing_env()) as client:
        response = await client.get("/close")
        assert (response.status_code, response.text) == (200, "closed")
        assert response.headers["connection"] == "close"


async def test_testing_trickle(testing_env) -> None:
    async with running(testing_env(TRICKLE_EVERY_S="0.01")) as client:
        start = time.monotonic()
        response = await client.get("/trickle")
        assert len(response.content) == 20
        assert time.monotonic() - start >= 0.2


async def test_testing_stall_window(testing_env) -> None:
    async with running(testing_env(STALL_AT_S="0", STALL_FOR_S="0.3")) as client:
        start = time.monotonic()
        await client.get("/stall")  # arrives inside the window: held until it ends
        held = time.monotonic() - start
        start = time.monotonic()
        await client.get("/stall")  # after the window: immediate
        after = time.monotonic() - start
    assert held >= 0.2 and after < 0.5 * held, (held, after)  # measured 0.3 against 0.001 s


async def test_testing_ready_never(testing_env) -> None:
    async with running(testing_env(READY_NEVER="1")) as client:
        assert (await client.get("/health")).status_code == 503


async def test_testing_fail_startup(testing_env) -> None:
    with pytest.raises(RuntimeError, match="FAIL_STARTUP"):
        async with running(testing_env(FAIL_STARTUP="1")):
            pass

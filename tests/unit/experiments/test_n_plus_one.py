"""n-plus-one: the orm target's loading strategies, in process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

from targets import orm
from tests.asgi import running

PAGE_SIZE = 10


@pytest.fixture
def orm_env(monkeypatch: pytest.MonkeyPatch):
    """A factory: orm_env(loading) sets a small data set's env and returns the app."""

    def make(loading: str, **extra: str) -> ASGIApp:
        env = {"LOADING": loading, "AUTHORS": "23", "BOOKS_PER_AUTHOR": "3",
               "PAGE_SIZE": str(PAGE_SIZE), **extra}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return orm.app

    return make


async def _pages(client: httpx.AsyncClient) -> list[dict]:
    pages = []
    for page in (1, 2, 3):
        resp = await client.get(f"/authors?page={page}")
        assert resp.status_code == 200, resp.text
        pages.append(resp.json())
    return pages


@pytest.mark.parametrize(("loading", "queries_per_page"), [("lazy", None), ("eager", 2), ("joined", 1)])
async def test_queries_are_counted_per_page(orm_env, loading: str, queries_per_page: int | None) -> None:
    async with running(orm_env(loading)) as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/stats")).json()["queries"] == 0  # the data set's inserts do not count
        pages = await _pages(client)
        stats = (await client.get("/stats")).json()
    assert stats["requests"] == 3
    authors = [len(p["authors"]) for p in pages]
    assert authors == [10, 10, 3]
    if queries_per_page is None:  # lazy: the page, then one query per author
        assert stats["queries"] == sum(1 + n for n in authors)
    else:
        assert stats["queries"] == 3 * queries_per_page
    assert stats["info"]["loading"] == loading


async def test_every_loading_returns_the_same_pages(orm_env) -> None:
    bodies = {}
    for loading in ("lazy", "eager", "joined"):
        async with running(orm_env(loading)) as client:
            pages = await _pages(client)
        bodies[loading] = [{k: v for k, v in p.items() if k != "loading"} for p in pages]
    assert bodies["lazy"] == bodies["eager"] == bodies["joined"]
    first = bodies["lazy"][0]["authors"][0]
    assert first["id"] == 1
    assert [b["id"] for b in first["books"]] == [1, 2, 3]


async def test_bad_requests_and_settings(orm_env) -> None:
    async with running(orm_env("eager")) as client:
        assert (await client.get("/authors?page=9")).status_code == 404
        assert (await client.get("/authors?page=x")).status_code == 400
        assert (await client.get("/stats")).json()["requests"] == 0
    with pytest.raises(RuntimeError, match="LOADING"):
        async with running(orm_env("psychic")):
            pass


def test_data_directory_is_removed_at_shutdown(orm_env) -> None:
    async def serve() -> tuple[Path, list[str]]:
        async with orm.lifespan(orm_env("lazy")) as state:
            directory = state["orm"].directory
            return Path(directory), sorted(os.listdir(directory))

    directory, files_while_running = asyncio.run(serve())
    assert files_while_running == ["library.db"]
    assert not directory.exists()

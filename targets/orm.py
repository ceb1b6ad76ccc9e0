"""Sample target for the n-plus-one experiment: an ORM listing authors with their books.

``GET /authors?page=P`` returns one page of authors, each with all of their books, built
with the SQLAlchemy 2 ORM on a SQLite file. How the books are loaded is the variant:

- ``LOADING=lazy``: the page query loads the authors; touching ``author.books`` then
  runs one more query per author: 1 + N queries per page (the N+1 problem).
- ``LOADING=eager``: ``selectinload(Author.books)`` fetches every book of the page in
  one second query (``WHERE author_id IN (...)``): 2 queries per page, the same rows.
- ``LOADING=joined``: ``joinedload(Author.books)``: one query with a LEFT OUTER JOIN.

Every SQL statement sent to the database is counted with SQLAlchemy's
``before_cursor_execute`` event, so ``/stats`` shows the queries actually run.

Environment, read at startup:

- ``LOADING``: ``lazy`` (default), ``eager`` (``selectin`` is an alias) or ``joined``.
- ``AUTHORS`` (default 400), ``BOOKS_PER_AUTHOR`` (default 5), ``PAGE_SIZE`` (default 100).

The data are generated deterministically at startup into a SQLite file in a temporary
directory, removed at shutdown. ``/stats`` counters: ``requests`` (pages served),
``queries`` (SQL statements executed for them, counted with their page at once); the lab
reports their ratio as ``per_request.queries``. Also served on ``LAB_STATS_PORT``
(``targets.statsport``).

Run: ``LOADING=lazy uvicorn targets.orm:app --port 8000``
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, String, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import Counters, serve_stats

LOADINGS = ("lazy", "eager", "joined")
_ALIASES = {"selectin": "eager", "selectinload": "eager", "joinedload": "joined"}

FIRST_NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Leslie", "Frances",
               "Ken", "Margaret", "Niklaus", "Radia", "Tony", "Sophie", "John", "Karen")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Lamport",
              "Allen", "Thompson", "Hamilton", "Wirth", "Perlman", "Hoare", "Wilson")
WORDS = ("distributed", "systems", "queues", "caches", "latency", "throughput", "graphs",
         "compilers", "kernels", "networks", "databases", "streams", "locks", "shards")


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    country: Mapped[str] = mapped_column(String(2))
    # lazy="select" is SQLAlchemy's default, spelled out: the N+1 lives here.
    books: Mapped[list[Book]] = relationship(back_populates="author", lazy="select",
                                             order_by="Book.id")


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    year: Mapped[int]
    pages: Mapped[int]
    author: Mapped[Author] = relationship(back_populates="books")


@dataclass(frozen=True)
class OrmConfig:
    loading: str
    authors: int
    books_per_author: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.authors // self.page_size))

    @classmethod
    def from_env(cls) -> OrmConfig:
        loading = os.environ.get("LOADING", "lazy").strip().lower()
        loading = _ALIASES.get(loading, loading)
        if loading not in LOADINGS:
            raise ValueError(f"LOADING must be one of {', '.join(LOADINGS)} (got {loading!r})")

        def positive(name: str, default: int) -> int:
            raw = os.environ.get(name, "")
            try:
                value = int(raw) if raw.strip() else default
            except ValueError:
                raise ValueError(f"{name} must be an integer (got {raw!r})") from None
            if value < 1:
                raise ValueError(f"{name} must be >= 1 (got {value})")
            return value

        return cls(loading=loading, authors=positive("AUTHORS", 400),
                   books_per_author=positive("BOOKS_PER_AUTHOR", 5),
                   page_size=positive("PAGE_SIZE", 100))


class Orm:
    """The database, its query counter and the request counter of one running app."""

    def __init__(self, config: OrmConfig, directory: str) -> None:
        self.config = config
        self.directory = directory
        self.engine: Engine = create_engine(f"sqlite:///{os.path.join(directory, 'library.db')}")
        self.statements = 0
        """Every SQL statement executed, the data set's too."""
        self.counters = Counters("requests", "queries")
        """Pages served and the statements executed for them."""
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.statements += 1

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures (read from any thread)."""
        config = self.config
        return {**self.counters.snapshot(),
                "info": {"loading": config.loading, "database": "sqlite",
                         "data": f"{config.authors}x{config.books_per_author} books, "
                                 f"{config.page_size}/page"}}

    def populate(self) -> None:
        """Create the schema and the deterministic data set (authors × books)."""
        Base.metadata.create_all(self.engine)
        rng = random.Random(42)
        config = self.config
        authors = []
        books = []
        for a in range(1, config.authors + 1):
            authors.append({"id": a, "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                            "country": rng.choice(("GB", "US", "NL", "DE", "FR", "CH"))})
            for b in range(config.books_per_author):
                books.append({"id": (a - 1) * config.books_per_author + b + 1, "author_id": a,
                              "title": " ".join(rng.choice(WORDS) for _ in range(3)).capitalize(),
                              "year": rng.randint(1960, 2025), "pages": rng.randint(80, 900)})
        with Session(self.engine) as session, session.begin():
            session.execute(Author.__table__.insert(), authors)
            session.execute(Book.__table__.insert(), books)

    def page(self, number: int) -> list[dict[str, Any]]:
        """One page of authors with their books, loaded the configured way."""
        config = self.config
        stmt = select(Author).order_by(Author.id).limit(config.page_size)
        stmt = stmt.offset((number - 1) * config.page_size)
        if config.loading == "eager":
            stmt = stmt.options(selectinload(Author.books))
        elif config.loading == "joined":
            stmt = stmt.options(joinedload(Author.books))
        with Session(self.engine) as session:
            authors = session.scalars(stmt).unique().all()
            return [
                {
                    "id": author.id,
                    "name": author.name,
                    "country": author.country,
                    "books": [  # lazy: this attribute access is a query per author
                        {"id": book.id, "title": book.title, "year": book.year, "pages": book.pages}
                        for book in author.books
                    ],
                }
                for author in authors
            ]

    def close(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Orm]]:
    try:
        config = OrmConfig.from_env()
    except ValueError as exc:
        print(f"orm: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    orm = Orm(config, tempfile.mkdtemp(prefix="lab-orm-"))
    try:
        orm.populate()
        with serve_stats(orm.stats):
            yield {"orm": orm}
    finally:
        orm.close()


# An async handler with the ORM work inline, as in targets/catalog.py: SQLite in-process
# does no I/O worth waiting for, so every query is CPU work on the one worker core.
async def authors(request: Request) -> Response:
    """``GET /authors?page=P``: one page of authors with their books."""
    orm: Orm = request.state.orm
    raw = request.query_params.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        return JSONResponse({"error": "page must be an integer", "page": raw}, status_code=400)
    if not 1 <= number <= orm.config.pages:
        return JSONResponse({"error": "no such page", "page": number, "pages": orm.config.pages},
                            status_code=404)
    # The page's statements run here, in this handler alone (no await in between).
    before = orm.statements
    rows = orm.page(number)
    orm.counters.add(requests=1, queries=orm.statements - before)
    return JSONResponse({"page": number, "loading": orm.config.loading, "authors": rows})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    orm: Orm = request.state.orm
    return JSONResponse(orm.stats())


app = Starlette(
    routes=[Route("/authors", authors), Route("/health", health), Route("/stats", stats)],
    lifespan=lifespan,
)

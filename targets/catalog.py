"""Product catalog: the caching experiment's target.

``GET /products/{id}`` runs real SQL against an in-memory SQLite catalog (the product
with its review aggregate, its top reviews, a rating histogram, and related products
in the same category ranked by price with their own ratings) and then renders a
sizeable product page (HTML + JSON). That uncached path costs a few milliseconds of
CPU; with ``CACHE=lru`` the rendered body is kept in a bounded LRU with a TTL, and a
hit skips both the query and the rendering. Popular products (Zipf-distributed ids)
then cost well under a millisecond, which is the effect the experiment shows.

With ``CACHE=redis`` the rendered bodies live in a real redis-server at ``REDIS_URL``
(``redis.asyncio``, entries set with the same TTL): a hit costs a network round trip
and moving the body over the socket instead of a dictionary lookup, but the cache
survives restarts and is shared by every worker process. Keys carry a per-process
prefix, so each start begins with a cold cache, like the LRU.

Configuration, read from the environment at startup (not at import):

- ``CATALOG_ITEMS`` number of products (default 5000)
- ``CACHE`` ``none`` | ``lru`` | ``redis`` (default ``none``)
- ``REDIS_URL`` the redis-server for ``CACHE=redis`` (the lab sets it)
- ``CACHE_SIZE`` cache entries (default 2000)
- ``CACHE_TTL_S`` seconds an entry lives (default 60)

Run: ``uvicorn targets.catalog:app --port 8000``
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import random
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats

SEED = 20240601
REVIEWS_SHOWN = 40  # top reviews rendered on a product page
RELATED_SHOWN = 12  # related products rendered on a product page
ALSO_SHOWN = 8  # "reviewers also reviewed" products rendered on a product page
PRICE_HISTORY_DAYS = 730  # price chart length (two years); the main knob for render cost
MOVING_AVERAGE_DAYS = 30  # smoothing window of the chart's trend line

CATEGORIES = [
    "Audio", "Cameras", "Computers", "Kitchen", "Garden", "Toys", "Books", "Sports",
    "Outdoor", "Office", "Lighting", "Furniture", "Tools", "Automotive", "Pets",
    "Health", "Beauty", "Music", "Games", "Phones", "Storage", "Networking",
    "Travel", "Crafts", "Bedding",
]  # fmt: skip
ADJECTIVES = [
    "Compact", "Deluxe", "Rugged", "Silent", "Smart", "Classic", "Portable", "Pro",
    "Ultra", "Eco", "Modular", "Vintage", "Wireless", "Heavy-Duty", "Mini", "Premium",
]  # fmt: skip
NOUNS = [
    "Speaker", "Lamp", "Kettle", "Backpack", "Drill", "Monitor", "Blender", "Tent",
    "Router", "Notebook", "Chair", "Headset", "Camera", "Bottle", "Keyboard", "Grill",
]  # fmt: skip
WORDS = (
    "quality value great sturdy light battery sound screen build price shipping "
    "design easy setup works perfectly returned broke after weeks recommend would buy "
    "again colour smaller than expected solid feels cheap premium instructions clear "
    "missing parts customer service helpful fast slow noisy quiet warm bright fits "
    "well daily use travel kids gift love hate okay decent average excellent poor"
).split()
AUTHORS = [
    "alex", "sam", "jordan", "casey", "riley", "morgan", "taylor", "jamie", "robin",
    "kim", "lee", "pat", "chris", "dana", "drew", "quinn", "sky", "avery", "rowan",
]  # fmt: skip


@dataclass
class CatalogConfig:
    """Settings read from the environment when the app starts."""

    items: int = 5000
    cache: str = "none"
    cache_size: int = 2000
    cache_ttl_s: float = 60.0
    redis_url: str | None = None

    @classmethod
    def from_env(cls) -> CatalogConfig:
        """Read and validate the environment; raise ValueError with a readable message."""

        def number(name: str, default: str, kind: type) -> Any:
            raw = os.environ.get(name, default)
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {raw!r}")
            return value

        cache = os.environ.get("CACHE", "none").strip().lower()
        if cache not in ("none", "lru", "redis"):
            raise ValueError(
                f"CACHE must be 'none', 'lru' or 'redis', got {os.environ['CACHE']!r}"
            )
        redis_url = os.environ.get("REDIS_URL") or None
        if cache == "redis" and redis_url is None:
            raise ValueError(
                "CACHE=redis needs REDIS_URL (redis://host:port/db); `lab run caching` "
                "starts a redis-server and sets it"
            )
        return cls(
            items=number("CATALOG_ITEMS", "5000", int),
            cache=cache,
            cache_size=number("CACHE_SIZE", "2000", int),
            cache_ttl_s=number("CACHE_TTL_S", "60", float),
            redis_url=redis_url,
        )


@dataclass
class Catalog:
    """Everything one running app owns: the database, the cache and the counters."""

    config: CatalogConfig
    db: sqlite3.Connection
    cache: TTLCache[int, bytes] | None
    redis: Redis | None = None
    redis_prefix: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0


def build_database(items: int, seed: int = SEED) -> sqlite3.Connection:
    """Create the in-memory catalog: categories, products and reviews (deterministic)."""
    rng = random.Random(seed)
    # One connection shared by the event loop; check_same_thread=False keeps it usable
    # if a handler is ever moved to the threadpool (all access is serialised anyway).
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(
        """
        CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE products (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, category_id INTEGER NOT NULL,
            brand TEXT NOT NULL, price REAL NOT NULL, stock INTEGER NOT NULL,
            weight_g INTEGER NOT NULL, description TEXT NOT NULL
        );
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, author TEXT NOT NULL,
            rating INTEGER NOT NULL, helpful INTEGER NOT NULL, title TEXT NOT NULL,
            body TEXT NOT NULL
        );
        """
    )
    db.executemany("INSERT INTO categories VALUES (?, ?)", list(enumerate(CATEGORIES, start=1)))
    # A pool of review texts, drawn from per review: generating a fresh body for each
    # of ~100k reviews would make startup slow without making requests more realistic.
    bodies = [" ".join(rng.choices(WORDS, k=rng.randint(20, 70))) for _ in range(1500)]
    titles = [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))).capitalize() for _ in range(300)]
    products = []
    reviews = []
    review_id = 1
    for pid in range(1, items + 1):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.randint(100, 999)}"
        description = " ".join(rng.choices(WORDS, k=rng.randint(40, 90)))
        products.append(
            (
                pid, name, rng.randint(1, len(CATEGORIES)), f"Brand{rng.randint(1, 60)}",
                round(rng.uniform(5, 900), 2), rng.randint(0, 500), rng.randint(50, 9000),
                description,
            )
        )  # fmt: skip
        for _ in range(rng.randint(4, 40)):
            reviews.append(
                (
                    review_id, pid, rng.choice(AUTHORS) + str(rng.randint(1, 99)),
                    rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 2, 4, 5))[0],
                    rng.randint(0, 200), rng.choice(titles), rng.choice(bodies),
                )
            )  # fmt: skip
            review_id += 1
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?)", products)
    db.executemany("INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?)", reviews)
    db.executescript(
        """
        CREATE INDEX reviews_product ON reviews(product_id);
        CREATE INDEX products_category ON products(category_id);
        CREATE INDEX reviews_author ON reviews(author);
        ANALYZE;
        """
    )
    return db


def query_product(db: sqlite3.Connection, product_id: int) -> dict[str, Any] | None:
    """Everything a product page shows, straight from SQL (several real queries)."""
    row = db.execute(
        """
        SELECT p.id, p.name, p.category_id, c.name, p.brand, p.price, p.stock, p.weight_g,
               p.description, COUNT(r.id), AVG(r.rating)
        FROM products p
        JOIN categories c ON c.id = p.category_id
        LEFT JOIN reviews r ON r.product_id = p.id
        WHERE p.id = ?
        GROUP BY p.id
        """,
        (product_id,),
    ).fetchone()
    if row is None:
        return None
    (pid, name, category_id, category, brand, price, stock, weight, description,
     review_count, avg_rating) = row  # fmt: skip
    reviews = db.execute(
        """
        SELECT id, author, rating, helpful, title, body FROM reviews
        WHERE product_id = ? ORDER BY helpful DESC, id LIMIT ?
        """,
        (pid, REVIEWS_SHOWN),
    ).fetchall()
    histogram = dict(
        db.execute(
            "SELECT rating, COUNT(*) FROM reviews WHERE product_id = ? GROUP BY rating", (pid,)
        ).fetchall()
    )
    # The expensive one: aggregate the reviews of every product in the category, then
    # pick those closest in price. A real join + GROUP BY over thousands of rows.
    related = db.execute(
        """
        SELECT p.id, p.name, p.price, COUNT(r.id), AVG(r.rating)
        FROM products p
        LEFT JOIN reviews r ON r.product_id = p.id
        WHERE p.category_id = ? AND p.id != ?
        GROUP BY p.id
        ORDER BY ABS(p.price - ?), p.id
        LIMIT ?
        """,
        (category_id, pid, price, RELATED_SHOWN),
    ).fetchall()
    # "People who reviewed this also reviewed": a self-join of reviews through authors.
    also = db.execute(
        """
        SELECT p.id, p.name, p.price, COUNT(*) AS shared
        FROM reviews mine
        JOIN reviews theirs ON theirs.author = mine.author AND theirs.product_id != mine.product_id
        JOIN products p ON p.id = theirs.product_id
        WHERE mine.product_id = ?
        GROUP BY p.id
        ORDER BY shared DESC, p.id
        LIMIT ?
        """,
        (pid, ALSO_SHOWN),
    ).fetchall()
    return {
        "id": pid,
        "name": name,
        "category": category,
        "brand": brand,
        "price": price,
        "stock": stock,
        "weight_g": weight,
        "description": description,
        "review_count": review_count,
        "avg_rating": round(avg_rating or 0.0, 3),
        "rating_histogram": {str(k): histogram.get(k, 0) for k in range(1, 6)},
        "reviews": [
            {
                "id": r[0],
                "author": r[1],
                "rating": r[2],
                "helpful": r[3],
                "title": r[4],
                "body": r[5],
            }
            for r in reviews
        ],
        "related": [
            {
                "id": r[0],
                "name": r[1],
                "price": r[2],
                "review_count": r[3],
                "avg_rating": round(r[4] or 0.0, 3),
            }
            for r in related
        ],
        "also_reviewed": [
            {"id": r[0], "name": r[1], "price": r[2], "shared_reviewers": r[3]} for r in also
        ],
    }


def price_history(product_id: int, price: float, days: int = PRICE_HISTORY_DAYS) -> list[float]:
    """A deterministic daily price series (a bounded random walk around today's price)."""
    rng = random.Random(product_id)
    series = []
    current = price
    for _ in range(days):
        current = max(0.5 * price, min(1.5 * price, current * (1 + rng.gauss(0, 0.02))))
        series.append(round(current, 2))
    return series


def stars(rating: float) -> str:
    full = int(rating + 0.5)
    return "★" * full + "☆" * (5 - full)


def render_page(product: dict[str, Any]) -> bytes:
    """Render the product page: an HTML fragment plus the data, as one JSON document.

    This is the "expensive template" the cache saves: escaping, string building and a
    price chart, the kind of CPU work a real page render does per request.
    """
    history = price_history(product["id"], product["price"])
    low, high = min(history), max(history)
    span = (high - low) or 1.0
    # Trailing moving average, recomputed per window the plain way a template helper would.
    trend = [
        sum(window) / len(window)
        for window in (
            history[max(0, i - MOVING_AVERAGE_DAYS + 1) : i + 1] for i in range(len(history))
        )
    ]
    points = " ".join(
        f"{i * 2.0:.1f},{100 - (v - low) / span * 100:.2f}" for i, v in enumerate(history)
    )
    trend_points = " ".join(
        f"{i * 2.0:.1f},{100 - (v - low) / span * 100:.2f}" for i, v in enumerate(trend)
    )
    months = [history[i : i + 30] for i in range(0, len(history), 30)]
    esc = html.escape
    parts = [
        f"<article class='product' id='p{product['id']}'>",
        f"<h1>{esc(product['name'])}</h1>",
        f"<p class='meta'>{esc(product['brand'])} · {esc(product['category'])} · "
        f"${product['price']:,.2f} · {product['stock']} in stock</p>",
        f"<p class='rating'>{stars(product['avg_rating'])} "
        f"({product['avg_rating']:.2f} from {product['review_count']} reviews)</p>",
        "<section class='description'>",
    ]
    words = product["description"].split()
    for i in range(0, len(words), 12):
        parts.append(f"<p>{esc(' '.join(words[i : i + 12]).capitalize())}.</p>")
    parts.append("</section><table class='histogram'>")
    total = max(product["review_count"], 1)
    for k in range(5, 0, -1):
        count = product["rating_histogram"][str(k)]
        parts.append(
            f"<tr><th>{k}★</th><td><div style='width:{count / total * 100:.1f}%'></div></td>"
            f"<td>{count}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        f"<svg class='price-history' viewBox='0 0 {len(history) * 2} 100'>"
        f"<polyline class='daily' points='{points}'/>"
        f"<polyline class='trend' points='{trend_points}'/></svg>"
    )
    parts.append(
        "<table class='monthly'><tr><th>month</th><th>low</th><th>avg</th><th>high</th></tr>"
    )
    for number, month in enumerate(months, start=1):
        parts.append(
            f"<tr><td>{number}</td><td>${min(month):,.2f}</td>"
            f"<td>${sum(month) / len(month):,.2f}</td><td>${max(month):,.2f}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<ol class='reviews'>")
    for review in product["reviews"]:
        body = esc(review["body"])
        parts.append(
            f"<li data-id='{review['id']}'><h3>{stars(review['rating'])} "
            f"{esc(review['title'])}</h3><p class='by'>by {esc(review['author'])} · "
            f"{review['helpful']} found this helpful</p><p>{body}</p>"
            f"<p class='words'>{len(body.split())} words</p></li>"
        )
    parts.append("</ol><ul class='related'>")
    for rel in product["related"]:
        parts.append(
            f"<li><a href='/products/{rel['id']}'>{esc(rel['name'])}</a> "
            f"${rel['price']:,.2f} {stars(rel['avg_rating'])} ({rel['review_count']})</li>"
        )
    parts.append("</ul><ul class='also-reviewed'>")
    for other in product["also_reviewed"]:
        parts.append(
            f"<li><a href='/products/{other['id']}'>{esc(other['name'])}</a> "
            f"${other['price']:,.2f} · {other['shared_reviewers']} shared reviewers</li>"
        )
    parts.append("</ul></article>")
    document = dict(product)
    document["price_history"] = history
    document["price_range"] = {"low": low, "high": high}
    document["price_trend"] = [round(v, 2) for v in trend]
    document["html"] = "".join(parts)
    return json.dumps(document, ensure_ascii=False, indent=1).encode()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Catalog]]:
    """Read config, build the data set and the cache; a bad setting fails startup."""
    try:
        config = CatalogConfig.from_env()
    except ValueError as exc:
        # uvicorn prints a traceback too; this line is the one a person should read.
        print(f"catalog: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    cache = (
        TTLCache(maxsize=config.cache_size, ttl=config.cache_ttl_s)
        if config.cache == "lru"
        else None
    )
    catalog = Catalog(config=config, db=build_database(config.items), cache=cache)
    if config.cache == "redis":
        assert config.redis_url is not None
        catalog.redis = Redis.from_url(config.redis_url)
        # A per-process prefix: every start begins cold, and two targets sharing one
        # redis-server do not read each other's pages.
        catalog.redis_prefix = f"catalog:{config.items}:{os.getpid()}-{time.time_ns()}:"
        try:
            await catalog.redis.ping()
        except Exception as exc:
            print(f"catalog: cannot reach redis at {config.redis_url}: {exc}",
                  file=sys.stderr, flush=True)
            await catalog.redis.aclose()
            raise
    # The stats thread counts the redis keys over a connection of its own: the app's
    # client belongs to the event loop.
    stats_redis = SyncRedis.from_url(config.redis_url) if catalog.redis is not None else None

    def stats_now() -> dict[str, object]:
        return stats_of(catalog, int(stats_redis.dbsize()) if stats_redis is not None else None)

    try:
        with serve_stats(stats_now):
            yield {"catalog": catalog}
    finally:
        catalog.db.close()
        if stats_redis is not None:
            stats_redis.close()
        if catalog.redis is not None:
            await catalog.redis.aclose()


# An async handler with the CPU work inline, on purpose. One uvicorn worker is one
# core under the GIL, so a threadpool (sync `def`) adds no parallelism to CPU-bound
# rendering and only adds a thread hand-off per request, which would be a large share
# of a sub-millisecond cache hit and blur the comparison. The SQLite queries (~3 ms)
# run in memory with no I/O to wait for, so they are CPU work like the rendering:
# blocking the loop for them is the honest cost of this service, and requests queue
# just as they would on one busy core.
async def product(request: Request) -> Response:
    """One product page; cached when CACHE=lru or CACHE=redis."""
    catalog: Catalog = request.state.catalog
    raw_id = request.path_params["product_id"]
    try:
        product_id = int(raw_id)
    except ValueError:
        return JSONResponse({"error": "not found", "id": raw_id}, status_code=404)
    if catalog.redis is not None:
        return await product_via_redis(catalog, catalog.redis, product_id)
    cache = catalog.cache
    if cache is not None:
        with catalog.lock:
            body = cache.get(product_id)
            if body is not None:
                catalog.hits += 1
        if body is not None:
            return Response(body, media_type="application/json", headers={"X-Cache": "hit"})
    with catalog.lock:
        catalog.misses += 1
    data = query_product(catalog.db, product_id)
    if data is None:
        return JSONResponse({"error": "not found", "id": product_id}, status_code=404)
    body = render_page(data)
    if cache is not None:
        with catalog.lock:
            cache[product_id] = body
    return Response(
        body,
        media_type="application/json",
        headers={"X-Cache": "miss" if cache is not None else "none"},
    )


async def product_via_redis(catalog: Catalog, redis: Redis, product_id: int) -> Response:
    """CACHE=redis: one GET round trip; on a miss, compute and SET with the TTL."""
    key = f"{catalog.redis_prefix}{product_id}"
    body = await redis.get(key)
    if body is not None:
        with catalog.lock:
            catalog.hits += 1
        return Response(body, media_type="application/json", headers={"X-Cache": "hit"})
    with catalog.lock:
        catalog.misses += 1
    data = query_product(catalog.db, product_id)
    if data is None:
        return JSONResponse({"error": "not found", "id": product_id}, status_code=404)
    body = render_page(data)
    await redis.set(key, body, px=int(catalog.config.cache_ttl_s * 1000))
    return Response(body, media_type="application/json", headers={"X-Cache": "miss"})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    """Cache counters, read by the lab during and after a run (also on ``LAB_STATS_PORT``)."""
    catalog: Catalog = request.state.catalog
    redis_keys = await catalog.redis.dbsize() if catalog.redis is not None else None
    return JSONResponse(stats_of(catalog, redis_keys))


def stats_of(catalog: Catalog, redis_keys: int | None) -> dict[str, object]:
    """The ``/stats`` figures; ``redis_keys``: the redis database's size with CACHE=redis."""
    with catalog.lock:
        if catalog.cache is not None:
            catalog.cache.expire()  # TTLCache drops expired entries lazily; count live ones
        size = len(catalog.cache) if catalog.cache is not None else 0
        if redis_keys is not None:
            size = int(redis_keys)  # the whole redis database: keys of this run and any other
        return {
            "cache": catalog.config.cache,
            "cache_hits": catalog.hits,
            "cache_misses": catalog.misses,
            "cache_size": size,
            "items": catalog.config.items,
        }


app = Starlette(
    routes=[
        Route("/products/{product_id}", product),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)

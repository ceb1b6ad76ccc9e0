"""Report service: the async-queue experiment's target.

``POST /reports/{customer}`` builds a report, and building one costs real CPU: a
PBKDF2-SHA256 key derivation calibrated at startup to take ``WORK_MS`` milliseconds
(default 30), standing in for rendering a PDF, resizing an image or hashing a
password. Two ways to serve it:

- ``MODE=inline``: the request does the work (in the threadpool, so the event loop
  stays free) and answers 200 with the result: the caller waits for all of it.
  Its "jobs" are the requests themselves (counted done when the response is ready).
- ``MODE=queued``: the request enqueues a huey task and answers 202 with the job id
  at once; huey consumer threads running inside this process do the work later.

The queue is huey's ``SqliteHuey`` on a file in a temporary directory, or
``RedisHuey`` when ``REDIS_URL`` is set (``JOB_QUEUE=sqlite`` forces SQLite). The
consumer (``JOB_WORKERS`` worker threads, default 2) starts in the app's lifespan
and is stopped there, gracefully, on shutdown: threads, not processes, so nothing
can outlive the server. The work releases the GIL (OpenSSL's PBKDF2 loop), so
consumer threads do not stall the event loop that answers requests.

``GET /stats``: counters ``requests``, ``jobs_enqueued``, ``jobs_done``; gauges
``queue_depth`` (jobs waiting in the queue, asked from the queue itself),
``jobs_running`` and ``job_lag_ms`` (mean completion lag, finish − enqueue, of the
jobs completed in the last second; inline: finish − request arrival); info ``mode`` and ``queue``
(``none`` | ``huey-sqlite`` | ``huey-redis``). A request is counted when it is answered,
with the job it did or enqueued. Also served on ``LAB_STATS_PORT`` (``targets.statsport``).

Run: ``MODE=queued uvicorn targets.jobs:app --port 8000``
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats

LAG_WINDOW_S = 1.0  # job_lag_ms averages the jobs completed within this many seconds
CALIBRATION_ITERATIONS = 20_000
# Workers poll SQLite (Redis blocks on BRPOP instead). huey's defaults back off up to
# 10 s between polls when the queue is idle, which would add seconds of lag to the
# first job after a pause; poll every few milliseconds instead.
POLL_INITIAL_S = 0.002
POLL_BACKOFF = 1.5
POLL_MAX_S = 0.02


@dataclass
class JobsConfig:
    """Settings read from the environment when the app starts."""

    mode: str = "inline"
    work_ms: float = 30.0
    workers: int = 2
    queue: str = "auto"
    redis_url: str | None = None

    @classmethod
    def from_env(cls) -> JobsConfig:
        """Read and validate the environment; raise ValueError with a readable message."""
        mode = os.environ.get("MODE", "inline").strip().lower()
        if mode not in ("inline", "queued"):
            raise ValueError(f"MODE must be 'inline' or 'queued', got {mode!r}")
        queue = os.environ.get("JOB_QUEUE", "auto").strip().lower()
        if queue not in ("auto", "sqlite", "redis"):
            raise ValueError(f"JOB_QUEUE must be 'auto', 'sqlite' or 'redis', got {queue!r}")
        redis_url = os.environ.get("REDIS_URL") or None
        if queue == "redis" and redis_url is None:
            raise ValueError("JOB_QUEUE=redis needs REDIS_URL")
        try:
            work_ms = float(os.environ.get("WORK_MS", "30"))
            workers = int(os.environ.get("JOB_WORKERS", "2"))
        except ValueError as exc:
            raise ValueError(f"WORK_MS must be a number and JOB_WORKERS an integer ({exc})") from None
        if not 0 < work_ms <= 10_000 or not 1 <= workers <= 64:
            raise ValueError(f"need 0 < WORK_MS <= 10000 and 1 <= JOB_WORKERS <= 64 "
                             f"(got {work_ms}, {workers})")
        return cls(mode=mode, work_ms=work_ms, workers=workers, queue=queue, redis_url=redis_url)


def calibrate(work_ms: float) -> int:
    """PBKDF2 iterations that take about ``work_ms`` on this machine (best of 3 trials)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        hashlib.pbkdf2_hmac("sha256", b"calibrate", b"salt", CALIBRATION_ITERATIONS)
        best = min(best, time.perf_counter() - start)
    per_iteration_ms = best * 1000 / CALIBRATION_ITERATIONS
    return max(1, round(work_ms / per_iteration_ms))


def build_report(customer: str, iterations: int) -> str:
    """The heavy work: CPU-bound and deterministic (releases the GIL while it runs)."""
    return hashlib.pbkdf2_hmac("sha256", customer.encode(), b"report", iterations).hex()


@dataclass
class JobStats:
    """Counters and recent completions, shared by request handlers and consumer threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    jobs_enqueued: int = 0
    jobs_done: int = 0
    jobs_running: int = 0
    completed: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=10_000))
    last_lag_ms: float = 0.0

    def job_finished(self, enqueued_at: float, request: bool = False) -> None:
        """Count a job done; ``request``: and the request it was done in (inline)."""
        now = time.time()
        lag_ms = (now - enqueued_at) * 1000
        with self.lock:
            self.requests += int(request)
            self.jobs_done += 1
            self.jobs_running -= 1
            self.completed.append((now, lag_ms))
            self.last_lag_ms = lag_ms

    def recent_lag_ms(self) -> float:
        """Mean lag of the jobs finished in the last second (else the last one's lag)."""
        cutoff = time.time() - LAG_WINDOW_S
        with self.lock:
            while self.completed and self.completed[0][0] < cutoff:
                self.completed.popleft()
            if not self.completed:
                return self.last_lag_ms
            return sum(lag for _, lag in self.completed) / len(self.completed)


class EmbeddedConsumer(Consumer):
    """A huey consumer that runs inside the web server: it leaves the process's signal
    handlers to uvicorn (the stock consumer installs its own for SIGINT/SIGTERM/SIGHUP)."""

    def _set_signal_handlers(self) -> None:
        return None


@dataclass
class JobQueue:
    """The huey instance, its consumer and the registered task."""

    huey: Huey
    consumer: Consumer
    kind: str
    task: Any  # the huey TaskWrapper of the report job
    tmpdir: str | None

    def submit(self, customer: str) -> str:
        """Enqueue one report job; return its id (results are not stored)."""
        job = self.task.s(customer, time.time())
        self.huey.enqueue(job)
        return str(job.id)

    def depth(self) -> int:
        return int(self.huey.pending_count())

    def close(self) -> None:
        self.consumer.stop(graceful=True)
        if self.kind == "huey-redis":
            # This instance's queue name is unique to the process: drop what it left.
            with contextlib.suppress(Exception):
                self.huey.flush()
        with contextlib.suppress(Exception):
            self.huey.storage.close()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def start_queue(config: JobsConfig, stats: JobStats, iterations: int) -> JobQueue:
    """Create the huey queue (Redis or SQLite), register the task, start the consumer."""
    name = f"reports-{os.getpid()}-{time.time_ns()}"
    tmpdir = None
    if config.redis_url is not None and config.queue in ("auto", "redis"):
        huey: Huey = RedisHuey(name, url=config.redis_url, results=False, blocking=True,
                               read_timeout=0.1)
        kind = "huey-redis"
    else:
        tmpdir = tempfile.mkdtemp(prefix="lab-jobs-")
        huey = SqliteHuey(name, filename=os.path.join(tmpdir, "queue.db"), results=False,
                          fsync=False)
        kind = "huey-sqlite"

    def report_job(customer: str, enqueued_at: float) -> None:
        with stats.lock:
            stats.jobs_running += 1
        try:
            build_report(customer, iterations)
        finally:
            stats.job_finished(enqueued_at)

    task = huey.task(name="report")(report_job)
    consumer = EmbeddedConsumer(huey, workers=config.workers, periodic=False,
                                initial_delay=POLL_INITIAL_S, backoff=POLL_BACKOFF,
                                max_delay=POLL_MAX_S, check_worker_health=False)
    consumer.start()
    return JobQueue(huey=huey, consumer=consumer, kind=kind, task=task, tmpdir=tmpdir)


@dataclass
class JobsApp:
    config: JobsConfig
    iterations: int
    stats: JobStats
    queue: JobQueue | None

    def stats_now(self, depth: int | None = None) -> dict[str, object]:
        """The ``/stats`` figures (read from any thread); ``depth``: the queue depth, when
        already read."""
        if depth is None:
            depth = self.queue.depth() if self.queue is not None else 0
        s = self.stats
        lag = s.recent_lag_ms()
        with s.lock:
            return {
                "requests": s.requests,
                "jobs_enqueued": s.jobs_enqueued,
                "jobs_done": s.jobs_done,
                "gauges": {"queue_depth": depth, "jobs_running": s.jobs_running,
                           "job_lag_ms": round(lag, 3)},
                "info": {"mode": self.config.mode,
                         "queue": self.queue.kind if self.queue is not None else "none",
                         "work_ms": str(self.config.work_ms)},
            }


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, JobsApp]]:
    """Read config, calibrate the work, start the queue and its consumer; stop them at exit."""
    try:
        config = JobsConfig.from_env()
    except ValueError as exc:
        print(f"jobs: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    stats = JobStats()
    iterations = calibrate(config.work_ms)
    queue = start_queue(config, stats, iterations) if config.mode == "queued" else None
    state = JobsApp(config, iterations, stats, queue)
    try:
        with serve_stats(state.stats_now):
            yield {"jobs": state}
    finally:
        if queue is not None:
            await run_in_threadpool(queue.close)


async def report(request: Request) -> Response:
    """Build a report inline (200) or enqueue it (202)."""
    jobs: JobsApp = request.state.jobs
    customer = request.path_params["customer"]
    # A request is counted when it is answered, with the job it did or enqueued.
    if jobs.queue is None:
        asked_at = time.time()
        with jobs.stats.lock:
            jobs.stats.jobs_running += 1
        try:
            digest = await run_in_threadpool(build_report, customer, jobs.iterations)
        finally:
            jobs.stats.job_finished(asked_at, request=True)
        return JSONResponse({"customer": customer, "status": "done", "report": digest})
    # The enqueue itself is one short write (a SQLite transaction or a Redis LPUSH);
    # the threadpool keeps a slow disk or a busy lock from stalling the event loop.
    enqueued = False
    try:
        job_id = await run_in_threadpool(jobs.queue.submit, customer)
        enqueued = True
    finally:
        with jobs.stats.lock:
            jobs.stats.requests += 1
            jobs.stats.jobs_enqueued += int(enqueued)
    return JSONResponse({"customer": customer, "status": "queued", "job": job_id},
                        status_code=202)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    """Counters, gauges sampled from the queue, and which queue this is."""
    jobs: JobsApp = request.state.jobs
    depth = await run_in_threadpool(jobs.queue.depth) if jobs.queue is not None else 0
    return JSONResponse(jobs.stats_now(depth))


app = Starlette(
    routes=[
        Route("/reports/{customer}", report, methods=["POST"]),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)

"""Backing services the lab starts for a run: redis-server, PostgreSQL, downstream apps.

Each service listens on a free loopback port, keeps its data in a temporary directory
(or none at all), and is ended with the run on every exit path, like the target. The
target finds them through environment variables: ``REDIS_URL``, ``DATABASE_URL`` and
``<NAME>_URL`` for each ``[[services.apps]]`` entry.

``find_components`` says which of the programs are installed, without starting any;
``lab doctor`` and the skip decision in ``lab run`` use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psutil

from lab.errors import ServiceError, TargetError
from lab.procs import owner_alive, spawn, terminate_tree, this_lab
from lab.spec import AppServiceSpec, ServicesSpec, TargetSpec
from lab.topology.targets import TargetProcess, free_port

READY_TIMEOUT_S = 20.0
PG_DIR_PREFIX = "lab-pg-"
"""Name prefix of a throw-away PostgreSQL cluster's directory, in the temporary directory."""
NGINX_DIR_PREFIX = "lab-nginx-"
"""Name prefix of a lab-started nginx's directory (``lab.topology.balancer``), beside them."""
DASK_DIR_PREFIX = "lab-dask-"
"""Name prefix of a ``--cluster local:N`` Dask cluster's directory (``lab.cluster.local``)."""
SERVICE_DIR_PREFIXES = (PG_DIR_PREFIX, NGINX_DIR_PREFIX, DASK_DIR_PREFIX)
"""The directories ``remove_orphaned_dirs`` looks after."""
OWNER_FILE = "lab-owner.json"
"""In such a directory: the lab process that made it (``pid``, ``started_at_unix``,
``host``), so a later lab can tell a directory left by a killed lab from one in use."""
UNMARKED_AGE_S = 600.0
"""A directory without an owner file (made by a lab before there were owner files) is
removed only when older than this and no process works in it."""
NGINX_ENV = "LAB_NGINX"
"""The nginx binary to use, when not the one on PATH (or Debian's /usr/sbin/nginx)."""
_PG_USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this user

INSTALL_HINTS = {
    "redis": "install it with: apt-get install redis-server",
    "postgres": "install it with: apt-get install postgresql",
    "nginx": "install it with: apt-get install nginx",
}


@dataclass(frozen=True)
class Component:
    """An external program the experiments may use."""

    name: str
    """``redis``, ``postgres`` or ``nginx``."""
    path: str | None
    """Where its executable is; None when it is missing."""
    version: str | None
    problem: str | None
    """Why it cannot be used (missing, or unusable as this user), with how to fix it."""

    @property
    def usable(self) -> bool:
        return self.problem is None


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\d+\.\d+(\.\d+)?", out.stdout + out.stderr)
    return found.group(0) if found else None


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (PATH first, then Debian's
    ``/usr/lib/postgresql/<version>/bin``, newest first)."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
                      reverse=True)
    for initdb in versions:
        if (initdb.parent / "postgres").exists():
            return initdb.parent
    return None


def _pg_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: this user, or ``postgres`` when the lab runs as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_PG_USER)
    except KeyError:
        return None


def find_components() -> dict[str, Component]:
    """Which backing programs are installed and usable here."""
    out: dict[str, Component] = {}
    redis = shutil.which("redis-server")
    out["redis"] = Component(
        "redis", redis, _version([redis, "--version"]) if redis else None,
        None if redis else f"redis-server is not installed; {INSTALL_HINTS['redis']}")
    bindir = postgres_bindir()
    problem = None if bindir else f"PostgreSQL is not installed; {INSTALL_HINTS['postgres']}"
    if bindir and os.geteuid() == 0 and _pg_user() is None:
        problem = (f"PostgreSQL refuses to run as root and there is no {_PG_USER!r} user to run "
                   f"it as; create one (useradd {_PG_USER}) or run the lab as another user")
    out["postgres"] = Component(
        "postgres", str(bindir / "postgres") if bindir else None,
        _version([str(bindir / "postgres"), "--version"]) if bindir else None, problem)
    chosen = os.environ.get(NGINX_ENV)
    if chosen:
        nginx = chosen if os.access(chosen, os.X_OK) and Path(chosen).is_file() else None
        problem = None if nginx else (f"{NGINX_ENV}={chosen} is not an executable file; point it "
                                      f"at an nginx binary, or unset it ({INSTALL_HINTS['nginx']})")
    else:
        # Debian installs it in /usr/sbin, which is not on every user's PATH.
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        problem = None if nginx else f"nginx is not installed; {INSTALL_HINTS['nginx']}"
    out["nginx"] = Component("nginx", nginx, _version([nginx, "-v"]) if nginx else None, problem)
    return out


def missing_required(services: ServicesSpec,
                     components: dict[str, Component] | None = None,
                     balancer: bool = False) -> str | None:
    """Why a run with these services (and a balancer, when ``balancer``) cannot start: a
    required program is missing; else None."""
    components = components or find_components()
    for name in ("redis", "postgres"):
        if getattr(services, name) == "required" and not components[name].usable:
            return components[name].problem
    if balancer and not components["nginx"].usable:
        return components["nginx"].problem
    return None


class _Process:
    """A service process with its output drained into a short tail (for error messages)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self._tail: deque[str] = deque(maxlen=10)
        self._drain: asyncio.Task[None] | None = None

    async def _spawn(self, argv: list[str], cwd: str | None = None,
                     user: pwd.struct_passwd | None = None) -> None:
        env = dict(os.environ)
        if user is not None:
            env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        self.proc = await spawn(argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                user=user.pw_uid if user else None,
                                group=user.pw_gid if user else None)
        self._drain = asyncio.create_task(self._drain_output())

    async def _drain_output(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            self._tail.append(line.decode(errors="replace").rstrip())

    def tail(self) -> str:
        return " | ".join(line for line in self._tail if line.strip())[-400:] or "(no output)"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def _wait_port(self, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                await asyncio.sleep(0.1)  # let the drain catch the last lines
                raise ServiceError(f"{self.name} exited with code {self.proc.returncode} "
                                   f"before it was ready: {self.tail()}")
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()
                return
            await asyncio.sleep(0.05)
        raise ServiceError(f"{self.name} did not listen on 127.0.0.1:{port} within "
                           f"{timeout_s:g}s: {self.tail()}")

    async def stop(self) -> None:
        if self.proc is not None:
            await terminate_tree(self.proc, 5.0)
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 1.0)


class RedisService(_Process):
    """redis-server on a free loopback port, with persistence off (nothing on disk)."""

    def __init__(self, executable: str) -> None:
        super().__init__("redis-server")
        self.executable = executable
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.port = free_port()
        await self._spawn([self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--daemonize", "no",
                           "--protected-mode", "no", "--loglevel", "warning"])
        await self._wait_port(self.port)
        await self._ping()

    async def _ping(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), 2.0)
                writer.close()
                if line.startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise ServiceError(f"redis-server on port {self.port} did not answer PING: "
                                   f"{self.tail()}")
            await asyncio.sleep(0.05)


class PostgresService(_Process):
    """A throw-away PostgreSQL cluster: ``initdb`` into a temporary directory, then
    ``postgres`` on a free loopback port with durability off (fsync, synchronous_commit,
    full_page_writes), trust authentication for the ``lab`` role. The directory is
    removed when the service stops."""

    def __init__(self, bindir: Path) -> None:
        super().__init__("postgres")
        self.bindir = bindir
        self.port = 0
        self.datadir: Path | None = None
        self._tmp: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://lab@127.0.0.1:{self.port}/postgres"

    async def start(self) -> None:
        user = _pg_user()
        self._tmp = tempfile.mkdtemp(prefix=PG_DIR_PREFIX)
        self.datadir = Path(self._tmp) / "data"
        # SIGKILL skips stop(): the processes end (parent-death signal) but the ~40 MB
        # directory stays; the owner file lets the next run remove it.
        (Path(self._tmp) / OWNER_FILE).write_text(json.dumps(this_lab()))
        if user is not None:
            os.chown(self._tmp, user.pw_uid, user.pw_gid)
        init = _Process("initdb")
        await init._spawn([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "lab",
                           "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                          cwd=self._tmp, user=user)
        assert init.proc is not None
        try:
            code = await asyncio.wait_for(init.proc.wait(), 60.0)
        except TimeoutError:
            await init.stop()
            raise ServiceError("initdb did not finish within 60 s") from None
        await init.stop()
        if code != 0:
            raise ServiceError(f"initdb failed with code {code}: {init.tail()}")
        self.port = free_port()
        await self._spawn([str(self.bindir / "postgres"), "-D", str(self.datadir),
                           "-p", str(self.port), "-k", self._tmp,
                           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                           "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                           "-c", "max_connections=200", "-c", "logging_collector=off"],
                          cwd=self._tmp, user=user)
        await self._wait_port(self.port)
        await self._wait_accepting()

    async def _wait_accepting(self) -> None:
        # The port opens before the cluster accepts queries (startup recovery).
        import psycopg

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=2)
                await conn.close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(f"postgres on port {self.port} did not accept "
                                       f"connections: {exc}") from None
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await super().stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _orphaned(path: Path, now: float) -> bool:
    """Whether a service's directory was left by a lab that is gone (see ``OWNER_FILE``)."""
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
    except FileNotFoundError:
        owner = None
    except (OSError, ValueError):
        return False  # unreadable (another user's) or being written: not ours to judge
    if isinstance(owner, dict):
        if owner.get("host") != socket.gethostname():
            return False  # a /tmp shared between machines: its lab may run elsewhere
        pid, started = owner.get("pid"), owner.get("started_at_unix")
        if not isinstance(pid, int) or not isinstance(started, (int, float)):
            return False
        return not owner_alive(pid, float(started))
    # No owner file: a lab from before owner files, or one between mkdtemp and writing
    # it. Old enough and with no process working in it (initdb, postgres and nginx run
    # with their working directory there), it is left over.
    try:
        st = path.stat()
    except OSError:
        return False
    if now - st.st_mtime < UNMARKED_AGE_S or (os.geteuid() != 0 and st.st_uid != os.geteuid()):
        return False  # young, or another user's (we could not remove it anyway)
    inside = str(path)
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd == inside or cwd.startswith(inside + os.sep):
            return False
    return True


def remove_orphaned_dirs(base: str | Path | None = None) -> list[Path]:
    """Remove the directories of throw-away PostgreSQL clusters and nginx balancers
    (``SERVICE_DIR_PREFIXES``) that labs killed mid-run left behind.

    A directory is removed when its owner file names a lab process on this host that is
    gone (no process with that pid and start time); a directory of a lab that runs is
    never touched. Called at the start of every run.

    Args:
        base: where to look (default: the temporary directory, where they are made).

    Returns:
        The directories removed.
    """
    folder = Path(base or tempfile.gettempdir())
    removed = []
    now = time.time()
    paths = sorted(p for prefix in SERVICE_DIR_PREFIXES for p in folder.glob(prefix + "*"))
    orphans = [p for p in paths if p.is_dir() and not p.is_symlink() and _orphaned(p, now)]
    _end_processes_in(folder, orphans)
    for path in orphans:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _end_processes_in(folder: Path, orphans: list[Path]) -> None:
    """SIGKILL what still works in a dead lab's service directory: a process whose working
    directory is one of ``orphans``, or a service directory of ``folder`` that is gone
    already (``/tmp/lab-nginx-x (deleted)``). The parent-death signal ends a service's main
    process with its lab, but an nginx worker forked by a reload at that very moment can
    miss its master's order to quit, and would otherwise serve on forever."""
    inside = [str(p) for p in orphans]
    gone = tuple(f"{folder / prefix}" for prefix in SERVICE_DIR_PREFIXES)
    me = os.geteuid()
    for proc in psutil.process_iter(["cwd", "uids"]):
        cwd = proc.info.get("cwd") or ""
        uids = proc.info.get("uids")
        if not cwd or (me != 0 and (uids is None or uids.real != me)):
            continue
        # psutil drops the kernel's " (deleted)" from a removed working directory.
        dead_dir = cwd.startswith(gone) and not os.path.exists(cwd)
        if dead_dir or any(cwd == d or cwd.startswith(d + os.sep) for d in inside):
            with contextlib.suppress(psutil.Error):
                proc.kill()


class AppService:
    """A downstream ASGI app served by uvicorn, like the target."""

    def __init__(self, spec: AppServiceSpec, app_dir: str | None) -> None:
        self.name = spec.name
        self.process = TargetProcess(TargetSpec(app=spec.app, workers=spec.workers, env=spec.env,
                                                ready_path=spec.ready_path, stats_path="",
                                                app_dir=app_dir))

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def start(self) -> None:
        try:
            await self.process.start()
        except TargetError as exc:
            raise ServiceError(f"service {self.name!r}: {exc}") from None

    async def stop(self) -> None:
        await self.process.stop()


@dataclass(frozen=True)
class RunningService:
    """A started service, as the run reports it."""

    name: str
    """``redis``, ``postgres`` or an app service's name."""
    pid: int | None
    url: str
    env_var: str


class ServiceSet:
    """The services of one run: ``await start()`` then, always, ``await stop()``.

    Args:
        spec: the variant's ``[services]``.
        app_dir: the target's working directory (app services import from there too).
        components: from `find_components` (looked up when None).
    """

    def __init__(self, spec: ServicesSpec, app_dir: str | None = None,
                 components: dict[str, Component] | None = None) -> None:
        self.spec = spec
        self.app_dir = app_dir
        self.components = components
        self._started: list[tuple[RunningService, RedisService | PostgresService | AppService]] = []
        self.notes: list[str] = []
        """Optional services that were not started, and why."""

    @property
    def wanted(self) -> bool:
        return bool(self.spec.apps) or self.spec.redis != "off" or self.spec.postgres != "off"

    @property
    def running(self) -> list[RunningService]:
        return [r for r, _ in self._started]

    @property
    def env(self) -> dict[str, str]:
        """What the target's environment gains: the services' URLs."""
        return {r.env_var: r.url for r in self.running}

    @property
    def pids(self) -> dict[str, int]:
        return {r.name: r.pid for r in self.running if r.pid is not None}

    async def start(self) -> None:
        """Start every wanted service, in order: redis, postgres, apps.

        Raises:
            ServiceError: a required service is missing, or one failed to start (the
                ones started before it keep running until `stop`).
        """
        if not self.wanted:
            return
        components = self.components or find_components()
        redis, postgres = components["redis"], components["postgres"]
        if self.spec.redis != "off":
            if redis.usable and redis.path:
                await self._start("redis", "REDIS_URL", RedisService(redis.path))
            elif self.spec.redis == "required":
                raise ServiceError(str(redis.problem))
            else:
                self.notes.append(f"redis not started: {redis.problem}")
        if self.spec.postgres != "off":
            bindir = postgres_bindir()
            if postgres.usable and bindir:
                await self._start("postgres", "DATABASE_URL", PostgresService(bindir))
            elif self.spec.postgres == "required":
                raise ServiceError(str(postgres.problem))
            else:
                self.notes.append(f"postgres not started: {postgres.problem}")
        for app in self.spec.apps:
            await self._start(app.name, f"{app.name.upper()}_URL", AppService(app, self.app_dir))

    async def _start(self, name: str, env_var: str,
                     service: RedisService | PostgresService | AppService) -> None:
        # Registered before start so a half-started service is still stopped.
        placeholder = RunningService(name, None, "", env_var)
        self._started.append((placeholder, service))
        await service.start()
        self._started[-1] = (RunningService(name, service.pid, service.url, env_var), service)

    async def stop(self) -> None:
        """Stop every started service, newest first. Safe to call twice."""
        while self._started:
            _, service = self._started.pop()
            with contextlib.suppress(Exception):
                await service.stop()

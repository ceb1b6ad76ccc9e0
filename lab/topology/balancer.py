"""The load balancer in front of a target's replicas: Debian's nginx, started by the lab.

nginx runs as an ephemeral service like redis-server and PostgreSQL: its own temporary
directory (``lab-nginx-*``, with the lab's owner file so a later run removes one a killed
lab left), ``daemon off`` with one worker, 127.0.0.1 on a free port, every file it writes
(pid, error log, access log, temp files) inside that directory, so nothing touches
``/var/log/nginx``. The upstream list lives in its own file (``upstreams.conf``); changing
it is a reload (SIGHUP to the master: new workers with the new list, the old ones finish
the requests they hold and exit), never a restart.

What nginx did with each request is read back from its access log (``take_log``): which
replica served it (``$upstream_addr``), when, with what status and how long it took. That is
how a run counts each replica's share of the traffic.

Measured on the lab's 2-core VM (nginx 1.22.1): a reload is applied (new worker serving,
old one no longer accepting) 125-140 ms after the SIGHUP; the old worker closes the
clients' idle keep-alive connections, so every client reconnects once per reload, and a
request sent on such a connection as it closes fails (0-3 of 8 httpx clients' requests
per reload; docs/services.md, "The balancer").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from lab.errors import ServiceError
from lab.procs import this_lab
from lab.topology.services import NGINX_DIR_PREFIX, OWNER_FILE, READY_TIMEOUT_S, _Process
from lab.topology.targets import free_port, url_host

BALANCER_METHODS = ("round_robin", "least_conn", "random_two", "hash", "ip_hash")
"""The balancing methods, as experiments name them (see ``METHOD_DIRECTIVES``)."""
METHOD_DIRECTIVES = {
    "round_robin": "",
    "least_conn": "least_conn;",
    "random_two": "random two least_conn;",
    "hash": "hash {key} consistent;",
    "ip_hash": "ip_hash;",
}
"""The ``upstream`` block directive of each method (nginx ``ngx_http_upstream_module``):
weighted round-robin is nginx's default; ``random two least_conn`` picks two servers at
random and takes the one with fewer active connections; ``hash ... consistent`` is ketama
consistent hashing, so removing a replica moves only the keys that were on it; ``ip_hash``
hashes the first three octets of the client's IPv4 address (every loopback client is one
client to it)."""
RELOAD_TIMEOUT_S = 10.0
"""How long a reload may take before it is reported as failed."""
UPSTREAM_NAME = "lab_replicas"
ACCESS_LOG = "access.log"
ERROR_LOG = "error.log"
UPSTREAMS_FILE = "upstreams.conf"
WORKER_CONNECTIONS = 8192
"""Client plus upstream connections one nginx worker may hold: a VU costs two."""
LOG_FIELDS = ("$msec", "$upstream_addr", "$status", "$request_time", "$upstream_response_time",
              "$pid", "$connection", "$connection_requests")
"""The access log's fields, tab-separated (``$upstream_addr`` holds spaces when nginx tried
several replicas), in the order ``parse_access_line`` reads them."""
_MAX_HASH_KEY = 200


@dataclass(frozen=True)
class AccessEntry:
    """One request nginx answered, from its access log."""

    t_unix: float
    """``$msec``: when nginx finished the request (Unix time, s, ms resolution)."""
    upstream: str | None
    """``$upstream_addr`` of the last replica tried (``"127.0.0.1:PORT"``); None when no
    replica was tried (no upstreams: the 503; or nginx found none it could use)."""
    upstreams_tried: int
    """How many replicas nginx tried for this request (more than 1: it retried another
    after a connection error, ``proxy_next_upstream``)."""
    status: int
    """``$status``: the status sent to the client."""
    request_time_ms: float
    """``$request_time``: from the first byte nginx read of the request to the last byte
    it sent (ms, 1 ms resolution)."""
    upstream_time_ms: float | None
    """``$upstream_response_time`` of the last replica tried (ms, 1 ms resolution); None
    when no replica answered."""
    worker_pid: int = 0
    """``$pid``: the nginx worker that served it (a reload replaces the workers, so this
    tells which upstream list a request was balanced with)."""
    connection: int = 0
    """``$connection``: the client connection's serial number in that worker."""
    connection_requests: int = 0
    """``$connection_requests``: this request's number on its client connection (1 = the
    first; more: the client's keep-alive connection was reused)."""


def _seconds_to_ms(raw: str) -> float | None:
    """The last of nginx's comma/colon-separated times (s), in ms; None for ``-``."""
    last = raw.replace(" : ", ",").split(",")[-1].strip()
    if last in ("", "-"):
        return None
    return float(last) * 1000.0


def _is_address(token: str) -> bool:
    host, sep, port = token.rpartition(":")
    return bool(sep) and port.isdigit() and bool(host)


def parse_access_line(line: str) -> AccessEntry | None:
    """One access-log line (``LOG_FIELDS``, tab-separated) as an ``AccessEntry``.

    ``$upstream_addr`` lists every replica tried, separated by ``", "`` (and ``" : "``
    across internal redirects); the last is the one that answered. When nginx found no
    usable replica it logs the upstream group's name there, which is not an address and
    counts as none tried.

    Returns:
        None for a line that is not in this format (an empty line, a foreign line).
    """
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 5:
        return None
    try:
        tried = [t.strip() for t in fields[1].replace(" : ", ",").split(",")]
        addresses = [t for t in tried if _is_address(t)]
        return AccessEntry(
            t_unix=float(fields[0]),
            upstream=addresses[-1] if addresses else None,
            upstreams_tried=len(addresses),
            status=int(fields[2]),
            request_time_ms=float(fields[3]) * 1000.0,
            upstream_time_ms=_seconds_to_ms(fields[4]),
            worker_pid=int(fields[5]) if len(fields) > 5 else 0,
            connection=int(fields[6]) if len(fields) > 6 else 0,
            connection_requests=int(fields[7]) if len(fields) > 7 else 0,
        )
    except ValueError:
        return None


class AccessLogReader:
    """Reads the lines appended to a log file since the last read.

    A last line without its newline (nginx still writing it) is kept for the next read,
    so no entry is ever split or read twice. A file that does not exist yet reads empty.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def take(self) -> list[AccessEntry]:
        """The entries of the complete lines written since the last call, in file order."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if not complete and not _:
            return []
        entries = []
        for raw in complete.split(b"\n"):
            entry = parse_access_line(raw.decode(errors="replace"))
            if entry is not None:
                entries.append(entry)
        return entries


def normalize_upstream(address: str) -> str:
    """``"127.0.0.1:8001"`` or ``"http://127.0.0.1:8001"`` → ``"127.0.0.1:8001"`` (as nginx
    writes it in ``$upstream_addr``).

    Raises:
        ValueError: not an IP address (v4, or v6 in brackets) and a port; host names are
            refused (nginx would resolve them once, perhaps to several addresses).
    """
    text = address.strip()
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    try:
        ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        port_n = int(port) if sep and port.isdigit() else -1
    except ValueError:
        port_n = -1
        ip = None
    if ip is None or not 0 < port_n < 65536:
        raise ValueError(f"upstream {address!r}: expected IP:PORT, e.g. 127.0.0.1:8001")
    return f"[{ip}]:{port_n}" if ip.version == 6 else f"{ip}:{port_n}"


def _quote(path: Path | str) -> str:
    """A path as an nginx string (double-quoted, quotes and backslashes escaped)."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_settings(method: str, hash_key: str | None, keepalive: int) -> None:
    """Raise ValueError, naming the setting and what is allowed, for a method, hash key or
    keep-alive count nginx would not take."""
    if method not in BALANCER_METHODS:
        raise ValueError(f"balancer method {method!r}: expected one of {', '.join(BALANCER_METHODS)}")
    if method == "hash":
        if not hash_key:
            raise ValueError("balancer method 'hash' needs a hash_key, e.g. \"$http_x_session\"")
        if (len(hash_key) > _MAX_HASH_KEY or any(c in hash_key for c in '"\\;{}\'')
                or not hash_key.isprintable()):
            raise ValueError(f"hash_key {hash_key!r}: expected nginx variables and text "
                             f"(e.g. \"$http_x_session\"), without quotes, ';', '{{' or '}}'")
    elif hash_key is not None:
        raise ValueError(f"hash_key is only for balancer method 'hash' (method is {method!r})")
    if not 0 <= keepalive <= 100_000:
        raise ValueError(f"balancer keepalive {keepalive}: expected 0 (no upstream keep-alive) "
                         "to 100000 idle connections")


def nginx_refuses_key(executable: str, hash_key: str) -> str | None:
    """What nginx says of a ``hash`` balancer on ``hash_key``, tested with ``nginx -t`` on
    a throw-away configuration (nothing is started); None when nginx takes it.

    nginx alone knows its variables (its modules add some), so an unknown one
    (``"$http-x"``, ``"$no_such_variable"``) is caught here, before a run starts, rather
    than when the balancer starts.

    Returns:
        nginx's ``[emerg]`` line without its timestamp and file position, e.g.
        ``unknown "no_such_variable" variable``; or None.
    """
    with tempfile.TemporaryDirectory(prefix="lab-nginx-check-") as folder:
        d = Path(folder)
        (d / "nginx.conf").write_text(render_main_config(d, as_root=os.geteuid() == 0))
        (d / UPSTREAMS_FILE).write_text(render_upstreams(free_port(), ["127.0.0.1:9"], "hash",
                                                         hash_key, 64))
        try:
            test = subprocess.run([executable, "-p", f"{d}/", "-c", str(d / "nginx.conf"),
                                   "-e", str(d / ERROR_LOG), "-t", "-q"], capture_output=True,
                                  text=True, timeout=RELOAD_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None  # the run's own start reports an nginx that cannot run
    if test.returncode == 0:
        return None
    for line in (test.stdout + test.stderr).splitlines():
        if "[emerg]" in line:
            text = line.split("[emerg]", 1)[1].strip()
            return text.split(" in " + str(d), 1)[0].strip()
    return (test.stdout + test.stderr).strip()[-200:] or f"nginx -t exited with {test.returncode}"


def render_main_config(directory: Path, as_root: bool) -> str:
    """``nginx.conf``: everything but the upstreams and the server, which it includes
    from ``UPSTREAMS_FILE`` (see ``render_upstreams``).

    Args:
        directory: the balancer's own directory (the ``-p`` prefix); every file nginx
            writes is in it.
        as_root: the lab runs as root. nginx's workers would then switch to ``nobody``,
            which cannot enter the lab's private directory (mode 0700) to write request
            bodies to ``client_body_temp_path`` (measured: a 200 kB POST got a 500,
            "Permission denied"); ``user root`` keeps them as the lab's user.
    """
    d = directory
    user = "user root root;\n" if as_root else ""
    fields = "\\t".join(LOG_FIELDS)
    return f"""# Written by the lab for one run; removed when the balancer stops.
{user}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {2 * WORKER_CONNECTIONS + 64};
pid {_quote(d / "nginx.pid")};
error_log {_quote(d / ERROR_LOG)} warn;

events {{
    worker_connections {WORKER_CONNECTIONS};
}}

http {{
    log_format lab_balancer "{fields}";
    # Every request is logged (the 503s of an empty upstream list too), buffered and
    # written at least once a second.
    access_log {_quote(d / ACCESS_LOG)} lab_balancer buffer=64k flush=1s;
    client_body_temp_path {_quote(d / "client_body")};
    proxy_temp_path {_quote(d / "proxy")};
    fastcgi_temp_path {_quote(d / "fastcgi")};
    uwsgi_temp_path {_quote(d / "uwsgi")};
    scgi_temp_path {_quote(d / "scgi")};
    # Client keep-alive as a load generator expects it: a connection is never closed for
    # having served many requests.
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    server_tokens off;
    include {_quote(d / UPSTREAMS_FILE)};
}}
"""


def render_upstreams(port: int, upstreams: Sequence[str], method: str, hash_key: str | None,
                     keepalive: int, host: str = "127.0.0.1") -> str:
    """``upstreams.conf`` (included at nginx's ``http`` level): the ``upstream`` group of
    the replicas and the server that proxies to it on ``host``:``port`` (loopback unless
    a cluster's generators on other machines must reach it).

    With no upstreams the server answers every request 503 at once, with
    ``Retry-After: 1``, as a Service with no ready endpoints refuses it: nginx refuses an
    empty ``upstream`` block, and a group of only ``down`` servers would answer 502, which
    says a replica is broken, not that there is none.

    No ``X-Forwarded-For``: uvicorn trusts it from 127.0.0.1 and would then build each
    request's client address anew from it, so a replica could no longer tell requests on
    one kept-alive connection from requests on new ones (``targets.echo`` counts them).

    Args:
        upstreams: ``normalize_upstream`` addresses.
        method, hash_key, keepalive: as ``check_settings`` accepts them.
    """
    if not upstreams:
        location = ("        add_header Retry-After 1 always;\n"
                    "        default_type text/plain;\n"
                    "        return 503 \"no replica is up\\n\";\n")
        group = ""
    else:
        location = (f"        proxy_pass http://{UPSTREAM_NAME};\n"
                    "        proxy_http_version 1.1;\n"
                    "        proxy_set_header Connection \"\";\n"
                    "        proxy_set_header Host $http_host;\n")
        group = _upstream_block(upstreams, method, hash_key, keepalive)
    return (group + "server {\n"
            f"    listen {url_host(host)}:{port};\n"
            "    location / {\n" + location + "    }\n}\n")


def _upstream_block(upstreams: Sequence[str], method: str, hash_key: str | None,
                    keepalive: int) -> str:
    lines = [f"upstream {UPSTREAM_NAME} {{",
             # The group's state (least_conn's active connections, failed replicas) in
             # shared memory, as the issue asks; nginx keeps it per worker otherwise.
             f"    zone {UPSTREAM_NAME} 256k;"]
    directive = METHOD_DIRECTIVES[method].format(key=f'"{hash_key}"')
    if directive:
        lines.append(f"    {directive}")
    lines += [f"    server {address};" for address in upstreams]
    if keepalive:
        # After the method: nginx requires the balancing method before keepalive.
        lines += [f"    keepalive {keepalive};",
                  "    keepalive_requests 1000000000;",
                  # Below uvicorn's 5 s keep-alive timeout, so nginx does not reuse a
                  # connection the replica is closing.
                  "    keepalive_timeout 4s;"]
    lines.append("}")
    return "\n".join(lines) + "\n"


class NginxBalancer(_Process):
    """A lab-started nginx balancing 127.0.0.1 requests over the replicas' addresses.

    ``await start(upstreams)``, then ``await reload(upstreams)`` as replicas come and go,
    ``take_log()`` as often as wanted, and always ``await stop()``.

    Args:
        executable: the nginx binary (``find_components()["nginx"].path``).
        method: one of ``BALANCER_METHODS``.
        hash_key: for ``hash``: the request value that picks the replica, as nginx
            variables (``"$http_x_session"``, ``"$cookie_session"``).
        keepalive: idle connections to the replicas the worker keeps open (nginx's
            upstream ``keepalive``); 0: a new connection to a replica per request.

    Raises:
        ValueError: a method, key or keepalive nginx would not take (``check_settings``).
    """

    def __init__(self, executable: str, method: str = "round_robin", hash_key: str | None = None,
                 keepalive: int = 64, host: str = "127.0.0.1") -> None:
        check_settings(method, hash_key, keepalive)
        super().__init__("nginx")
        self.executable = executable
        self.method = method
        self.hash_key = hash_key
        self.keepalive = keepalive
        self.host = host
        """The address nginx listens on (loopback unless named on purpose)."""
        self.port = free_port()
        """Chosen now, so the load generator can be told the URL before nginx starts."""
        self.upstreams: tuple[str, ...] = ()
        """The replicas' addresses (``"127.0.0.1:PORT"``) in the configuration nginx serves."""
        self.directory: Path | None = None
        """nginx's prefix: its config, logs, pid and temp files; removed by ``stop``."""
        self._reader: AccessLogReader | None = None
        self._left: list[AccessEntry] = []
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    def worker_pids(self) -> list[int]:
        """The master's worker processes now (during a reload: old and new)."""
        if self.proc is None or self.proc.returncode is not None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.Error:
            return []

    def _argv(self, *extra: str) -> list[str]:
        assert self.directory is not None
        d = self.directory
        return [self.executable, "-p", f"{d}/", "-c", str(d / "nginx.conf"),
                "-e", str(d / ERROR_LOG), *extra]

    def _render(self, upstreams: Sequence[str]) -> str:
        return render_upstreams(self.port, upstreams, self.method, self.hash_key, self.keepalive,
                                self.host)

    async def start(self, upstreams: Sequence[str]) -> None:
        """Start nginx proxying to ``upstreams`` (may be empty: every request gets 503).

        Returns once nginx accepts connections and its worker runs.

        Raises:
            ValueError: an address that is not IP:PORT, or one given twice.
            ServiceError: nginx did not start; the message holds its error output.
        """
        addresses = normalize_upstreams(upstreams)
        if self.directory is not None:
            raise RuntimeError("this balancer was started already")
        self.directory = Path(tempfile.mkdtemp(prefix=NGINX_DIR_PREFIX))
        # SIGKILL of the lab skips stop(): nginx ends (parent-death signal), the directory
        # stays; the owner file lets the next run remove it.
        (self.directory / OWNER_FILE).write_text(json.dumps(this_lab()))
        (self.directory / "nginx.conf").write_text(
            render_main_config(self.directory, as_root=os.geteuid() == 0))
        (self.directory / UPSTREAMS_FILE).write_text(self._render(addresses))
        self._reader = AccessLogReader(self.directory / ACCESS_LOG)
        try:
            await self._spawn(self._argv(), cwd=str(self.directory))
            await self._wait_port(self.port)
            await self._wait_worker()
        except (OSError, ServiceError) as exc:
            problem = (f"nginx could not be started ({self.executable}): {exc}"
                       if isinstance(exc, OSError) else f"{exc}{self._error_log_tail(0)}")
            await self.stop()
            raise ServiceError(problem) from None
        self.upstreams = addresses

    async def _wait_worker(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.worker_pids():
            if self.proc is None or self.proc.returncode is not None or time.monotonic() > deadline:
                raise ServiceError(f"nginx started no worker process: {self.tail()}")
            await asyncio.sleep(0.01)

    def _error_log_size(self) -> int:
        assert self.directory is not None
        try:
            return (self.directory / ERROR_LOG).stat().st_size
        except OSError:
            return 0

    def _error_log_problems(self, offset: int) -> list[str]:
        """The ``[emerg]``/``[alert]`` lines nginx wrote to its error log past ``offset``."""
        if self.directory is None:
            return []
        try:
            with open(self.directory / ERROR_LOG, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return [line.strip() for line in text.splitlines() if "[emerg]" in line or "[alert]" in line]

    def _error_log_tail(self, offset: int) -> str:
        problems = self._error_log_problems(offset)
        return f"; error log: {' | '.join(problems[-3:])}" if problems else ""

    async def reload(self, upstreams: Sequence[str]) -> None:
        """Apply a new upstream list with a reload (SIGHUP to the master), not a restart.

        Returns once the new configuration takes every new connection: a new worker runs
        and every old worker is shutting down (it no longer accepts; it finishes the
        requests it holds, closes its keep-alive connections and exits). Requests still
        running on an old worker end on the replica they were sent to.

        Raises:
            ValueError: an address that is not IP:PORT, or one given twice.
            ServiceError: nginx is not running, refused the new configuration (it keeps
                serving the previous list), or did not apply it within ``RELOAD_TIMEOUT_S``.
        """
        addresses = normalize_upstreams(upstreams)
        async with self._lock:
            if self.proc is None or self.proc.returncode is not None or self.directory is None:
                code = self.proc.returncode if self.proc is not None else None
                raise ServiceError(f"nginx is not running (exit code {code}); cannot reload: "
                                   f"{self.tail()}")
            path = self.directory / UPSTREAMS_FILE
            previous = path.read_text()
            path.write_text(self._render(addresses))
            try:
                await self._test_config()
                await self._signal_reload()
            except ServiceError:
                path.write_text(previous)
                raise
            self.upstreams = addresses

    async def _test_config(self) -> None:
        """``nginx -t``: a configuration nginx would refuse is caught before the SIGHUP."""
        test = await asyncio.create_subprocess_exec(
            *self._argv("-t", "-q"), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(test.communicate(), RELOAD_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                test.kill()
            await test.wait()
            raise ServiceError("nginx -t did not finish; the previous upstream list stays") from None
        if test.returncode != 0:
            text = " | ".join(line.strip() for line in out.decode(errors="replace").splitlines()
                              if line.strip())
            raise ServiceError(f"nginx refused the new upstream list and keeps serving the "
                               f"previous one ({', '.join(self.upstreams) or 'none'}): {text[-400:]}")

    async def _signal_reload(self) -> None:
        assert self.proc is not None
        old = set(self.worker_pids())
        offset = self._error_log_size()
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while True:
            if self.proc.returncode is not None:
                raise ServiceError(f"nginx exited (code {self.proc.returncode}) during a reload: "
                                   f"{self.tail()}{self._error_log_tail(offset)}")
            problems = self._error_log_problems(offset)
            if problems:
                raise ServiceError("nginx refused the new upstream list and keeps serving the "
                                   f"previous one: {' | '.join(problems[-3:])}")
            now = set(self.worker_pids())
            if now - old and all(_retired(pid) for pid in old):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"nginx did not apply the new upstream list within "
                                   f"{RELOAD_TIMEOUT_S:g}s")
            await asyncio.sleep(0.005)

    def take_log(self) -> list[AccessEntry]:
        """The requests nginx logged since the last call, oldest first.

        nginx writes its log buffered, at least once a second, so the newest requests
        appear up to a second late. After ``stop`` this returns what was not taken yet
        (nginx writes its buffer out as it stops).
        """
        if self._left:
            left, self._left = self._left, []
            return left
        return self._reader.take() if self._reader is not None else []

    async def stop(self) -> None:
        """Stop nginx (the whole tree) and remove its directory. Safe to call twice, and
        before ``start``."""
        await super().stop()
        if self._reader is not None:
            self._left.extend(self._reader.take())
            self._reader = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def normalize_upstreams(upstreams: Sequence[str]) -> tuple[str, ...]:
    """Each address through ``normalize_upstream``; ValueError for one given twice."""
    if isinstance(upstreams, str):
        raise ValueError("upstreams: expected a list of IP:PORT addresses, not one string")
    addresses = tuple(normalize_upstream(a) for a in upstreams)
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    if twice:
        raise ValueError(f"upstream {twice[0]} is listed twice (each replica once)")
    return addresses


def _retired(pid: int) -> bool:
    """Whether an nginx worker no longer accepts connections: gone, or shutting down (it
    sets this title as it closes its listening sockets)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        return "shutting down" in " ".join(proc.cmdline())
    except psutil.Error:
        return True

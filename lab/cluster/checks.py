"""Connect to a Dask scheduler and say, in one line, what keeps its workers from running
the lab's generators: no scheduler there, no workers, a worker without the lab, or
versions that differ from this lab's."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lab.errors import BadInput

__all__ = ["CONNECT_TIMEOUT_S", "ClusterError", "WorkerFacts", "cannot_reach", "check_workers", "connect",
           "is_loopback_url", "worker_hint"]

CONNECT_TIMEOUT_S = 5.0


class ClusterError(BadInput):
    """A cluster that cannot run the generators; the message names the address."""


@dataclass(frozen=True)
class WorkerFacts:
    """One Dask worker as the lab found it."""

    address: str
    """Its Dask address, e.g. ``tcp://10.0.0.7:40123``."""
    host: str
    """Its machine's host name."""
    name: str
    """The worker's Dask name."""
    loadgen: bool
    """Whether it offers the ``loadgen`` resource."""
    local: bool
    """Whether it runs on the lab's own machine (its address is loopback, or its host
    name is this machine's)."""


def worker_hint(address: str) -> str:
    return f"dask worker {address} --nworkers 1 --nthreads 1 --resources loadgen=1"


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A synchronous ``distributed.Client`` to ``address`` (call it off the event loop).

    Raises:
        ClusterError: ``distributed`` is not installed, or nothing answered in time.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(f"--cluster {address}: Dask distributed is not installed "
                           f"(pip install distributed)") from None
    try:
        return Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"--cluster {address}: cannot reach the Dask scheduler ({why}); is "
                           f"`dask scheduler` running there?") from None


def check_workers(client: Any, address: str) -> list[WorkerFacts]:
    """The scheduler's workers, each checked: the lab imports there, in this lab's
    version, on this Python's major.minor, with Dask's own versions matching.

    Raises:
        ClusterError: no workers, or the first worker that cannot run the lab's code.
    """
    from lab import __version__
    from lab.cluster.task import probe

    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if not workers:
        raise ClusterError(f"--cluster {address}: the Dask scheduler has no workers; start one "
                           f"on each machine: {worker_hint(address)}")
    try:
        client.get_versions(check=True)
    except ValueError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), str(exc))
        raise ClusterError(f"--cluster {address}: Dask versions differ between the lab and the "
                           f"cluster: {first}") from None
    import platform

    answers = client.run(probe, on_error="return")
    here = socket.gethostname()
    python = ".".join(platform.python_version().split(".")[:2])
    facts = []
    for addr, info in sorted(workers.items()):
        answer = answers.get(addr)
        if isinstance(answer, BaseException) or not isinstance(answer, dict):
            why = f"{type(answer).__name__}: {answer}" if isinstance(answer, BaseException) else "no answer"
            # Dask may hand the worker's exception back wrapped, with its text kept.
            if isinstance(answer, ImportError) or "No module named 'lab" in str(answer):
                why = "the lab is not installed there (pip install scalability-lab, the same version)"
            raise ClusterError(f"--cluster {address}: worker {addr} cannot run the lab's "
                               f"generator: {why}")
        if answer.get("lab") != __version__:
            raise ClusterError(f"--cluster {address}: worker {addr} has scalability-lab "
                               f"{answer.get('lab')}, this lab is {__version__}; install the same "
                               f"version on every machine")
        theirs = ".".join(str(answer.get("python", "")).split(".")[:2])
        if theirs != python:
            raise ClusterError(f"--cluster {address}: worker {addr} runs Python {theirs}, this lab "
                               f"{python}; the generator's code is sent pickled and needs the same")
        host = str(answer.get("host") or info.get("host") or addr)
        facts.append(WorkerFacts(
            address=addr, host=host, name=str(info.get("name", addr)),
            loadgen=float((info.get("resources") or {}).get("loadgen", 0)) >= 1,
            local=_is_loopback_host(urlsplit(addr).hostname or "") or host == here))
    return facts


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cannot_reach(facts: list[WorkerFacts], target_url: str) -> WorkerFacts | None:
    """The first worker that cannot reach ``target_url``: one on another machine, when the
    target listens on this machine's loopback only; None when every worker can."""
    if not is_loopback_url(target_url):
        return None
    return next((f for f in facts if not f.local), None)


def is_loopback_url(url: str) -> bool:
    """Whether a target URL can only be reached from this machine (127.0.0.0/8, ::1,
    localhost)."""
    return _is_loopback_host(urlsplit(url).hostname or "")

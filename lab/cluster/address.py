"""What ``--cluster``, ``LAB_CLUSTER`` and ``[load] cluster`` name: a Dask scheduler's
address, or ``local:N`` for a cluster of N worker processes the lab starts itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ALLOWED", "MAX_LOCAL_WORKERS", "ClusterAddress", "parse_cluster"]

MAX_LOCAL_WORKERS = 64
ALLOWED = "local:N (N = 1..64) or a Dask scheduler address such as tcp://HOST:8786"

_LOCAL = re.compile(r"local:(\d+)")
_REMOTE = re.compile(r"(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d{1,5})")


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed cluster address."""

    text: str
    """As the user wrote it."""
    local_workers: int | None = None
    """``local:N``: how many worker processes to start; None for a remote scheduler."""

    @property
    def is_local(self) -> bool:
        return self.local_workers is not None


def parse_cluster(text: str) -> ClusterAddress:
    """Parse a cluster address.

    Raises:
        ValueError: neither ``local:N`` nor ``tcp://HOST:PORT`` / ``tls://HOST:PORT``; the
            message says what is allowed.
    """
    text = text.strip()
    local = _LOCAL.fullmatch(text)
    if local:
        n = int(local.group(1))
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise ValueError(f"{text!r}: local clusters have 1..{MAX_LOCAL_WORKERS} workers")
        return ClusterAddress(text, n)
    remote = _REMOTE.fullmatch(text)
    if remote and 0 < int(remote.group(3)) < 65536:
        return ClusterAddress(text)
    raise ValueError(f"{text!r} is not a cluster address; allowed: {ALLOWED}")

"""The results database as the lab's front ends open it: a ``Store`` whose runs of killed
labs are marked failed and given the figures they stored (``lab.analysis.abandoned``).

The store itself never imports the analysis; this is where the two meet. ``lab run``, the
TUI and the read commands (``lab runs``, ``show``, ``compare``, ``export``, ``report``)
open the database here.
"""

from __future__ import annotations

from pathlib import Path

from lab.analysis.abandoned import summarise_abandoned
from lab.store import Store, open_store


def open_results(db_path: str | Path, *, readonly: bool = False, check: bool = False) -> Store:
    """Open the results database the way every command does (``lab.store.open_store``),
    with abandoned runs summarised: opened for writing, the runs of killed labs are marked
    failed with their figures; read-only, they are shown so.

    Raises:
        StoreError: as ``open_store``.
    """
    return open_store(db_path, readonly=readonly, check=check, summarise_abandoned=summarise_abandoned)

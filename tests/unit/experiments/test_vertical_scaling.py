"""vertical-scaling's file: its variants cross cores with processes.

The target (targets/cpu.py) is unit-tested in tests/unit/experiments/test_horizontal_scaling.py.
"""

from __future__ import annotations

from lab.spec import load_experiment
from tests.conftest import REPO

EXPERIMENT = REPO / "experiments" / "vertical-scaling.toml"


def test_variants_cross_cores_with_processes() -> None:
    resolved = load_experiment(EXPERIMENT).resolved_variants()
    variants = {v.name: (v.target.workers, v.target.cpus) for v in resolved}
    assert variants == {"1-worker-1-core": (1, 1), "2-workers-1-core": (2, 1),
                        "1-worker-2-cores": (1, 2), "2-workers-2-cores": (2, 2)}

"""The experiments the TUI lists: every ``*.toml`` of a folder, valid or not.

Plain data, no Textual: the Experiments screen reads this from a thread worker. An
invalid file becomes an entry with its one-line error instead of an exception, so one
broken file never hides the others (or crashes the app).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab.spec import Experiment, SpecError, load_experiment


@dataclass(frozen=True)
class VariantInfo:
    """One variant as the list shows it."""

    name: str
    """Variant name, e.g. ``lru``."""
    description: str
    """The variant's own description (may be empty)."""
    target: str
    """The target in a few words, e.g. ``targets.catalog:app ×1 worker``."""
    load: str
    """The load in a few words, e.g. ``closed model, 32 VUs, 20 s (warm-up 3 s)``."""


@dataclass(frozen=True)
class ExperimentEntry:
    """One experiment file: its facts when valid, its one-line error when not."""

    name: str
    """The file's stem, e.g. ``caching``."""
    path: Path
    """The file."""
    title: str = ""
    """The experiment's title (empty when invalid)."""
    question: str = ""
    """The question it asks."""
    description: str = ""
    """What the experiment does."""
    look_for: str = ""
    """What to look for in the results."""
    variants: tuple[VariantInfo, ...] = ()
    """Its variants in file order (``default`` when it declares none)."""
    error: str | None = None
    """The one-line ``SpecError`` (path shown as the file name) when the file is invalid."""
    experiment: Experiment | None = field(default=None, compare=False, repr=False)
    """The validated model, for planning runs; None when invalid."""

    @property
    def valid(self) -> bool:
        """Whether the file describes a runnable experiment."""
        return self.error is None


def describe_target(app: str | None, url: str | None, workers: int) -> str:
    """The target in a few words: the ASGI app and its worker count, or the URL."""
    if app:
        return f"{app} ×{workers} worker{'s' if workers != 1 else ''}"
    return url or "–"


def describe_load(experiment: Experiment, variant_index: int = 0) -> str:
    """The load of one resolved variant in a few words, with the Dask cluster its file names
    (``LAB_CLUSTER`` or ``--cluster`` may replace it when it runs)."""
    load = experiment.resolved_variants()[variant_index].load
    unit = "VUs" if load.model == "closed" else "req/s"
    if load.stages:
        level = f"{len(load.stages)} stages up to {load.peak_level:g} {unit}"
    else:
        level = f"{load.start_level:g} {unit}"
    warmup = f" (warm-up {load.warmup:g} s)" if load.warmup else ""
    cluster = f", from Dask cluster {load.cluster}" if load.cluster else ""
    return f"{load.model} model, {level}, {load.total_duration_s:g} s{warmup}{cluster}"


def _entry(path: Path) -> ExperimentEntry:
    try:
        exp = load_experiment(path)
    except SpecError as err:
        # Shown with the bare file name: the folder is already on screen, and a stable
        # text keeps the list readable at 80 columns.
        short = SpecError(path.name, err.line, err.field, err.message)
        return ExperimentEntry(name=path.stem, path=path, error=str(short))
    variants = tuple(
        VariantInfo(
            name=v.name,
            description=v.description,
            target=describe_target(v.target.app, v.target.url, v.target.workers),
            load=describe_load(exp, i),
        )
        for i, v in enumerate(exp.resolved_variants())
    )
    info = exp.experiment
    return ExperimentEntry(
        name=exp.name,
        path=path,
        title=info.title,
        question=info.question,
        description=info.description.strip(),
        look_for=info.look_for.strip(),
        variants=variants,
        experiment=exp,
    )


def discover(directory: Path) -> list[ExperimentEntry]:
    """Every ``*.toml`` in ``directory``, by name; an invalid file carries its error.

    Args:
        directory: the experiments folder; a missing folder yields no entries.
    """
    if not directory.is_dir():
        return []
    return [_entry(path) for path in sorted(directory.glob("*.toml"))]

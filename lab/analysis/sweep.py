"""A sweep's figures: X(N) and R(N) per level with their spread, a Little's law check per
level, the USL and Amdahl fits over the levels, and the capacity at the SLO of an
open-model rate sweep.

Little's law for a closed system (N users, think time Z): N = X · (R + Z), with X the
completed requests per second and R the mean response time (J. D. C. Little, Operations
Research 9(3), 1961; for the closed form, E. D. Lazowska et al., *Quantitative System
Performance*, Prentice-Hall 1984, ch. 3). A level where it fails by more than 20 % was
not measured in a steady state, or the generator added time the latencies do not show.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from lab.analysis.usl import FitError, FitResult, fit_amdahl, fit_usl
from lab.load.histogram import merged

if TYPE_CHECKING:
    from lab.store import IntervalRow, RunRecord, Store

LITTLE_TOLERANCE = 0.2
"""Relative error of N ≈ X·(R + Z) above which a level is flagged."""
MIN_FIT_LEVELS = 6
"""Levels a fit needs (three parameters and enough degrees of freedom to judge them)."""
ACHIEVED_FRACTION = 0.99
"""An open-model level meets the SLO only when it achieved this share of the offered rate."""


@dataclass(frozen=True)
class LevelFigures:
    """One level of a sweep, over its measured window (warm-up excluded)."""

    level: float
    """The swept parameter's value (N)."""
    run_id: int
    status: str
    throughput_rps: float | None
    """X(N): successful requests per second; None when the run measured nothing (no interval in
    its measured window: aborted or failed before it), as ``measured`` says."""
    throughput_spread_rps: float | None
    """Standard deviation of the per-interval throughput, req/s (None with < 2 intervals)."""
    completed_rps: float | None
    """Completed attempts per second (ok + errors): Little's X; None when not measured."""
    latency_mean_ms: float | None
    """R(N): mean latency of every completed attempt, ms."""
    latency_spread_ms: float | None
    """Standard deviation of the per-interval mean latency, ms."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float | None
    """Errors / completed attempts; None when not measured."""
    offered_rps: float | None
    """Open model: the arrival rate asked for."""
    little_n: float | None
    """Closed model: X · (R + Z), the concurrency Little's law infers."""
    little_ok: bool | None
    """Whether ``little_n`` is within 20 % of the VUs (closed model)."""
    generator_bound: bool
    measured: bool = True
    """Whether the run has a summary (figures over a measured window). An unmeasured level is
    shown with – / null, like any run that measured nothing, and left out of the fits."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SweepAnalysis:
    """Everything a sweep's report shows."""

    parameter: str
    model: str
    """``closed`` or ``open``."""
    levels: list[LevelFigures]
    usl: FitResult | None
    amdahl: FitResult | None
    fit_note: str | None
    """Why there is no fit (too few levels, a rate sweep, a failed fit)."""
    slo_p99_ms: float | None
    capacity_rps: float | None
    """Open-model rate sweeps: the highest rate whose p99 stayed under the SLO and whose
    achieved rate was at least 99 % of the offered rate; None when none did."""
    missing_levels: tuple[float, ...] = ()
    """Levels of the sweep without a stored run (deleted, or never run)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "model": self.model,
            "levels": [lv.as_dict() for lv in self.levels],
            "fit": self.usl.as_dict() if self.usl else None,
            "amdahl": self.amdahl.as_dict() if self.amdahl else None,
            "fit_note": self.fit_note,
            "slo_p99_ms": self.slo_p99_ms,
            "capacity_rps": self.capacity_rps,
            "missing_levels": list(self.missing_levels),
        }


def _window(intervals: Sequence[IntervalRow], warmup_s: float) -> list[IntervalRow]:
    start = math.ceil(warmup_s - 1e-9)
    return [iv for iv in intervals if iv.t_s + 1e-9 >= start and iv.duration_s > 0]


def level_figures(run: RunRecord, intervals: Sequence[IntervalRow], level: float,
                  vus_swept: bool) -> LevelFigures:
    """The figures of one level's run.

    Args:
        run: the level's stored run (its summary gives X and the percentiles).
        intervals: the run's intervals (for the spreads and R).
        level: the swept parameter's value.
        vus_swept: the level is the number of VUs (else the run's fixed ``vus`` is the N
            Little's law is checked against).
    """
    load = run.settings.load
    model = load.model
    window = _window(intervals, load.warmup_s)
    rates = [iv.ok / iv.duration_s for iv in window]
    means = []
    for iv in window:
        h = merged([iv.histogram_all]) if iv.histogram_all else None
        if h is not None and h.count:
            means.append(h.mean_ms())
    s = run.summary
    completed_rps = s.attempts_rps if s else None
    r_ms = s.latency_all_ms.mean if s and s.latency_all_ms.count else None
    little_n = little_ok = None
    if model == "closed" and r_ms is not None and completed_rps is not None:
        little_n = completed_rps * (r_ms / 1000.0 + load.think_time_s)
        vus = level if vus_swept else load.vus
        if vus and not load.stages:
            little_ok = abs(little_n - float(vus)) / float(vus) <= LITTLE_TOLERANCE
    return LevelFigures(
        level=level,
        run_id=run.id,
        status=run.status,
        throughput_rps=s.throughput_rps if s else None,
        throughput_spread_rps=statistics.stdev(rates) if len(rates) >= 2 else None,
        completed_rps=completed_rps,
        latency_mean_ms=r_ms,
        latency_spread_ms=statistics.stdev(means) if len(means) >= 2 else None,
        p50_ms=s.latency_ms.p50 if s and s.latency_ms.count else None,
        p95_ms=s.latency_ms.p95 if s and s.latency_ms.count else None,
        p99_ms=s.latency_ms.p99 if s and s.latency_ms.count else None,
        error_rate=s.error_rate if s else None,
        offered_rps=load.rate if model == "open" and load.rate else None,
        little_n=little_n,
        little_ok=little_ok,
        generator_bound=bool(s and s.generator_bound),
        measured=s is not None,
    )


def capacity_at_slo(levels: Sequence[LevelFigures], slo_p99_ms: float) -> float | None:
    """The highest offered rate whose p99 stayed under ``slo_p99_ms`` and whose achieved
    throughput was at least 99 % of it; None when no level qualifies."""
    best = None
    for lv in levels:
        if lv.offered_rps is None or lv.p99_ms is None or lv.throughput_rps is None:
            continue
        if lv.p99_ms < slo_p99_ms and lv.throughput_rps >= ACHIEVED_FRACTION * lv.offered_rps:
            best = lv.offered_rps if best is None else max(best, lv.offered_rps)
    return best


def analyse(parameter: str, model: str, levels: Sequence[LevelFigures],
            slo_p99_ms: float | None) -> SweepAnalysis:
    """Fit the USL and Amdahl's law to X(N) (concurrency sweeps) or find the capacity at
    the SLO (open-model rate sweeps). Levels of runs that did not complete are left out
    of the fits, and so are levels that measured nothing or served nothing.
    """
    levels = list(levels)
    usable = fit_levels(levels)
    usl = amdahl = None
    note = None
    capacity = None
    rate_sweep = parameter in ("rate", "load.rate")
    if rate_sweep:
        note = "an arrival-rate sweep has no concurrency to fit; see the capacity at the SLO"
        capacity = capacity_at_slo(usable, slo_p99_ms or 100.0)
    elif len(usable) < MIN_FIT_LEVELS:
        note = (f"a fit needs at least {MIN_FIT_LEVELS} completed levels, this sweep has "
                f"{len(usable)}; add levels to [sweep] levels")
    else:
        n = [lv.level for lv in usable]
        x = [lv.throughput_rps or 0.0 for lv in usable]
        try:
            usl = fit_usl(n, x)
            amdahl = fit_amdahl(n, x)
        except FitError as exc:
            note = f"no fit: {exc}"
    return SweepAnalysis(parameter, model, levels, usl, amdahl, note,
                         slo_p99_ms if rate_sweep else None, capacity)


def fit_levels(levels: Sequence[LevelFigures]) -> list[LevelFigures]:
    """The levels a fit (and a plot's points) uses: completed runs with a measured throughput
    above 0."""
    return [lv for lv in levels if lv.status == "completed" and lv.measured
            and lv.throughput_rps is not None and lv.throughput_rps > 0]


def fit_rows(analysis: SweepAnalysis) -> list[dict[str, Any]]:
    """``fits`` table rows (without ids) for the analysis's fits."""
    rows = []
    for fit in (analysis.usl, analysis.amdahl):
        if fit is None:
            continue
        d = fit.as_dict()
        rows.append({k: d[k] for k in ("model", "lambda", "sigma", "kappa", "lambda_stderr",
                                       "sigma_stderr", "kappa_stderr", "r2", "n_star", "x_max",
                                       "verdict", "points")})
    return rows


def analyse_stored(store: Store, sweep_ids: Sequence[int],
                   save: bool = False) -> list[tuple[int, str, SweepAnalysis]]:
    """``(sweep id, variant, SweepAnalysis)`` of each stored sweep, from its runs.

    Args:
        store: the results database.
        sweep_ids: the sweeps, in display order.
        save: write each report and its fits back (``sweeps.report``, ``fits``).

    Raises:
        UnknownRunError: ``no sweep with id N``.
    """
    out = []
    for sweep_id in sweep_ids:
        rec = store.get_sweep(sweep_id)
        vus_swept = rec.parameter in ("vus", "load.vus")
        levels = [level_figures(run, store.intervals(run.id), float(run.sweep_level or 0.0), vus_swept)
                  for run in rec.runs]
        model = rec.runs[0].settings.load.model if rec.runs else "closed"
        analysis = analyse(rec.parameter, model, levels, rec.slo_p99_ms)
        analysis = replace(analysis, missing_levels=tuple(rec.missing_levels))
        if rec.missing_levels and analysis.fit_note and analysis.usl is None:
            missing = ", ".join(f"{v:g}" for v in rec.missing_levels)
            analysis = replace(analysis, fit_note=f"{analysis.fit_note} (no stored run for level "
                                                 f"{missing}: deleted, or not run)")
        if save:
            store.save_sweep_result(sweep_id, analysis.as_dict(), analysis.capacity_rps,
                                    fit_rows(analysis))
        out.append((sweep_id, rec.variant, analysis))
    return out


def delete_run_and_refit(store: Store, run_id: int) -> SweepAnalysis | None:
    """Delete a run; when it was a level of a sweep, fit that sweep again from the levels
    left and store the new fits (none with fewer than ``MIN_FIT_LEVELS``), so no N* computed
    from a deleted level stays behind.

    Returns:
        The sweep's new analysis, or None for a run outside any sweep (or the last run of
        one: the sweep went with it).

    Raises:
        UnknownRunError: ``no run with id N``.
    """
    sweep_id = store.delete_run(run_id)
    if sweep_id is None:
        return None
    return analyse_stored(store, [sweep_id], save=True)[0][2]


@dataclass(frozen=True)
class PlotData:
    """What a plot of one sweep shows, whatever draws it (terminal text or the TUI).

    Throughput sweeps: ``points`` are (N, X(N)) of the completed, measured levels, ``curve``
    the fitted USL over the measured N range (from the smallest measured N, never below 1, to
    the largest, or a little past N* when the peak lies just beyond it; empty without a fit),
    ``n_star`` the peak when it lies on the curve. Rate sweeps: ``points`` are (offered req/s,
    p99 ms).
    """

    points: list[tuple[float, float]]
    curve: list[tuple[float, float]]
    n_star: float | None


def plot_data(analysis: SweepAnalysis, samples: int = 60) -> PlotData:
    """The points, fitted curve and N* to draw for one sweep.

    Args:
        analysis: the sweep.
        samples: segments of the fitted curve.
    """
    done = [lv for lv in analysis.levels if lv.status == "completed" and lv.measured]
    if analysis.slo_p99_ms is not None:
        points = [(lv.offered_rps, lv.p99_ms) for lv in done
                  if lv.offered_rps is not None and lv.p99_ms is not None]
        return PlotData(points, [], None)
    points = [(lv.level, lv.throughput_rps) for lv in done if lv.throughput_rps is not None]
    fit = analysis.usl
    if fit is None or not points:
        return PlotData(points, [], None)
    # Only where the fit speaks for the data: a curve drawn below the first level (or below
    # N = 1) extrapolates, and with σ > 1 it diverges at N = 1 − 1/σ, a spike to the top.
    lo = max(1.0, min(n for n, _x in points))
    hi = max(n for n, _x in points)
    if fit.n_star is not None:
        # Show the peak when it lies a little past the measured range, not far beyond.
        hi = max(hi, min(fit.n_star * 1.2, hi * 4))
    if hi <= lo:
        return PlotData(points, [], None)
    xs = [lo + (hi - lo) * k / samples for k in range(samples + 1)]
    curve = [(x, float(fit.predict(x))) for x in xs]
    n_star = fit.n_star if fit.n_star is not None and lo <= fit.n_star <= hi else None
    return PlotData(points, curve, n_star)

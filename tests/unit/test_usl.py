"""USL and Amdahl fits (lab.analysis.usl): parameter recovery, peaks, verdicts, bad data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lab.analysis.usl import FitError, FitResult, fit_amdahl, fit_usl, usl_throughput

LEVELS = [1, 2, 4, 8, 16, 32, 64]
# Deterministic ~1 % noise: a fixed pattern of relative errors, one per level.
NOISE = np.array([1.01, 0.99, 1.005, 0.995, 1.01, 0.99, 1.003])


def _data(lam: float, sigma: float, kappa: float,
          levels: list[float] | None = None) -> tuple[list[float], list[float]]:
    n = list(levels or LEVELS)
    return n, usl_throughput(n, lam, sigma, kappa).tolist()


def _close(got: float, want: float, rel: float = 0.01, abs_: float = 1e-6) -> bool:
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)


USL_CASES = [
    (1000.0, 0.05, 0.002),   # the example: a peak at N* ≈ 22 inside the range
    (2000.0, 0.01, 0.0001),  # peak just beyond the measured range
    (100.0, 0.3, 0.01),      # heavy contention and coherency: N* ≈ 8
    (1000.0, 0.0, 0.0005),   # coherency only
    (50_000.0, 0.02, 0.0005),  # a large throughput scale
    (0.5, 0.1, 0.003),       # a small one (e.g. jobs per second)
]


@pytest.mark.parametrize(("lam", "sigma", "kappa"), USL_CASES)
def test_usl_recovers_known_parameters_within_1_percent(lam: float, sigma: float, kappa: float) -> None:
    n, x = _data(lam, sigma, kappa)
    r = fit_usl(n, x)
    assert r.model == "usl"
    assert _close(r.lambda_, lam)
    assert _close(r.sigma, sigma, abs_=1e-6)
    assert _close(r.kappa, kappa, abs_=1e-9)
    assert r.r2 == pytest.approx(1.0, abs=1e-9)
    want_n_star = math.sqrt((1 - sigma) / kappa)
    assert r.n_star is not None and _close(r.n_star, want_n_star)
    assert r.x_max is not None and _close(r.x_max, float(usl_throughput(want_n_star, lam, sigma, kappa)))
    assert r.x_max_kind == "peak"
    assert r.points == len(n) and r.n_min == 1 and r.n_max == 64


def test_usl_recovers_parameters_from_uneven_levels_not_starting_at_one() -> None:
    n, x = _data(800.0, 0.04, 0.001, levels=[3, 5, 10, 20, 30, 45, 60, 80])
    r = fit_usl(n, x)
    assert _close(r.lambda_, 800.0) and _close(r.sigma, 0.04) and _close(r.kappa, 0.001)


@pytest.mark.parametrize(("lam", "sigma", "kappa"), USL_CASES[:4])
def test_usl_with_1_percent_noise_stays_within_its_standard_errors(lam: float, sigma: float,
                                                                   kappa: float) -> None:
    n, x = _data(lam, sigma, kappa)
    r = fit_usl(n, (np.array(x) * NOISE).tolist())
    assert r.r2 > 0.995
    assert _close(r.lambda_, lam, rel=0.03)
    for got, want, se in ((r.lambda_, lam, r.lambda_stderr), (r.sigma, sigma, r.sigma_stderr),
                          (r.kappa, kappa, r.kappa_stderr)):
        if se is not None:
            assert abs(got - want) <= 3 * se + 1e-9, (got, want, se)
    assert r.n_star is not None and _close(r.n_star, math.sqrt((1 - sigma) / kappa), rel=0.15)
    assert np.allclose(r.predict(n), x, rtol=0.03)


def test_standard_errors_are_small_for_exact_data_and_positive_for_noisy() -> None:
    n, x = _data(1000.0, 0.05, 0.002)
    exact = fit_usl(n, x)
    assert exact.lambda_stderr is not None and exact.lambda_stderr < 1e-6
    noisy = fit_usl(n, (np.array(x) * NOISE).tolist())
    for se in (noisy.lambda_stderr, noisy.sigma_stderr, noisy.kappa_stderr):
        assert se is not None and se > 0


@pytest.mark.parametrize(("lam", "sigma"), [(500.0, 0.1), (1000.0, 0.05), (300.0, 0.5)])
def test_amdahl_recovers_kappa_zero_data(lam: float, sigma: float) -> None:
    n, x = _data(lam, sigma, 0.0)
    a = fit_amdahl(n, x)
    assert a.model == "amdahl"
    assert _close(a.lambda_, lam) and _close(a.sigma, sigma)
    assert a.kappa == 0.0 and a.kappa_stderr is None
    assert a.n_star is None
    assert a.x_max_kind == "asymptote" and a.x_max is not None and _close(a.x_max, lam / sigma)
    assert "contention-bound" in a.verdict


def test_usl_on_amdahl_data_finds_kappa_exactly_zero_and_no_peak() -> None:
    n, x = _data(500.0, 0.1, 0.0)
    r = fit_usl(n, x)
    assert r.kappa == 0.0
    assert r.n_star is None and r.x_max_kind == "asymptote"
    assert r.x_max is not None and _close(r.x_max, 5000.0)


def test_amdahl_fits_usl_data_worse_than_usl() -> None:
    n, x = _data(1000.0, 0.05, 0.002)
    assert fit_amdahl(n, x).r2 < fit_usl(n, x).r2


def test_verdicts() -> None:
    coherency = fit_usl(*_data(1000.0, 0.05, 0.002))
    assert coherency.verdict.startswith("coherency-bound")
    assert "beyond N* ≈ 22, adding more lowers throughput" in coherency.verdict

    contention = fit_usl(*_data(1000.0, 0.1, 0.00001))
    assert contention.verdict.startswith("contention-bound")

    linear = fit_usl(*_data(1000.0, 0.001, 0.0))
    assert linear.verdict.startswith("near-linear")

    retro = fit_usl(*_data(1000.0, 1.5, 0.001))
    assert retro.n_star is None and retro.x_max_kind == "n1"
    assert retro.x_max is not None and _close(retro.x_max, 1000.0)
    assert "retrograde" in retro.verdict


def test_a_poor_fit_says_so() -> None:
    r = fit_usl([1, 2, 3, 4, 5, 6, 7, 8], [5, 3, 8, 1, 9, 2, 7, 4])
    assert r.r2 < 0.8 and r.verdict.startswith("poor fit (R² = ")


def test_linear_data_has_no_maximum() -> None:
    r = fit_usl([1, 2, 3, 4, 5, 6, 7], [10, 20, 30, 40, 50, 60, 70])
    assert r.sigma == 0.0 and r.kappa == 0.0
    assert r.n_star is None and r.x_max is None and r.x_max_kind is None
    assert r.verdict.startswith("near-linear")


def test_predict_scalar_and_array() -> None:
    r = fit_usl(*_data(1000.0, 0.05, 0.002))
    assert isinstance(r.predict(1), float)
    assert r.predict(1) == pytest.approx(1000.0, rel=1e-6)
    grid = r.predict(np.array([1.0, 8.0, 64.0]))
    assert grid.shape == (3,)
    assert grid[1] == pytest.approx(float(usl_throughput(8.0, 1000.0, 0.05, 0.002)), rel=1e-6)


def test_result_is_frozen_and_serialises_the_contract_keys() -> None:
    r = fit_usl(*_data(1000.0, 0.05, 0.002))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.sigma = 0.0  # type: ignore[misc]
    d = r.as_dict()
    for key in ("lambda", "sigma", "kappa", "r2", "n_star", "x_max"):
        assert key in d
    assert isinstance(r, FitResult)


def test_repeated_levels_are_allowed() -> None:
    n, x = _data(1000.0, 0.05, 0.002)
    r = fit_usl(n + n, x + x)
    assert r.points == 14 and _close(r.kappa, 0.002)


@pytest.mark.parametrize(("n", "x", "message"), [
    ([1, 2, 4, 8], [1, 2, 3, 4], "a fit needs at least 6 levels, got 4"),
    ([1, 1, 2, 2, 4, 4, 8, 8], [1, 1, 2, 2, 3, 3, 4, 4], "a fit needs at least 6 levels, got 4"),
    ([], [], "a fit needs at least 6 levels, got 0"),
    ([1, 2, 3, 4, 5, 6], [1, 2, -3, 4, 5, 6], "throughput must not be negative, got -3 at position 2"),
    ([1, -2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], "concurrency must not be negative"),
    ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], "concurrency must be positive, got 0 at position 0"),
    ([1, 2, 3, 4, 5, 6], [1, 2, float("nan"), 4, 5, 6], "throughput must be finite numbers"),
    ([1, 2, 3, 4, 5, float("inf")], [1, 2, 3, 4, 5, 6], "concurrency must be finite numbers"),
    ([1, 2, 3, 4, 5, 6], [7, 7, 7, 7, 7, 7], "throughput is constant"),
    ([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0], "throughput is constant"),
    ([1, 2, 3, 4, 5, 6], [1, 2, 3], "concurrency has 6 values but throughput has 3"),
    ([1, 2, 3, 4, 5, 6], ["a", 2, 3, 4, 5, 6], "must be numbers"),
])
@pytest.mark.parametrize("fitter", [fit_usl, fit_amdahl])
def test_bad_data_raises_one_line_fit_error(fitter: object, n: list[float], x: list[float],
                                            message: str) -> None:
    with pytest.raises(FitError) as info:
        fitter(n, x)  # type: ignore[operator]
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- falling data, extreme values


HALVING = ([1, 2, 4, 8, 16, 32], [1000.0, 500.0, 250.0, 125.0, 62.0, 31.0])
"""Throughput that falls from the first level on: the USL puts N* ≈ 0.07, below any level."""


def test_a_peak_below_the_measured_range_is_not_reported() -> None:
    r = fit_usl(*HALVING)
    assert r.r2 > 0.99
    assert r.n_star is None  # the fitted N* ≈ 0.07 lies below N = 1
    assert r.x_max_kind == "n1" and r.x_max is not None
    assert r.x_max <= 1.01 * max(HALVING[1])  # not X(0.07), eight times anything measured
    assert r.verdict.startswith("retrograde from the start: throughput falls from the first level")
    assert "N* lies below the measured range" in r.verdict


def test_a_peak_below_the_first_level_above_one_reports_x_at_that_level() -> None:
    # Falling from N = 4 on: a fitted N* between 1 and 4 is below the measured range too.
    n = [4, 6, 8, 12, 16, 24, 32]
    x = usl_throughput(n, 1000.0, 0.05, 0.2).tolist()
    r = fit_usl(n, x)
    assert r.n_star is None and r.x_max_kind == "first"
    assert r.x_max == pytest.approx(x[0], rel=1e-3)
    assert "first level (N = 4," in r.verdict


EXTREME = [
    ([1, 2, 4, 8, 16, 32], [1e300, 1.9e300, 3e300, 4e300, 4.2e300, 3e300]),
    ([1, 2, 4, 8, 16, 32], [1e-300, 1.9e-300, 3e-300, 4e-300, 4.2e-300, 3e-300]),
    ([1, 2, 4, 8, 16, 32], [1e300, 2e300, 3e300, 1e-300, 5, 1e-10]),
    ([1, 2, 4, 8, 16, 32], [1e308, 1.7e308, 1.7e308, 1.6e308, 1.5e308, 1e308]),
    ([1e300, 2e300, 3e300, 4e300, 5e300, 6e300], [10, 20, 30, 40, 50, 60]),
]


@pytest.mark.parametrize(("n", "x"), EXTREME)
@pytest.mark.parametrize("fitter", [fit_usl, fit_amdahl])
def test_extreme_values_give_a_clean_fit_or_one_fit_error_and_no_warnings(
        fitter: object, n: list[float], x: list[float]) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = fitter(n, x)  # type: ignore[operator]
        except FitError as exc:
            assert "\n" not in str(exc)
        else:
            assert all(math.isfinite(v) for v in (r.lambda_, r.sigma, r.kappa, r.r2))
            assert r.x_max is None or math.isfinite(r.x_max)
            assert len(r.verdict) < 400  # no number written out as 300 digits
    assert [str(w.message) for w in caught] == []


def test_scaled_throughput_gives_the_same_fit_at_any_unit() -> None:
    n, x = _data(1000.0, 0.05, 0.002)
    for scale in (1e-300, 1e290):
        r = fit_usl(n, [v * scale for v in x])
        assert _close(r.sigma, 0.05) and _close(r.kappa, 0.002) and r.r2 == pytest.approx(1.0, abs=1e-9)
        peak = float(usl_throughput(21.79, 1000.0, 0.05, 0.002))
        assert r.x_max is not None and _close(r.x_max / scale, peak, rel=0.001)


# --------------------------------------------------------------------------- verdicts on measured sweeps
# Per-level throughput of real sweeps (a tester's lab run of usl-demo and shared-state-sweep,
# VUs 1 … 64, 3 s levels), so the verdicts are checked against what a user sees.

MEASURED_LEVELS = [1, 2, 4, 8, 16, 32, 64]
GLOBAL_LOCK = [397.8, 459.0, 456.4, 456.9, 463.6, 461.1, 441.7]
"""shared-state-sweep, global: flat at ~460 req/s from 2 VUs on (the fit: σ ≈ 0.85, κ ≈ 0.0011)."""
SHARP_KNEE = [45.9, 85.8, 151.4, 280.1, 523.0, 620.8, 625.6]
"""usl-demo, contention: a ceiling near 625 req/s, not a fall (the fit: σ ≈ 0.02, κ ≈ 0.00056)."""
FALLING_PAST_PEAK = [48.1, 93.2, 178.9, 300.9, 571.8, 512.8, 359.5]
"""usl-demo, coherency: a peak near 16 VUs, then a fall of 37 %."""


def test_a_flat_ceiling_dominated_by_contention_is_contention_bound_without_a_fall() -> None:
    r = fit_usl(MEASURED_LEVELS, GLOBAL_LOCK)
    assert r.kappa > 0 and r.n_star is not None and r.n_star < 64  # the fit does have a small peak
    assert r.sigma * 63 > 5 * r.kappa * 64 * 63  # σ(N−1) ≫ κN(N−1) at N = 64
    assert r.verdict.startswith("contention-bound: σ = 8"), r.verdict
    assert f"λ/σ ≈ {r.lambda_ / r.sigma:,.0f}/s" in r.verdict
    assert "does not fall 10% or more past it (observed: 464/s at N = 16, 442/s at N = 64)" in r.verdict
    assert "lowers throughput" not in r.verdict and "coherency-bound" not in r.verdict


def test_a_sharp_knee_without_a_measured_fall_is_not_called_coherency_bound() -> None:
    r = fit_usl(MEASURED_LEVELS, SHARP_KNEE)
    assert r.n_star is not None and r.n_star < 64 and r.kappa * 64 > r.sigma  # κ's term is the larger
    assert r.verdict.startswith("levels off near N* ≈ 42"), r.verdict
    assert "observed: highest, 626/s, at N = 64" in r.verdict
    assert "coherency-bound" not in r.verdict and "beyond N* ≈ 42, adding more" not in r.verdict


def test_a_measured_fall_past_the_peak_is_coherency_bound() -> None:
    r = fit_usl(MEASURED_LEVELS, FALLING_PAST_PEAK)
    assert r.verdict.startswith("coherency-bound: crosstalk (κ = 0.0018) makes throughput peak at N* ≈ 23")
    assert "beyond N* ≈ 23, adding more lowers throughput (observed: 572/s at N = 16, 360/s at N = 64)" \
        in r.verdict


def test_a_fall_only_the_model_shows_is_not_called_a_fall() -> None:
    # The USL (σ = 0, κ = 0.0005) peaks at N* ≈ 45 and falls 6 % by N = 64: no material fall.
    r = fit_usl(*_data(1000.0, 0.0, 0.0005))
    assert r.n_star is not None and r.n_star < 64
    assert r.verdict.startswith("levels off near N* ≈ 45"), r.verdict
    assert "adding more lowers throughput" not in r.verdict.split("; levels beyond N = 64 would show")[0]
    assert "beyond N* ≈ 45" not in r.verdict


def test_coherency_with_its_peak_beyond_the_range_is_a_forecast() -> None:
    r = fit_usl(*_data(1000.0, 0.0, 0.0001))  # N* = 100, beyond N = 64; κ's term is the only one
    assert r.n_star is not None and r.n_star > 64 and r.x_max_kind == "peak" and r.x_max is not None
    assert r.verdict.startswith("coherency-bound: crosstalk (κ = 0.0001) outweighs contention")
    assert f"peak of ≈ {r.x_max:,.0f}/s at N* ≈ 100, beyond the measured range: a forecast" in r.verdict
    assert "is not measured" in r.verdict


def test_a_peak_beyond_the_range_tells_the_same_story_as_x_max() -> None:
    # A tester's file: N = 0.5 … 16; the fit peaks at N* ≈ 40 with X(N*) ≈ 1,116/s.
    r = fit_usl([0.5, 1, 2, 4, 8, 16], [50, 100, 190, 350, 600, 900])
    assert r.x_max_kind == "peak" and r.n_star is not None and r.x_max is not None
    assert r.n_star > r.n_max == 16
    assert r.verdict.startswith("contention-bound:")
    assert (f"peak sooner, at ≈ {r.x_max:,.0f}/s at N* ≈ {r.n_star:.0f}, beyond the measured range "
            f"(N ≤ 16): a forecast") in r.verdict
    d = r.as_dict()
    assert (d["n_min"], d["n_max"], d["x_max"]) == (0.5, 16.0, r.x_max)


@pytest.mark.parametrize("fitter", [fit_usl, fit_amdahl])
def test_throughput_zero_at_most_levels_is_refused(fitter: object) -> None:
    with pytest.raises(FitError) as info:
        fitter([1, 2, 4, 8, 16, 32], [0, 0, 0, 0, 0, 5])  # type: ignore[operator]
    assert str(info.value) == ("throughput is 0 at 5 of 6 levels (N = 1, 2, 4, 8, 16): a fit needs at "
                               "least 6 levels with throughput above 0, got 1")
    # Zeros besides 6 served levels are fitted (a collapse at the top is data).
    r = fitter([1, 2, 4, 8, 16, 32, 64], [100, 190, 350, 500, 400, 200, 0])  # type: ignore[operator]
    assert r.points == 7


def test_tiny_contention_that_bends_the_curve_a_little_reads_near_linear() -> None:
    # usl-demo's scalable variant on 2 cores: σ = 0.4 %, κ = 0, 80 % of linear at N = 64.
    r = fit_usl(*_data(45.0, 0.004, 0.0))
    assert r.verdict.startswith("near-linear: at N = 64 throughput is 80% of linear scaling, with tiny "
                                "costs (σ = 0.40%, κ = 0)"), r.verdict
    assert "ceiling λ/σ ≈ 11,250/s lies 4.9× above the fitted 2,300/s at N = 64" in r.verdict
    assert "contention-bound" not in r.verdict
    # A tiny κ besides: its peak lies far beyond the range, and the text says so.
    r = fit_usl(*_data(45.0, 0.002, 0.00001))
    assert r.verdict.startswith("near-linear:") and "far beyond the measured range" in r.verdict, r.verdict


@pytest.mark.parametrize(("sigma", "kappa", "levels"), [
    (0.017, 0.0, LEVELS),             # usl-demo's contention variant: 1.7 % is not tiny
    (0.004, 0.0, [*LEVELS, 128, 256]),  # the same tiny σ over a wider range: 49 % of linear
    (0.0, 0.00003, LEVELS),           # κN(N−1) = 0.12 at N = 64: crosstalk is not tiny
])
def test_costs_that_are_not_tiny_over_the_measured_range_are_not_near_linear(
        sigma: float, kappa: float, levels: list[float]) -> None:
    r = fit_usl(*_data(1000.0, sigma, kappa, levels))
    assert not r.verdict.startswith("near-linear"), r.verdict

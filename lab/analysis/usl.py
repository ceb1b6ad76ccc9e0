"""Fits of the Universal Scalability Law and of Amdahl's law to throughput measurements.

The Universal Scalability Law (USL) models the throughput X at concurrency N as

    X(N) = λN / (1 + σ(N − 1) + κN(N − 1))

where λ is the throughput of one unit of concurrency with no interference (req/s), σ the
contention (the fraction of the work that is serialised: queueing for a shared resource)
and κ the coherency cost (crosstalk: each unit paying for keeping data consistent with every
other, which grows with N²). Amdahl's law is the special case κ = 0. Source:
N. J. Gunther, *Guerrilla Capacity Planning* (Springer, 2007): chapter 4 for the USL, its
peak N* = √((1 − σ)/κ) and Amdahl's law as κ = 0; chapter 5 for estimating σ and κ from
measurements by regression.

Both fits are nonlinear least squares on the throughput itself (``scipy.optimize.least_squares``,
trust-region reflective, with the bounds λ > 0, σ ≥ 0, κ ≥ 0), started from Gunther's
linearisation N/X = a + bN + cN² (chapter 5) and from the lowest-N point, keeping the best.

This module is pure computation: it imports scipy lazily (on the first fit) and never
imports Textual.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Model = Literal["usl", "amdahl"]
XMaxKind = Literal["peak", "asymptote", "n1", "first"]

MIN_LEVELS = 6
"""A fit needs at least this many distinct concurrency levels (issue 6)."""

POOR_FIT_R2 = 0.8
"""Below this R² the verdict starts with a warning that the model explains little of the data."""

NEAR_LINEAR_EFFICIENCY = 0.9
"""At or above this fraction of linear scaling at the largest measured N, the verdict is
"near-linear"."""

TINY_SIGMA = 0.01
"""σ below this (under 1 % of the work serialised) is a tiny contention cost…"""
TINY_CROSSTALK = 0.1
"""…and a coherency term κN(N − 1) below this at the largest measured N a tiny crosstalk cost."""
TINY_COSTS_EFFICIENCY = 0.75
"""With both costs tiny, at or above this fraction of linear scaling at the largest measured N
the verdict is "near-linear" too: a serialised share of a fraction of a percent bends the curve
a little over 64 levels (usl-demo's `scalable` variant on 2 cores: σ = 0.4 %, κ = 0, 80 % of
linear at N = 64, its ceiling λ/σ five times beyond the throughput measured), but calling that
"contention-bound" contradicts its own σ."""

MATERIAL_FALL = 0.10
"""The verdict says "beyond N*, adding more lowers throughput" only when both the fitted curve
and the measured throughput (mean per level) at the largest N lie at least this share below
their maximum. Smaller dips are within a real sweep's level-to-level noise: shared-state-sweep's
global variant, flat at ~460 req/s from 2 to 32 VUs, dips 4.7 % at 64."""


class FitError(ValueError):
    """Data that cannot be fitted, or a fit that failed; ``str(err)`` is one line."""


@dataclass(frozen=True)
class FitResult:
    """One fitted model: its parameters, their standard errors, and what they mean.

    Standard errors come from the covariance s²(JᵀJ)⁻¹ of the least-squares solution (J the
    Jacobian of the residuals, s² = SSR / (points − free parameters)); a parameter that sits
    on its bound (e.g. κ = 0) or an ill-conditioned Jacobian gives None (undefined).
    """

    model: Model
    """"usl" or "amdahl" (κ fixed at 0)."""
    lambda_: float
    """λ: throughput per unit of concurrency with no contention or coherency cost, i.e. the
    predicted X(1), in the unit of the throughput given (req/s)."""
    sigma: float
    """σ: contention, dimensionless (0 = none; 0.05 = 5 % of the work is serialised)."""
    kappa: float
    """κ: coherency cost, dimensionless; always 0.0 for Amdahl."""
    lambda_stderr: float | None
    """Standard error of λ (req/s), or None when undefined."""
    sigma_stderr: float | None
    """Standard error of σ, or None when undefined (σ on its bound 0, or a singular fit)."""
    kappa_stderr: float | None
    """Standard error of κ, or None when undefined (always None for Amdahl)."""
    r2: float
    """Coefficient of determination, 1 − SSR/SST, of the throughput (1.0 = perfect)."""
    n_star: float | None
    """N* = √((1 − σ)/κ): the concurrency at which throughput peaks; None when κ = 0 or σ ≥ 1
    (throughput never peaks), and None when the fitted N* lies below the measured range (below
    the smallest measured N, or below 1): throughput then falls from the first level on, and a
    "peak" the data never shows is not reported."""
    x_max: float | None
    """The predicted maximum throughput (req/s): X(N*) when there is a peak ("peak"); the
    asymptote λ/σ when κ = 0 and 0 < σ < 1 ("asymptote"); when throughput falls from the
    first level on (σ ≥ 1, or N* below the measured range), the model's X at the first level:
    λ = X(1) ("n1") or X(smallest measured N) when that is above 1 ("first"); None when
    σ = κ = 0 (linear, unbounded)."""
    x_max_kind: XMaxKind | None
    """What ``x_max`` is: "peak" (X(N*), the fitted curve's maximum; N* lies within the measured
    range or beyond it, ``n_star > n_max``, where it is a forecast and the verdict says so),
    "asymptote" (λ/σ, approached but never reached), "n1" / "first" (throughput falls from the
    first level on), or None (linear: unbounded)."""
    points: int
    """Number of (N, X) points used (repeated levels count once each)."""
    n_min: float
    """Smallest measured concurrency."""
    n_max: float
    """Largest measured concurrency."""
    verdict: str
    """Plain-language reading: near-linear, contention-bound, coherency-bound, levels off, or
    retrograde from the start (see ``_verdict``); prefixed "poor fit (R² = …)" below R² 0.8."""

    @overload
    def predict(self, n: float) -> float: ...

    @overload
    def predict(self, n: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]: ...

    def predict(self, n: float | Sequence[float] | NDArray[np.float64]) -> float | NDArray[np.float64]:
        """The fitted throughput X(N) (req/s) at concurrency ``n`` (a number, or an array of shape (k,))."""
        if isinstance(n, int | float):
            return float(usl_throughput(float(n), self.lambda_, self.sigma, self.kappa))
        return np.asarray(usl_throughput(np.asarray(n, dtype=float), self.lambda_, self.sigma, self.kappa))

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values; ``lambda``, ``sigma``, ``kappa``, ``r2``, ``n_star`` and
        ``x_max`` are the contract keys of ``lab fit --format json``; ``n_min`` and ``n_max`` (the
        measured range) tell a peak within it from a forecast beyond it (``n_star > n_max``)."""
        return {
            "model": self.model,
            "lambda": self.lambda_,
            "sigma": self.sigma,
            "kappa": self.kappa,
            "r2": self.r2,
            "n_star": self.n_star,
            "x_max": self.x_max,
            "x_max_kind": self.x_max_kind,
            "lambda_stderr": self.lambda_stderr,
            "sigma_stderr": self.sigma_stderr,
            "kappa_stderr": self.kappa_stderr,
            "points": self.points,
            "n_min": self.n_min,
            "n_max": self.n_max,
            "verdict": self.verdict,
        }


def usl_throughput(n: ArrayLike, lambda_: float, sigma: float, kappa: float) -> NDArray[np.float64]:
    """X(N) = λN / (1 + σ(N − 1) + κN(N − 1)) (Gunther 2007, chapter 4), elementwise.

    Args:
        n: concurrency, a number or an array of any shape.
        lambda_: λ, throughput per unit of concurrency (req/s).
        sigma: σ, contention (dimensionless).
        kappa: κ, coherency (dimensionless).

    Returns:
        X(N) in the unit of λ, with the shape of ``n``.
    """
    n_arr = np.asarray(n, dtype=float)
    return np.asarray(lambda_ * n_arr / (1.0 + sigma * (n_arr - 1.0) + kappa * n_arr * (n_arr - 1.0)))


def fit_usl(concurrency: ArrayLike, throughput: ArrayLike) -> FitResult:
    """Fit the Universal Scalability Law by nonlinear least squares, with σ, κ ≥ 0.

    Source: N. J. Gunther, *Guerrilla Capacity Planning* (Springer, 2007), chapter 4 (the
    model and N* = √((1 − σ)/κ)) and chapter 5 (fitting it to measurements).

    Args:
        concurrency: N per measurement, shape (k,), positive (VUs, workers, nodes…).
        throughput: X per measurement, shape (k,), non-negative (req/s or any rate unit).

    Returns:
        The fitted :class:`FitResult` (model "usl").

    Raises:
        FitError: fewer than 6 distinct levels, lengths differ, a negative, zero (concurrency)
            or non-finite number, constant throughput, or an optimiser failure.
    """
    n, x = _check(concurrency, throughput)
    return _quiet_fit(n, x, "usl")


def fit_amdahl(concurrency: ArrayLike, throughput: ArrayLike) -> FitResult:
    """Fit Amdahl's law, X(N) = λN / (1 + σ(N − 1)), the USL with κ = 0, with σ ≥ 0.

    Source: N. J. Gunther, *Guerrilla Capacity Planning* (Springer, 2007), chapter 4 (Amdahl's
    law as the κ = 0 case of the USL); throughput tends to λ/σ as N grows.

    Args:
        concurrency: N per measurement, shape (k,), positive.
        throughput: X per measurement, shape (k,), non-negative.

    Returns:
        The fitted :class:`FitResult` (model "amdahl", κ = 0).

    Raises:
        FitError: as :func:`fit_usl`.
    """
    n, x = _check(concurrency, throughput)
    return _quiet_fit(n, x, "amdahl")


# --------------------------------------------------------------------------- internals


def _check(concurrency: Any, throughput: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate and convert the inputs to float arrays of shape (k,); raise FitError."""
    try:
        n = np.asarray(concurrency, dtype=float).reshape(-1)
        x = np.asarray(throughput, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise FitError(f"concurrency and throughput must be numbers ({exc})") from None
    if n.shape != x.shape:
        raise FitError(f"concurrency has {n.size} values but throughput has {x.size}")
    for name, arr in (("concurrency", n), ("throughput", x)):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise FitError(f"{name} must be finite numbers, got {arr[i]} at position {i}")
        if (arr < 0).any():
            i = int(np.argmax(arr < 0))
            raise FitError(f"{name} must not be negative, got {arr[i]:g} at position {i}")
    if (n == 0).any():
        raise FitError(f"concurrency must be positive, got 0 at position {int(np.argmax(n == 0))}")
    levels = np.unique(n).size
    if levels < MIN_LEVELS:
        raise FitError(f"a fit needs at least {MIN_LEVELS} levels, got {levels}")
    if np.ptp(x) <= 1e-12 * float(np.max(x)):  # relative: 1e-320 … 3e-320 is not constant
        raise FitError(f"throughput is constant ({x[0]:g} at every level): there is nothing to fit")
    # X(N) > 0 at every N > 0 in both models, so a zero is a level where nothing was served:
    # a failure, not a point on a scalability curve. A sweep leaves such levels out and needs
    # 6 others; here too, so five zeros and one 5 req/s are refused, not read as "near-linear".
    served = np.unique(n[x > 0])
    if served.size < MIN_LEVELS:
        zeros = [v for v in np.unique(n[x == 0]) if v not in served]
        shown = ", ".join(f"{v:g}" for v in zeros[:6]) + (", …" if len(zeros) > 6 else "")
        raise FitError(f"throughput is 0 at {len(zeros)} of {levels} levels (N = {shown}): a fit needs "
                       f"at least {MIN_LEVELS} levels with throughput above 0, got {served.size}")
    return n, x


def _starts(n: NDArray[np.float64], x: NDArray[np.float64],
            free: tuple[bool, bool]) -> list[NDArray[np.float64]]:
    """Initial guesses (λ, σ, κ) for the optimiser; σ or κ is 0 where ``free`` says it is fixed.

    1. Gunther's linearisation (2007, chapter 5): N/X = a + bN + cN² with a = (1 − σ)/λ,
       b = (σ − κ)/λ, c = κ/λ, so λ = 1/(a + b + c), σ = 1 − aλ, κ = cλ, solved by ordinary
       least squares over the points with X > 0.
    2. λ from the lowest-N point (X/N), then σ, κ ≥ 0 by non-negative least squares on
       λN/X − 1 = σ(N − 1) + κN(N − 1).
    """
    from scipy.optimize import nnls

    mask = np.array([1.0, float(free[0]), float(free[1])])
    pos = x > 0
    npos, xpos = n[pos], x[pos]
    starts: list[NDArray[np.float64]] = []
    lo = int(np.argmin(np.where(pos, n, np.inf)))
    lam_lo = float(x[lo] / n[lo]) if x[lo] > 0 else float(np.max(x / n))
    if npos.size >= 3:
        try:
            coef, *_ = np.linalg.lstsq(np.column_stack([np.ones_like(npos), npos, npos**2]), npos / xpos,
                                       rcond=None)
        except np.linalg.LinAlgError:  # e.g. N near 1e300: N² overflows; the other starts remain
            coef = np.full(3, np.nan)
        total = float(np.sum(coef))
        if total > 0 and np.isfinite(total):
            lam = 1.0 / total
            starts.append(np.array([lam, max(1.0 - coef[0] * lam, 0.0), max(coef[2] * lam, 0.0)]))
        try:
            sol, _ = nnls(np.column_stack([npos - 1.0, npos * (npos - 1.0)]), lam_lo * npos / xpos - 1.0)
            starts.append(np.array([lam_lo, sol[0], sol[1]]))
        except (ValueError, RuntimeError):
            pass
    starts.append(np.array([lam_lo, 0.01, 1e-4]))
    starts.append(np.array([lam_lo, 0.0, 0.0]))
    return [s * mask for s in starts]


def _solve(n: NDArray[np.float64], xs: NDArray[np.float64], free: tuple[bool, bool],
           starts: list[NDArray[np.float64]]) -> tuple[NDArray[np.float64], float, list[float | None]] | None:
    """Least squares for (λ, σ, κ) on throughput scaled to max 1, with σ or κ fixed at 0 where
    ``free`` says so; the best of several starts.

    Returns:
        (λ, σ, κ) of shape (3,), the sum of squared (scaled) residuals, and the standard errors
        of (λ, σ, κ) in the same scaled units (None for a fixed parameter, one on its bound, or a
        singular JᵀJ), or None when no start converged.
    """
    from scipy.optimize import least_squares

    idx = [0] + [i + 1 for i in range(2) if free[i]]

    def full(q: NDArray[np.float64]) -> NDArray[np.float64]:
        p = np.zeros(3)
        p[idx] = q
        return p

    def residuals(q: NDArray[np.float64]) -> NDArray[np.float64]:
        lam, sig, kap = full(q)
        return usl_throughput(n, lam, sig, kap) - xs

    def jacobian(q: NDArray[np.float64]) -> NDArray[np.float64]:
        lam, sig, kap = full(q)
        d = 1.0 + sig * (n - 1.0) + kap * n * (n - 1.0)
        cols = [n / d, -lam * n * (n - 1.0) / d**2, -lam * n * n * (n - 1.0) / d**2]
        return np.column_stack([cols[i] for i in idx])

    lower = np.zeros(len(idx))
    lower[0] = 1e-300
    best = None
    for start in starts:
        q0 = np.maximum(start[idx], lower + 1e-12)
        try:
            res = least_squares(residuals, q0, jac=jacobian, bounds=(lower, np.inf), method="trf",
                                x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=5000)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        if np.all(np.isfinite(res.x)) and np.isfinite(res.cost) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        return None
    q = best.x.copy()
    q[best.active_mask != 0] = lower[best.active_mask != 0]  # trf stops a hair above a bound
    ssr = float(np.sum(residuals(q) ** 2))

    # Covariance s²(JᵀJ)⁻¹ over the parameters not on a bound, s² = SSR / (points − those).
    stderrs: list[float | None] = [None, None, None]
    on = np.flatnonzero(best.active_mask == 0)
    dof = n.size - on.size
    if on.size and dof > 0:
        jac = jacobian(q)[:, on]
        try:
            cov = np.linalg.inv(jac.T @ jac) * (ssr / dof)
        except np.linalg.LinAlgError:
            cov = None
        if cov is not None:
            for j, i in enumerate(on):
                var = float(cov[j, j])
                if np.isfinite(var) and var >= 0:
                    stderrs[idx[i]] = math.sqrt(var)
    return full(q), ssr, stderrs


ZERO_SSR_SHARE = 1e-9
"""A parameter is taken as exactly 0 (on its bound) when fixing it there raises the residual
sum of squares by less than this share of the total sum of squares (R² unchanged to 9 digits)."""


def _quiet_fit(n: NDArray[np.float64], x: NDArray[np.float64], model: Model) -> FitResult:
    """:func:`_fit` with numpy's and scipy's floating-point warnings silenced.

    Extreme inputs (throughput near 1e300 or 1e-300, N in the millions) make the optimiser
    overflow or underflow on the way; it copes (a start that fails is skipped) but numpy and
    scipy print a RuntimeWarning for every step, which would flood the user's terminal. The
    result is checked for finite numbers instead, and a fit that is not is one FitError.
    """
    failed = FitError(f"the {'USL' if model == 'usl' else 'Amdahl'} fit did not converge to finite "
                      f"numbers (throughput from {float(np.min(x)):g} to {float(np.max(x)):g}, "
                      f"concurrency from {float(np.min(n)):g} to {float(np.max(n)):g})")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = _fit(n, x, model)
        except (ArithmeticError, np.linalg.LinAlgError):
            raise failed from None
    numbers = (result.lambda_, result.sigma, result.kappa, result.r2,
               0.0 if result.x_max is None else result.x_max)
    if not all(math.isfinite(v) for v in numbers):
        raise failed
    return result


def _fit(n: NDArray[np.float64], x: NDArray[np.float64], model: Model) -> FitResult:
    """Least-squares fit of one model to validated data (see :func:`fit_usl`).

    The throughput is scaled to a maximum of 1 so tolerances do not depend on its unit. For
    the USL, σ and κ are then tried at exactly 0 (the sub-models with one or both fixed): when
    that costs nothing (see ``ZERO_SSR_SHARE``), the parameter is on its bound, so κ = 0 data
    gets κ = 0 and no N*, rather than κ = 1e-11 and N* = 300,000.
    """
    scale = float(np.max(x))
    xs = x / scale
    sst = float(np.sum((xs - np.mean(xs)) ** 2))
    free_full = (True, model == "usl")
    candidates = [free_full]
    if model == "usl":
        candidates += [(True, False), (False, True), (False, False)]
    else:
        candidates += [(False, False)]
    solutions = []
    for free in candidates:
        # Starts in the scaled unit the solver works in (and no 1e300 / 1e-300 on the way).
        solved = _solve(n, xs, free, _starts(n, xs, free))
        if solved is not None:
            solutions.append((free, solved))
    if not solutions or solutions[0][0] != free_full:
        raise FitError(f"the {'USL' if model == 'usl' else 'Amdahl'} fit did not converge")
    best_ssr = min(s[1][1] for s in solutions)
    # The fewest free parameters whose fit is as good as the best one (to ZERO_SSR_SHARE).
    good = [s for s in solutions if s[1][1] <= best_ssr + ZERO_SSR_SHARE * sst]
    free, (p, _ssr, se_s) = min(good, key=lambda s: sum(s[0]))

    lam, sig, kap = float(p[0] * scale), float(p[1]), float(p[2])
    lam_se = se_s[0] * scale if se_s[0] is not None else None
    sig_se = se_s[1] if free[0] else None
    kap_se = se_s[2] if free[1] else None
    # R² on the scaled throughput: the same number, without overflow (1e300²) or underflow.
    ssr = float(np.sum((xs - usl_throughput(n, float(p[0]), sig, kap)) ** 2))
    r2 = 1.0 - ssr / sst if sst > 0 else float("nan")

    n_top = float(np.max(n))
    n_min = float(np.min(n))
    n_star, x_max, kind = _peak(lam, sig, kap, n_min)
    verdict = _verdict(model, lam, sig, kap, n_star, x_max, n, x)
    if not r2 >= POOR_FIT_R2:
        verdict = (f"poor fit (R² = {r2:.2f}): the {'USL' if model == 'usl' else 'Amdahl'} model explains "
                   f"little of this data, so treat this reading with caution; {verdict}")
    return FitResult(model=model, lambda_=lam, sigma=sig, kappa=kap, lambda_stderr=lam_se,
                     sigma_stderr=sig_se, kappa_stderr=kap_se, r2=r2, n_star=n_star, x_max=x_max,
                     x_max_kind=kind, points=int(n.size), n_min=n_min, n_max=n_top,
                     verdict=verdict)


def first_level(n_min: float) -> float:
    """The concurrency below which a fitted peak is not reported: the smallest measured N,
    and never below 1 (less than one unit of concurrency is not a level anyone runs)."""
    return max(n_min, 1.0)


def _peak(lam: float, sig: float, kap: float,
          n_min: float = 1.0) -> tuple[float | None, float | None, XMaxKind | None]:
    """N*, the maximum throughput and its kind (see :attr:`FitResult.x_max`).

    dX/dN ∝ (1 − σ) − κN², so with κ > 0 and σ < 1 the peak is N* = √((1 − σ)/κ)
    (Gunther 2007, chapter 4); otherwise X never peaks: it tends to λ/σ (κ = 0, σ > 0),
    falls from N = 1 on (σ ≥ 1), or grows without bound (σ = κ = 0).

    A peak below :func:`first_level` is no peak of the data: throughput falls from the first
    level on, so the maximum is the model's X there, not X(N*) far below the measured range
    (on falling data N* can come out at 0.07 with X(N*) eight times anything measured).
    """
    lo = first_level(n_min)
    falling_kind: XMaxKind = "n1" if lo == 1.0 else "first"
    if sig >= 1.0:
        return None, float(usl_throughput(lo, lam, sig, kap)), falling_kind
    if kap > 0.0:
        n_star = math.sqrt((1.0 - sig) / kap)
        if n_star < lo:
            return None, float(usl_throughput(lo, lam, sig, kap)), falling_kind
        return n_star, float(usl_throughput(n_star, lam, sig, kap)), "peak"
    if sig > 0.0:
        return None, lam / sig, "asymptote"
    return None, None, None


def _fmt_n(v: float) -> str:
    """A concurrency for prose: one decimal below 10, whole numbers above."""
    return f"{v:.1f}" if v < 10 else f"{v:,.0f}"


def _fmt(v: float) -> str:
    """A number for prose: thousands separators, about three significant figures (and an
    exponent from 1e9, not a line of digits)."""
    if 100 <= v < 1e9:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _level_means(n: NDArray[np.float64],
                 x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The distinct measured levels, ascending, shape (m,), and the mean throughput at each."""
    levels, inverse = np.unique(n, return_inverse=True)
    scale = float(np.max(x)) or 1.0  # summed in units of the maximum: two 1.7e308 do not overflow
    means = np.bincount(inverse, weights=x / scale) / np.bincount(inverse) * scale
    return levels, means


def _verdict(model: Model, lam: float, sig: float, kap: float, n_star: float | None,
             x_max: float | None, n: NDArray[np.float64], x: NDArray[np.float64]) -> str:
    """Plain-language reading of a fit, judged over the measured range (the levels ``n`` with
    throughput ``x``, both shape (k,)).

    The readings, in Gunther's terms (2007, chapter 4):

    - retrograde from the start: σ ≥ 1, or the fitted peak lies below the first level.
    - near-linear: X(largest N) is at least 90 % of λ·N; or at least 75 % with tiny costs:
      σ < 1 % and κN(N − 1) < 0.1 at the largest N.
    - coherency-bound: crosstalk makes throughput fall. Either the fitted peak N* lies within
      the measured range and both the fitted curve and the measured throughput at the largest
      N lie at least ``MATERIAL_FALL`` below their maximum ("beyond N*, adding more lowers
      throughput"); or the coherency term κN(N − 1) outweighs the contention term σ(N − 1) at
      the largest N while N* lies beyond the measured range (a forecast fall, not a measured
      one).
    - levels off: the fit peaks within the measured range, with the coherency term the larger
      at the largest N, but the measurements do not fall past the peak: a sharp knee, which
      one saturated resource (contention) gives as well as crosstalk.
    - contention-bound: the contention term outweighs the coherency term at the largest N and
      nothing falls: throughput levels off towards λ/σ, each added unit helping less; a small
      κ may put a peak near or beyond the measured range, which the text names with X(N*).
    """
    n_max = float(np.max(n))
    lo = first_level(float(np.min(n)))
    if sig >= 1.0:
        if lo == 1.0:
            return (f"retrograde from the start: σ = {sig:.3g} ≥ 1, so throughput is highest at N = 1 "
                    f"({_fmt(lam)}/s) and adding concurrency lowers it")
        return (f"retrograde from the start: σ = {sig:.3g} ≥ 1, so throughput falls from the first "
                f"level (N = {lo:g}, ≈ {_fmt(x_max or 0.0)}/s) and adding concurrency lowers it")
    if kap > 0.0 and n_star is None:
        fitted = math.sqrt((1.0 - sig) / kap)
        return (f"retrograde from the start: throughput falls from the first level (N = {lo:g}, "
                f"≈ {_fmt(x_max or 0.0)}/s) and adding concurrency lowers it; N* lies below the "
                f"measured range (the fit puts it at {fitted:.2g}), so there is no peak to report")
    x_top = float(usl_throughput(n_max, lam, sig, kap))
    efficiency = x_top / (lam * n_max) if lam > 0 else 0.0
    if efficiency >= NEAR_LINEAR_EFFICIENCY:
        text = (f"near-linear: at N = {n_max:g} throughput is {efficiency:.0%} of linear scaling "
                f"(σ = {sig:.2%}, κ = {kap:.2g}); no limit shows within the measured range")
        if n_star is not None and x_max is not None:
            text += f"; the fit predicts a peak at N* ≈ {_fmt_n(n_star)} (≈ {_fmt(x_max)}/s)"
            if n_star > n_max:
                text += ", beyond the measured range"
        return text
    crosstalk = kap * n_max * (n_max - 1.0)
    if sig < TINY_SIGMA and crosstalk < TINY_CROSSTALK and efficiency >= TINY_COSTS_EFFICIENCY:
        text = (f"near-linear: at N = {n_max:g} throughput is {efficiency:.0%} of linear scaling, "
                f"with tiny costs (σ = {sig:.2%}, κ = {kap:.2g}); ")
        if n_star is not None and x_max is not None:
            # κN(N − 1) < 0.1 puts N* = √((1 − σ)/κ) above 3 × the largest N.
            text += (f"the fit predicts a peak at N* ≈ {_fmt_n(n_star)} (≈ {_fmt(x_max)}/s), far "
                     f"beyond the measured range")
        elif sig > 0.0:
            text += (f"its ceiling λ/σ ≈ {_fmt(lam / sig)}/s lies {lam / sig / x_top:.1f}× above the "
                     f"fitted {_fmt(x_top)}/s at N = {n_max:g}")
        else:
            text += "no limit shows within the measured range"
        return text

    levels, means = _level_means(n, x)
    top = int(np.argmax(means))
    x_seen, n_seen, x_last = float(means[top]), float(levels[top]), float(means[-1])
    measured_fall = n_seen < n_max and x_last <= (1.0 - MATERIAL_FALL) * x_seen
    if n_seen < n_max:
        seen = f"observed: {_fmt(x_seen)}/s at N = {n_seen:g}, {_fmt(x_last)}/s at N = {n_max:g}"
    else:
        seen = f"observed: highest, {_fmt(x_last)}/s, at N = {n_max:g}"
    # Which term of the denominator holds throughput back more at the largest measured N:
    # κN(N − 1) against σ(N − 1).
    coherency_larger = kap > 0.0 and kap * n_max >= sig

    if n_star is not None and x_max is not None and n_star <= n_max:
        model_fall = x_top <= (1.0 - MATERIAL_FALL) * x_max
        if model_fall and measured_fall:
            return (f"coherency-bound: crosstalk (κ = {kap:.2g}) makes throughput peak at "
                    f"N* ≈ {_fmt_n(n_star)} (≈ {_fmt(x_max)}/s); beyond N* ≈ {_fmt_n(n_star)}, "
                    f"adding more lowers throughput ({seen})")
        if not measured_fall:
            fall = f"the measured throughput does not fall {MATERIAL_FALL:.0%} or more past it ({seen})"
        else:
            fall = f"the fitted curve falls less than {MATERIAL_FALL:.0%} past it ({seen})"
        if coherency_larger:
            return (f"levels off near N* ≈ {_fmt_n(n_star)} (≈ {_fmt(x_max)}/s fitted): {fall}. A sharp "
                    f"knee, which the fit draws with crosstalk (κ = {kap:.2g} outweighs σ = {sig:.2%} at "
                    f"N = {n_max:g}) and one saturated resource (contention) gives as well; levels beyond "
                    f"N = {n_max:g} would show whether adding more lowers throughput")
        return (f"{_contention(sig, lam)}; the fit's small κ ({kap:.2g}) bends the curve to a peak "
                f"of ≈ {_fmt(x_max)}/s at N* ≈ {_fmt_n(n_star)}, but {fall}")
    if n_star is not None and x_max is not None:
        if coherency_larger:
            return (f"coherency-bound: crosstalk (κ = {kap:.2g}) outweighs contention (σ = {sig:.2%}) "
                    f"at N = {n_max:g} and bends throughput towards a peak of ≈ {_fmt(x_max)}/s at "
                    f"N* ≈ {_fmt_n(n_star)}, beyond the measured range: a forecast; whether adding "
                    f"more lowers throughput past it is not measured")
        return (f"{_contention(sig, lam)}; the fit's small κ ({kap:.2g}) makes it peak sooner, at "
                f"≈ {_fmt(x_max)}/s at N* ≈ {_fmt_n(n_star)}, beyond the measured range (N ≤ "
                f"{n_max:g}): a forecast, not a measurement")
    text = _contention(sig, lam)
    if model == "amdahl":
        text += " (Amdahl's law has no peak)"
    return text


def _contention(sig: float, lam: float) -> str:
    """The contention-bound reading: Amdahl's ceiling λ/σ (σ > 0)."""
    return (f"contention-bound: σ = {sig:.2%} of the work is serialised, so throughput levels off "
            f"towards λ/σ ≈ {_fmt(lam / sig)}/s; each added unit helps less")

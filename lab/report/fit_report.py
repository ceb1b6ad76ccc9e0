"""``lab fit FILE.csv``: fit the Universal Scalability Law and Amdahl's law to measurements.

The lead registers it with ``cli.add_command(fit)`` in :mod:`lab.cli`. Data goes to stdout
(a table, or JSON with ``--format json``); a bad file is one line on stderr and exit code 2
(:attr:`lab.errors.ExitCode.BAD_INPUT`). scipy and plotext are imported only when the
command runs, so ``lab --help`` stays fast.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.analysis.usl import FitResult

PLOT_WIDTH = 80
"""The plot's width in columns, at most (less on a narrower terminal)."""
PLOT_HEIGHT = 20
"""The plot's height in rows."""




BIG = 1e9
"""From this magnitude numbers are written with an exponent (1.369e+300), not as digits that
would overflow their table cell."""


def _num(v: float) -> str:
    """A parameter for the table: thousands separators from 1,000, else 4 significant figures
    (an exponent from 1e9)."""
    if v == 0:
        return "0"
    if 1000 <= abs(v) < BIG:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _pm(v: float, se: float | None, fixed: bool = False) -> str:
    """``value ± stderr``, both to the stderr's second significant digit; "value (fixed)" for
    a parameter held at 0, "0 (at bound)" for one the fit pushed to its bound 0, and
    "value ± –" when the standard error is otherwise undefined."""
    if fixed:
        return f"{_num(v)} (fixed)"
    if se is None:
        return "0 (at bound)" if v == 0 else f"{_num(v)} ± –"
    if se > 0 and max(abs(v), se) < BIG:
        decimals = 1 - math.floor(math.log10(se))
        if decimals <= 0:
            return f"{v:,.0f} ± {se:,.0f}"
        if decimals <= 6:
            return f"{v:,.{decimals}f} ± {se:.{decimals}f}"
    return f"{_num(v)} ± {se:.2g}"


def _peak_cells(r: FitResult) -> tuple[str, str]:
    """The N* and maximum-throughput cells of one fit."""
    if r.x_max_kind == "peak" and r.n_star is not None and r.x_max is not None:
        return f"{r.n_star:.1f}", _num(r.x_max)
    if r.x_max_kind == "asymptote" and r.x_max is not None:
        return "none", f"{_num(r.x_max)} (λ/σ, asymptote)"
    if r.x_max_kind == "n1" and r.x_max is not None:
        return "none", f"{_num(r.x_max)} (at N = 1)"
    if r.x_max_kind == "first" and r.x_max is not None:
        return "none", f"{_num(r.x_max)} (at N = {r.n_min:g})"
    return "none", "unbounded (linear)"


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats become None, so the JSON stays standard (no NaN / Infinity)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def render_json(path: str, fits: dict[str, FitResult]) -> str:
    """The JSON document (a contract): the USL fit's ``lambda``, ``sigma``, ``kappa``, ``r2``,
    ``n_star``, ``x_max`` at the top level (Amdahl's when it is the only model), plus ``model``,
    ``*_stderr``, ``x_max_kind``, ``points``, ``n_min``, ``n_max``, ``verdict``, ``file``, and an
    ``amdahl`` object when both models were fitted.

    ``x_max_kind`` "peak": ``x_max`` is X(N*), the fitted curve's maximum, with N* within the
    measured range or beyond it (``n_star`` > ``n_max``: a forecast, as the verdict says).

    The keys are always there; a value that means nothing is null: ``n_star`` when throughput
    never peaks within or above the measured range (κ = 0, σ ≥ 1, or a fitted N* below the
    smallest measured N or below 1: throughput falls from the first level), ``x_max`` when it
    grows without bound (σ = κ = 0), and any non-finite number."""
    main = fits.get("usl") or fits["amdahl"]
    doc: dict[str, Any] = {"file": path, **_clean(main.as_dict())}
    if "usl" in fits and "amdahl" in fits:
        doc["amdahl"] = _clean(fits["amdahl"].as_dict())
    return json.dumps(doc, indent=2, ensure_ascii=False)


def render_table(path: str, fits: dict[str, FitResult]) -> str:
    """The parameters with their standard errors, R², N*, X(N*) and the verdicts, as text."""
    from rich.console import Console
    from rich.table import Table

    first = next(iter(fits.values()))
    names = {"usl": "USL", "amdahl": "Amdahl"}
    table = Table(title=f"lab fit {path}: {first.points} points, N = {first.n_min:g} … {first.n_max:g}",
                  show_edge=False, title_style="bold")
    table.add_column("parameter")
    for model in fits:
        table.add_column(names[model], justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("λ  throughput at N = 1 (/s)", [_pm(r.lambda_, r.lambda_stderr) for r in fits.values()]),
        ("σ  contention", [_pm(r.sigma, r.sigma_stderr) for r in fits.values()]),
        ("κ  coherency", [_pm(r.kappa, r.kappa_stderr, fixed=r.model == "amdahl") for r in fits.values()]),
        ("R²", [f"{r.r2:.5f}" for r in fits.values()]),
        ("N*  peak concurrency", [_peak_cells(r)[0] for r in fits.values()]),
        ("X(N*)  max throughput (/s)", [_peak_cells(r)[1] for r in fits.values()]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    buffer = io.StringIO()
    Console(width=PLOT_WIDTH, file=buffer, color_system=None).print(table)
    lines = [buffer.getvalue().rstrip()]
    for model, r in fits.items():
        lines.append(textwrap.fill(f"{names[model]}: {r.verdict}", width=PLOT_WIDTH, subsequent_indent="  "))
    if "usl" in fits and "amdahl" in fits:
        better = "USL" if fits["usl"].r2 >= fits["amdahl"].r2 else "Amdahl"
        lines.append(f"Better fit by R²: {better}.")
    return "\n".join(lines)


def curve_span(concurrency: list[float], n_star: float | None) -> tuple[float, float]:
    """The N range the plot draws the fitted curves over: from the smallest measured N (never
    below 1) to the largest, or to 1.2 × N* when the USL's peak lies within 3× of it.

    Args:
        concurrency: measured N, shape (k,).
        n_star: the USL's peak, or None.
    """
    n_lo, n_hi = max(1.0, min(concurrency)), max(concurrency)
    if n_star is not None and n_hi < n_star <= 3 * n_hi:
        n_hi = n_star * 1.2  # show the predicted peak when it is near the measured range
    return n_lo, max(n_hi, n_lo)


def render_plot(concurrency: list[float], throughput: list[float], fits: dict[str, FitResult],
                width: int, color: bool) -> str:
    """A terminal plot of the measured points and the fitted curves, N* marked, via plotext,
    with its legend on the lines under it (plotext's own would sit inside the plot, over data).

    The curves cover the measured range only (from the smallest measured N, never below 1, to
    the largest; to a little past N* when the USL's peak lies within 3× of it): outside it the
    fit is an extrapolation, and below N = 1 − 1/σ Amdahl's curve diverges. The y axis runs
    from 0 to just above the data (see :func:`lab.report.sweep_report.y_top`).

    Args:
        concurrency: measured N, shape (k,).
        throughput: measured X, shape (k,).
        fits: the fitted models by name ("usl", "amdahl").
        width: columns to use (the plot and its legend are at most this wide).
        color: keep plotext's ANSI colours (False: plain text).

    Returns:
        The plot (``PLOT_HEIGHT`` lines) and its legend, as a string.
    """
    import numpy as np
    import plotext as plt

    from lab.report.sweep_report import legend_lines, y_top

    usl = fits.get("usl")
    n_star = usl.n_star if usl is not None else None
    n_lo, n_hi = curve_span(concurrency, n_star)
    grid = np.linspace(n_lo, n_hi, 200)

    plt.clear_figure()
    plt.plotsize(width, PLOT_HEIGHT)
    plt.theme("pro" if color else "clear")
    # Without colour the two curves differ by their marks: braille dots for the USL, middle
    # dots for Amdahl.
    styles = {"usl": ("USL fit", "blue", "braille", "⣀⣀"), "amdahl": ("Amdahl fit", "orange", "·", "··")}
    curves: list[float] = []
    legend = ["● measured"]
    for model, r in fits.items():
        label, colour, mark, sample = styles[model]
        with np.errstate(all="ignore"):  # extreme λ may overflow at large N: no warning flood
            curve = r.predict(grid)
        curves += curve[np.isfinite(curve)].tolist()
        plt.plot(grid.tolist(), curve.tolist(), marker=mark, color=colour)
        legend.append(f"{sample} {label}")
    # The points last: plotext draws in call order, and a curve through a point's cell would
    # hide the point otherwise.
    plt.scatter(concurrency, throughput, marker="●", color="red")
    if n_star is not None and n_lo <= n_star <= n_hi:
        plt.vline(n_star, "green")
        legend.append(f"│ N*≈{n_star:.0f}, the USL's peak")
    plt.xlabel("concurrency N")
    plt.ylabel("throughput")
    plt.xlim(0, n_hi)
    plt.ylim(0, y_top(throughput, curves))
    out = str(plt.build())
    plt.clear_figure()
    plot = out if color else str(plt.uncolorize(out))
    return plot.rstrip("\n") + "\n" + legend_lines(legend[:-1], legend[-1], width)



"""Sweeps in the terminal: the per-level table, the fits, and a plot of X(N) with the
fitted curves and N* (or, for an arrival-rate sweep, p99 against the offered rate with
the SLO line).

Input is ``lab.analysis.sweep.SweepAnalysis``; nothing here touches the database.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from lab.analysis.sweep import SweepAnalysis, plot_data
from lab.analysis.usl import first_level
from lab.report.table import MISSING, _compact_table, fmt_ms, fmt_percent, fmt_rate, strip_ansi


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def levels_table(variant: str, analysis: SweepAnalysis) -> Table:
    """One row per level: N, X(N) ± spread, R(N) ± spread, p95, p99, errors, and the
    Little's law check (closed model) or the offered rate (open model)."""
    open_model = analysis.model == "open"
    caption = "X: ok req/s · R: mean latency · ±: stdev over 1 s intervals"
    if not open_model:
        caption += "\nLittle: X·(R + think time), ✓ within 20 % of the VUs"
    table = _compact_table(f"sweep of {analysis.parameter} · {variant}")
    table.caption = caption
    table.caption_justify = "left"
    table.add_column(analysis.parameter, justify="right")
    table.add_column("run", justify="right")
    if open_model:
        table.add_column("offered\nreq/s", justify="right")
    table.add_column("X req/s", justify="right")
    table.add_column("±", justify="right")
    table.add_column("R ms", justify="right")
    table.add_column("±", justify="right")
    table.add_column("p95\nms", justify="right")
    table.add_column("p99\nms", justify="right")
    table.add_column("err\n%", justify="right")
    if not open_model:
        table.add_column("Little\nN", justify="right")
    for lv in analysis.levels:
        row: list[str | Text] = [f"{lv.level:g}", str(lv.run_id)]
        if open_model:
            row.append(fmt_rate(lv.offered_rps))
        row += [fmt_rate(lv.throughput_rps), fmt_rate(lv.throughput_spread_rps),
                fmt_ms(lv.latency_mean_ms), fmt_ms(lv.latency_spread_ms), fmt_ms(lv.p95_ms),
                fmt_ms(lv.p99_ms), fmt_percent(lv.error_rate)]
        if not open_model:
            mark = "" if lv.little_ok is None else " ✓" if lv.little_ok else " ✗"
            row.append(Text(_num(lv.little_n) + mark,
                            style="red" if lv.little_ok is False else ""))
        if lv.status != "completed":
            row[1] = Text(f"{lv.run_id} {lv.status}", style="red")
        table.add_row(*row)
    return table


def fits_table(sweeps: Sequence[tuple[str, SweepAnalysis]]) -> Table | None:
    """The USL and Amdahl fits of each variant's sweep, or None when none has a fit."""
    rows = [(variant, a) for variant, a in sweeps if a.usl is not None]
    if not rows:
        return None
    table = _compact_table(
        "USL fits: X(N) = λN / (1 + σ(N−1) + κN(N−1))",
        caption=None)
    for header in ("variant", "model", "λ req/s", "σ", "κ", "R²", "N*", "X(N*)"):
        table.add_column(header, justify="left" if header in ("variant", "model") else "right")
    for variant, a in rows:
        for fit in (a.usl, a.amdahl):
            if fit is None:
                continue

            def pm(v: float, e: float | None) -> str:
                return _num(v) + (f" ±{_num(e, 2)}" if e is not None else "")

            x_max = fmt_rate(fit.x_max)
            if fit.x_max_kind == "asymptote":
                x_max = f"→{x_max}"  # never reached: the limit as N grows
            elif fit.x_max_kind in ("n1", "first"):
                x_max = f"{x_max} at N={first_level(fit.n_min):g}"  # falls from the first level on
            table.add_row(variant, fit.model, pm(fit.lambda_, fit.lambda_stderr),
                          pm(fit.sigma, fit.sigma_stderr), pm(fit.kappa, fit.kappa_stderr),
                          f"{fit.r2:.3f}", _num(fit.n_star), x_max)
    return table


FIT_NOTE = ("σ: contention (the serialised share), κ: coherency (the cost of keeping "
            "shared state consistent); N*: the concurrency of peak throughput X(N*), "
            "→ an asymptote never reached; ± standard errors")


def verdicts(sweeps: Sequence[tuple[str, SweepAnalysis]]) -> Text:
    """One line per variant: the USL verdict, why there is no fit, or the capacity at
    the SLO."""
    out = Text()
    if any(a.usl is not None for _, a in sweeps):
        out.append(FIT_NOTE + "\n", style="dim")
    for i, (variant, a) in enumerate(sweeps):
        if i:
            out.append("\n")
        out.append(f"{variant}: ", style="bold")
        if a.usl is not None:
            out.append(a.usl.verdict)
        elif a.slo_p99_ms is not None:
            if a.capacity_rps is None:
                out.append(f"no level met the SLO (p99 < {a.slo_p99_ms:g} ms with ≥ 99 % of the "
                           f"offered rate achieved)")
            else:
                out.append(f"capacity at the SLO (p99 < {a.slo_p99_ms:g} ms, ≥ 99 % of the offered "
                           f"rate achieved): {fmt_rate(a.capacity_rps)} req/s")
        elif a.fit_note:
            out.append(a.fit_note)
    return out


MARKERS = ("●", "■", "▲", "◆")
"""Point markers, one per variant in order (then repeated), so variants are told apart without
colour too."""
COLORS = ("blue", "red", "green", "orange", "magenta", "cyan")
"""plotext colours, one per variant: its points and its fitted curve share one."""
Y_MARGIN = 0.05
"""Room above the highest point or curve, as a share of it."""
CURVE_ROOM = 1.5
"""A fitted curve lifts the y axis to at most this multiple of the highest measured point;
above, it is clipped, so a poor fit cannot squash the points into the bottom rows."""


def marker(i: int) -> str:
    """The point marker of the ``i``-th variant (0-based)."""
    return MARKERS[i % len(MARKERS)]


def y_top(points: Sequence[float], curves: Sequence[float]) -> float:
    """The y-axis maximum for a plot of ``points`` (measured) and ``curves`` (fitted): the data
    with a small margin; a curve counts up to ``CURVE_ROOM`` times the highest point."""
    top = max((p for p in points if math.isfinite(p)), default=0.0)
    finite = [c for c in curves if math.isfinite(c)]
    if finite:
        top = max(top, min(max(finite), CURVE_ROOM * top) if top > 0 else max(finite))
    return top * (1 + Y_MARGIN) if top > 0 else 1.0


def legend_lines(entries: Sequence[str], tail: str, width: int) -> str:
    """The legend printed under a plot: ``entries`` (``"● variant"``) then ``tail`` (what the
    lines mean), wrapped to ``width`` columns."""
    return textwrap.fill("   ".join([*entries, tail]), width=width, break_on_hyphens=False)


def sweep_plot(sweeps: Sequence[tuple[str, SweepAnalysis]], width: int = 78, height: int = 20,
               color: bool = False) -> str:
    """A terminal plot of the sweeps, variants overlaid: measured X(N) as points (one marker
    and colour per variant), the fitted USL curve as a line and N* as a vertical line; for
    arrival-rate sweeps, p99 against the offered rate with the SLO as a horizontal line. The
    legend is our own, under the plot (plotext's sits inside it and hides what is there).

    Returns:
        The plot and its legend as text (ANSI colours only with ``color``), or one line saying
        there is nothing to plot when no level measured anything.
    """
    import plotext as plt

    rate_sweep = all(a.slo_p99_ms is not None for _, a in sweeps)
    drawn = [(variant, plot_data(a)) for variant, a in sweeps]
    if not any(d.points for _, d in drawn):
        # plotext draws a broken, over-wide frame around no data at all.
        which = "this sweep" if len(drawn) == 1 else "these sweeps"
        return f"no plot: no level of {which} measured anything"
    plt.clear_figure()
    plt.plotsize(width, height)
    for i, (_variant, data) in enumerate(drawn):
        colour = COLORS[i % len(COLORS)]
        if rate_sweep:
            if data.points:  # p99 joined level to level; the points follow below
                plt.plot([p[0] for p in data.points], [p[1] for p in data.points], marker="braille",
                         color=colour)
            continue
        if data.curve:
            plt.plot([p[0] for p in data.curve], [p[1] for p in data.curve], marker="braille",
                     color=colour)
        if data.n_star is not None:
            plt.vline(data.n_star, colour)
    # The measured points last, every variant's after every curve: plotext draws in call
    # order, and a curve through a point's cell would hide the point otherwise.
    for i, (_variant, data) in enumerate(drawn):
        if data.points:
            plt.scatter([p[0] for p in data.points], [p[1] for p in data.points], marker=marker(i),
                        color=COLORS[i % len(COLORS)])
    top = y_top([p[1] for _, d in drawn for p in d.points], [p[1] for _, d in drawn for p in d.curve])
    entries = [f"{marker(i)} {variant}" for i, (variant, _d) in enumerate(drawn)]
    if rate_sweep:
        slo = next(a.slo_p99_ms for _, a in sweeps) or 0.0
        top = max(top, slo * (1 + Y_MARGIN))
        plt.hline(slo)
        plt.title(f"p99 latency vs offered rate (SLO p99 < {slo:g} ms)")
        plt.xlabel("offered req/s")
        plt.ylabel("p99 ms")
        tail = f"points: p99 per level · horizontal line: the SLO, {slo:g} ms"
    else:
        names = ", ".join(f"N*={a.usl.n_star:.3g}" for _, a in sweeps if a.usl and a.usl.n_star)
        plt.title("throughput X(N)" + (f" · vertical line: {names}" if names else ""))
        plt.xlabel(sweeps[0][1].parameter if sweeps else "N")
        plt.ylabel("req/s")
        tail = "points: measured"
        if any(d.curve for _, d in drawn):
            tail += " · line: USL fit"
        if any(d.n_star is not None for _, d in drawn):
            tail += " · vertical line: N*"
    plt.ylim(0, top)
    text = plt.build()
    plt.clear_figure()
    return (text if color else strip_ansi(text)).rstrip("\n") + "\n" + legend_lines(entries, tail, width)

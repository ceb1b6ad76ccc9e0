"""Sweeps in the terminal: the per-level table, the fits, and a plot of X(N) with the
fitted curves and N* (or, for an arrival-rate sweep, p99 against the offered rate with
the SLO line).

Input is ``lab.analysis.sweep.SweepAnalysis``; nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from lab.analysis.sweep import SweepAnalysis, plot_data
from lab.analysis.usl import first_level
from lab.report.table import MISSING, _compact_table, fmt_ms, fmt_rate, strip_ansi


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
                fmt_ms(lv.p99_ms), f"{lv.error_rate * 100:.2f}"]
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


def legend_headroom(top: float, height: int, legend_lines: int) -> float:
    """The y-axis maximum that leaves ``legend_lines`` + 1 free rows above ``top`` in a
    plotext plot ``height`` rows tall (its title, x axis and labels take about 5)."""
    area = max(height - 5, 2)
    free = min(legend_lines + 1, area - 1)
    return top * area / (area - free) if top > 0 else 1.0


def sweep_plot(sweeps: Sequence[tuple[str, SweepAnalysis]], width: int = 78, height: int = 20,
               color: bool = False) -> str:
    """A terminal plot of the sweeps, variants overlaid: measured X(N) as points, the
    fitted USL curve as a line and N* as a vertical line; for arrival-rate sweeps, p99
    against the offered rate with the SLO as a horizontal line.

    Returns:
        The plot as text (ANSI colours only with ``color``).
    """
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    rate_sweep = all(a.slo_p99_ms is not None for _, a in sweeps)
    drawn = [(variant, plot_data(a)) for variant, a in sweeps]
    for variant, data in drawn:
        if rate_sweep:
            if data.points:
                plt.plot([p[0] for p in data.points], [p[1] for p in data.points],
                         label=f"{variant} p99", marker="dot")
            continue
        if data.curve:
            plt.plot([p[0] for p in data.curve], [p[1] for p in data.curve], label=f"{variant} USL fit")
        if data.n_star is not None:
            plt.vline(data.n_star)
    # The measured points last, every variant's after every curve: plotext draws in call
    # order, and a curve through a point's cell would hide the point otherwise.
    for variant, data in drawn:
        if not rate_sweep and data.points:
            plt.scatter([p[0] for p in data.points], [p[1] for p in data.points],
                        label=f"{variant} measured", marker="●")
    # plotext draws its legend over the plot's top-left corner; room above the data for
    # its lines keeps it from hiding a measured point.
    legend_lines = sum((1 if rate_sweep else (bool(d.curve) + bool(d.points))) for _, d in drawn)
    top = max((y for _, d in drawn for y in [p[1] for p in d.points + d.curve]), default=0.0)
    if rate_sweep:
        top = max(top, next(a.slo_p99_ms for _, a in sweeps) or 0.0)
    plt.ylim(0, legend_headroom(top, height, legend_lines))
    if rate_sweep:
        slo = next(a.slo_p99_ms for _, a in sweeps)
        plt.hline(slo)
        plt.title(f"p99 latency vs offered rate (SLO p99 < {slo:g} ms)")
        plt.xlabel("offered req/s")
        plt.ylabel("p99 ms")
    else:
        names = ", ".join(f"N*={a.usl.n_star:.3g}" for _, a in sweeps if a.usl and a.usl.n_star)
        plt.title("throughput X(N)" + (f" · vertical line: {names}" if names else ""))
        plt.xlabel(sweeps[0][1].parameter if sweeps else "N")
        plt.ylabel("req/s")
    text = plt.build()
    plt.clear_figure()
    return text if color else strip_ansi(text)

"""``lab fit FILE.csv``: fit the Universal Scalability Law and Amdahl's law to measurements.

Data goes to stdout (a table, or JSON with ``--format json``); a bad file is one line on
stderr and exit code 2. scipy and plotext are imported only when the command runs, so
``lab --help`` stays fast.
"""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING

import click

from lab.cli.common import fail, lab_command
from lab.report.fit_report import PLOT_WIDTH, render_json, render_plot, render_table

if TYPE_CHECKING:
    from lab.analysis.usl import FitResult


@lab_command("fit")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format on stdout.")
@click.option("--model", type=click.Choice(["usl", "amdahl", "both"]), default="both", show_default=True,
              help="Which model to fit: the Universal Scalability Law, Amdahl's law (κ = 0), or both.")
@click.option("--plot/--no-plot", default=None,
              help="Draw the terminal plot of points and fitted curves (default: only when stdout is a "
                   "terminal; never with --format json).")
def fit(file: str, fmt: str, model: str, plot: bool | None) -> None:
    """Fit the Universal Scalability Law and Amdahl's law to throughput measurements in FILE.csv.

    FILE has a header row with a concurrency column (concurrency, n, vus, workers, …) and a
    throughput column (throughput, x, rps, throughput_rps, …); other columns are ignored. At
    least 6 concurrency levels are needed. Reports λ, σ, κ with standard errors, R², the peak
    N* = √((1−σ)/κ) and X(N*), and whether scaling is near-linear, contention-bound,
    coherency-bound, levels off or is retrograde from the start (N. J. Gunther, Guerrilla
    Capacity Planning, Springer 2007).

    Bad data is one line on stderr and exit code 2.
    """
    from lab.analysis.fitdata import FitDataError, read_fit_csv
    from lab.analysis.usl import FitError, fit_amdahl, fit_usl

    try:
        concurrency, throughput = read_fit_csv(file)
    except FitDataError as exc:
        fail(str(exc))
    models = ["usl", "amdahl"] if model == "both" else [model]
    fits: dict[str, FitResult] = {}
    for m in models:
        try:
            fits[m] = (fit_usl if m == "usl" else fit_amdahl)(concurrency, throughput)
        except FitError as exc:
            fail(f"{file}: {exc}")

    if fmt == "json":
        click.echo(render_json(file, fits))
        return
    click.echo(render_table(file, fits))
    tty = sys.stdout.isatty()
    if plot if plot is not None else tty:
        width = min(PLOT_WIDTH, shutil.get_terminal_size((PLOT_WIDTH, 24)).columns) if tty else PLOT_WIDTH
        try:
            drawing = render_plot(concurrency, throughput, fits, max(width, 40), color=tty)
        except Exception as exc:  # noqa: BLE001 - the plot is optional; the figures are already out
            click.echo(f"lab fit: could not draw the plot: {exc}", err=True)
            return
        click.echo("")
        click.echo(drawing)

"""``lab sweep [SWEEP_ID...]``: stored sweeps listed, or shown (overlaid when several) with
their levels, fits and plot. It only reads the results database."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from lab.cli.common import db_option, fail, format_option, lab_command, open_readonly, stdout_console
from lab.cli.output import print_sweeps
from lab.errors import UnknownRunError
from lab.ids import SWEEP_ID


@lab_command()
@click.argument("sweep_ids", type=SWEEP_ID, nargs=-1)
@db_option
@format_option
def sweep(sweep_ids: Sequence[int], db_path: str, fmt: str) -> None:
    """Show stored sweeps (overlaid when several), or list them without SWEEP_IDS."""
    with open_readonly(db_path) as store:
        if not sweep_ids:
            records = store.list_sweeps()
            if fmt == "json":
                click.echo(json.dumps({"sweeps": [
                    {"id": r.id, "experiment": r.experiment, "variant": r.variant,
                     "parameter": r.parameter, "levels": r.levels, "created_at": r.created_at,
                     "runs": [run.id for run in r.runs], "fits": r.fits,
                     "capacity_rps": r.capacity_rps, "missing_levels": r.missing_levels}
                    for r in records]}, indent=2))
                return
            if not records:
                click.echo(f"no sweeps in {db_path} (an experiment with a [sweep] makes them: "
                           f"lab run usl-demo)")
                return
            from rich.table import Table

            from lab.analysis.sweep import MIN_FIT_LEVELS

            table = Table(title="sweeps", show_edge=False, title_style="bold")
            columns = ("id", "experiment", "variant", "parameter", "levels", "runs", "N*", "σ", "κ", "R²")
            for column in columns:
                table.add_column(column)
            for r in records:
                usl = next((f for f in r.fits if f["model"] == "usl"), None)
                n_star = f"{usl['n_star']:.3g}" if usl and usl["n_star"] else "–"
                if usl and (usl["points"] or 0) > len(r.runs):
                    # Fitted over more levels than are stored: a level was deleted by a lab
                    # that did not yet drop the fit with it (see Store.delete_run).
                    n_star = f"{n_star} (stale: {usl['points']} levels)"
                runs = str(len(r.runs))
                if r.missing_levels:
                    # A deleted (or never run) level: the fit, if any, is of the levels left.
                    runs = (f"{len(r.runs)} of {len(r.levels)}, missing "
                            + ", ".join(f"{v:g}" for v in r.missing_levels))
                # N* is – both without a fit and for a fit that never peaks (κ = 0): σ, κ and
                # R² tell the two apart.
                fit_cells = (("–",) * 3 if usl is None else
                             (f"{usl['sigma']:.3g}", f"{usl['kappa']:.3g}", f"{usl['r2']:.3f}"))
                table.add_row(str(r.id), r.experiment, r.variant, r.parameter,
                              ", ".join(f"{v:g}" for v in r.levels), runs, n_star, *fit_cells)
            if any(r.missing_levels for r in records):
                table.caption = (f"missing: levels without a stored run (deleted, or not run); N* is "
                                 f"fitted from the levels left, – with fewer than {MIN_FIT_LEVELS}")
                table.caption_justify = "left"
            stdout_console().print(table)
            return
        try:
            from lab.analysis.sweep import analyse_stored

            sweeps = analyse_stored(store, list(sweep_ids))
        except UnknownRunError as exc:
            fail(f"{db_path}: {exc}")
    if fmt == "json":
        click.echo(json.dumps({"sweeps": [{"id": i, "variant": v, **a.as_dict()}
                                          for i, v, a in sweeps]}, indent=2))
        return
    print_sweeps(sweeps)

"""``lab report``: one self-contained HTML file with the comparison table, time-series
charts and sweep curves of stored runs.

The page needs no network: no scripts, no fonts, no external CSS or images; the charts
are inline SVG drawn here (``svg_chart``), and a Content-Security-Policy forbids every
fetch, so a stray reference could not load anything either. Every text from the database
is escaped. The tables are the terminal's own (``lab.report.table``,
``lab.report.sweep_report``) turned into HTML cell by cell (``rich_table_html``), so the
figures are exactly those of ``lab compare`` and ``lab sweep``.

``gather`` reads what a report shows through the ``Store`` API; ``render_report`` turns
it into the page and touches no database.

The package, by concern: ``data`` (``gather``: what the page shows), ``charts`` (the SVG
chart kit), ``tables`` (rich tables as HTML), ``styles`` (the CSS) and ``page``
(``render_report``: the page assembled).
"""

from lab.report.html.charts import PLOT_BG, Line, Mark, log_ticks, nice_ticks, run_color, svg_chart
from lab.report.html.data import ReportData, SweepEntry, gather
from lab.report.html.page import render_report

__all__ = [
    "PLOT_BG",
    "Line",
    "Mark",
    "ReportData",
    "SweepEntry",
    "gather",
    "log_ticks",
    "nice_ticks",
    "render_report",
    "run_color",
    "svg_chart",
]

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
"""

from __future__ import annotations

import dataclasses
import io
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Literal

from rich.console import Console, RenderableType
from rich.errors import MarkupError
from rich.style import Style
from rich.table import Table
from rich.text import Text

from lab import __version__
from lab.report.table import (
    MISSING,
    comparison_table,
    fmt_rate,
    fmt_seconds,
    stages_table,
    target_table,
)

if TYPE_CHECKING:
    from lab.analysis.stages import StageFigures
    from lab.analysis.sweep import SweepAnalysis
    from lab.analysis.usl import FitResult
    from lab.store import ErrorRow, IntervalRow, ResourceRow, RunRecord, Store

MIB = 1024 * 1024
"""Bytes per MiB."""

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
"""Line colours, one per run (or sweep variant), in order; they repeat after ten, dashed."""

LOG_RATIO = 20.0
"""A chart switches its y axis to a log scale when its highest value is more than this
factor above the typical value (median) of one of its lines: on a linear axis that line
would fill under 1/20 of the height, a flat line at 0 (a run 51× slower than another)."""

PLOT_PAD = 6
"""Px between a chart's frame and the data drawn in it: a marker (radius 4) or a line
(width up to 2.5) at the end of an axis stays whole inside the frame."""

PLOT_BG = "#fafbfc"
"""Fill of a chart's plot area (a test finds the charts in a screenshot by it)."""

CHART_W = 600
"""Width of a chart's SVG coordinate system (scaled to the page), px."""
CHART_H = 300
"""Height of a chart's SVG coordinate system, px."""

# ------------------------------------------------------------------------ data


@dataclass(frozen=True)
class SweepEntry:
    """One stored sweep (a variant run at each level) and its analysis."""

    id: int
    """``sweeps.id``."""
    experiment: str
    """The experiment the sweep belongs to."""
    variant: str
    """The swept variant."""
    analysis: SweepAnalysis
    """Per-level figures and fits (``lab.analysis.sweep.analyse_stored``)."""


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, read from a results database."""

    runs: list[RunRecord]
    """The runs asked for, in the order asked."""
    intervals: dict[int, list[IntervalRow]] = field(default_factory=dict)
    """Run id → its intervals (about one per second), time order."""
    target_resources: dict[int, list[ResourceRow]] = field(default_factory=dict)
    """Run id → its ``target`` resource readings, time order."""
    errors: dict[int, list[ErrorRow]] = field(default_factory=dict)
    """Run id → its stored error samples."""
    stages: dict[int, list[StageFigures]] = field(default_factory=dict)
    """Run id → per-stage figures, for runs whose load has more than one stage."""
    sweeps: list[SweepEntry] = field(default_factory=list)
    """The sweeps any of the runs is a level of, in first-seen order."""
    source: str = ""
    """Where the data came from (the database path), shown in the header."""
    generated_at: float = 0.0
    """When the report was made, Unix seconds (0: now, when rendered)."""


def gather(store: Store, run_ids: Sequence[int], source: str = "") -> ReportData:
    """Read the runs, their series and their sweeps from the store (no writes).

    Args:
        store: the results database (read-only is enough).
        run_ids: the runs, in display order; the first is the baseline of the deltas.
        source: how to name the database in the header (e.g. the ``--db`` path).

    Raises:
        KeyError: ``no run with id N`` for the first unknown id.
    """
    from lab.analysis.stages import stage_figures
    from lab.analysis.sweep import analyse_stored

    runs = store.get_runs(list(run_ids))
    intervals: dict[int, list[IntervalRow]] = {}
    resources: dict[int, list[ResourceRow]] = {}
    errors: dict[int, list[ErrorRow]] = {}
    stages: dict[int, list[StageFigures]] = {}
    for run in runs:
        if run.id in intervals:
            continue
        intervals[run.id] = store.intervals(run.id)
        resources[run.id] = store.resources(run.id, role="target")
        errors[run.id] = store.errors(run.id)
        load = run.config.get("load") or {}
        if len(load.get("stages") or []) > 1:
            user_levels = [(e.t_s, e.level) for e in store.run_events(run.id) if e.reason == "user"]
            stages[run.id] = stage_figures(intervals[run.id], load, user_levels=user_levels)
    sweep_ids = store.sweep_ids_of([run.id for run in runs])
    sweeps = [SweepEntry(sweep_id, store.get_sweep(sweep_id).experiment, variant, analysis)
              for sweep_id, variant, analysis in analyse_stored(store, sweep_ids, save=False)]
    return ReportData(runs=runs, intervals=intervals, target_resources=resources, errors=errors,
                      stages=stages, sweeps=sweeps, source=source, generated_at=time.time())


# ------------------------------------------------------------------------ rich → HTML

_CONSOLE = Console(file=io.StringIO(), color_system="truecolor", width=400)
_COLOR_CLASSES = {"green": "good", "red": "bad", "yellow": "warn", "cyan": "info"}


def _style_classes(style: Style | None) -> list[str]:
    if style is None:
        return []
    classes = []
    if style.color is not None and style.color.name in _COLOR_CLASSES:
        classes.append(_COLOR_CLASSES[style.color.name])
    if style.bold:
        classes.append("b")
    if style.dim:
        classes.append("dim")
    if style.italic:
        classes.append("i")
    return classes


def rich_text_html(cell: RenderableType | None) -> str:
    """A rich cell (``Text``, or a string with rich markup) as escaped HTML: line breaks
    become ``<br>``, colours and weights become classes (green ``good``, red ``bad``,
    yellow ``warn``, dim ``dim``, bold ``b``)."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        try:
            text = Text.from_markup(cell)
        except MarkupError:
            text = Text(cell)
    elif isinstance(cell, Text):
        text = cell
    else:
        return escape(str(cell))
    out = []
    for segment in text.render(_CONSOLE, end=""):
        if not segment.text:
            continue
        body = escape(segment.text).replace("\n", "<br>")
        classes = _style_classes(segment.style)
        out.append(f'<span class="{" ".join(classes)}">{body}</span>' if classes else body)
    return "".join(out)


def rich_table_html(table: Table, css_class: str = "") -> str:
    """A rich ``Table`` as an HTML table: its title as the caption, its header, its rows
    (a bold row stays bold), right-justified columns as numbers, and its caption as a
    note under the table."""
    columns = table.columns
    cells = [list(column.cells) for column in columns]
    numeric = [column.justify == "right" for column in columns]
    head = "".join(f'<th class="{"num" if num else ""}">{rich_text_html(column.header)}</th>'
                   for column, num in zip(columns, numeric, strict=True))
    body = []
    for r in range(table.row_count):
        row_style = table.rows[r].style
        bold = row_style is not None and "bold" in str(row_style)
        tds = "".join(
            f'<td class="{"num" if numeric[c] else ""}">{rich_text_html(cells[c][r])}</td>'
            for c in range(len(columns)))
        body.append(f'<tr class="{"b" if bold else ""}">{tds}</tr>')
    caption = f"<caption>{rich_text_html(table.title)}</caption>" if table.title else ""
    note = ""
    if table.caption:
        note = f'<p class="note">{rich_text_html(table.caption)}</p>'
    return (f'<div class="table-wrap"><table class="{escape(css_class)}">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}</div>")


# ------------------------------------------------------------------------ SVG charts


@dataclass(frozen=True)
class Line:
    """One line (or set of points) of a chart."""

    points: Sequence[tuple[float, float | None]]
    """``(x, y)`` in data units; a None y (or y ≤ 0 on a log axis) breaks the line."""
    color: str
    """Stroke colour, e.g. ``#1f77b4``."""
    label: str = ""
    """Tooltip of the line and its points."""
    width: float = 2.5
    """Stroke width, px."""
    dash: str = ""
    """``stroke-dasharray``, e.g. ``"6 4"``; empty for solid."""
    markers: bool = False
    """Draw a dot at each point."""
    connect: bool = True
    """Join the points with a line."""


@dataclass(frozen=True)
class Mark:
    """A reference line across the plot: N*, an SLO, ..."""

    value: float
    """Where, in data units of its axis."""
    label: str
    """Text drawn beside it."""
    color: str
    """Stroke colour."""
    axis: Literal["x", "y"] = "x"
    """``x``: a vertical line at x = value; ``y``: a horizontal one."""


@dataclass(frozen=True)
class LegendItem:
    """One entry of a chart's legend."""

    label: str
    color: str
    dash: str = ""
    marker: bool = False


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``: about ``count`` steps of 1, 2, 2.5 or 5
    times a power of ten; the first tick ≤ lo, the last ≥ hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice_step(hi - lo, count)
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    n = round((stop - start) / step)
    return [round(start + i * step, 12) for i in range(n + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis covering ``[lo, hi]`` (both > 0): powers of ten, plus 2 and 5
    times them when the range spans fewer than three decades."""
    a = math.floor(math.log10(lo) + 1e-9)
    b = math.ceil(math.log10(hi) - 1e-9)
    if b == a:
        b += 1
    mults = (1, 2, 5) if b - a < 3 else (1,)
    ticks = [m * 10.0 ** e for e in range(a, b + 1) for m in mults]
    inside = [t for t in ticks if lo <= t <= hi]
    below = [t for t in ticks if t < lo]
    above = [t for t in ticks if t > hi]
    return ([below[-1]] if below else []) + inside + ([above[0]] if above else [])


def fmt_tick(value: float, step: float | None = None) -> str:
    """A tick label: ``16k`` style above 10,000, else as many decimals as the step needs."""
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k" if value % 1000 == 0 else f"{value / 1000:,.1f}k"
    if step is None or step <= 0:
        return f"{value:g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:,.{decimals}f}"


class _Axis:
    """Maps data values on one axis to pixels (linear or log)."""

    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float, log: bool) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self.px_lo, self.px_hi = px_lo, px_hi

    def inside(self, value: float) -> bool:
        return value > 0 if self.log else True

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        span = self.hi - self.lo or 1.0
        return self.px_lo + (v - self.lo) / span * (self.px_hi - self.px_lo)


def _segments(points: Sequence[tuple[float, float | None]],
              ok: _Axis) -> list[list[tuple[float, float]]]:
    out: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None or not math.isfinite(y) or not ok.inside(y):
            if out[-1]:
                out.append([])
            continue
        out[-1].append((x, y))
    return [seg for seg in out if seg]


def _attr(value: str) -> str:
    return escape(value, quote=True)


def should_log(lines: Sequence[Line]) -> bool:
    """Whether a linear y axis would flatten a line: with two lines or more, the highest
    positive value of all (the top of a linear axis) is more than ``LOG_RATIO`` times
    the median positive value of one line (then a log y axis shows them all).

    Compared with the top, not with the other lines' medians: a run whose per-second
    throughput climbs to 15,000 req/s over a ramp has a median of a few thousand, and a
    133 req/s run beside it would still be a flat line at 0."""
    medians = []
    top = 0.0
    for line in lines:
        ys = [y for _x, y in line.points if y is not None and math.isfinite(y) and y > 0]
        if ys:
            medians.append(statistics.median(ys))
            top = max(top, max(ys))
    return len(medians) >= 2 and top / min(medians) > LOG_RATIO


def svg_chart(lines: Sequence[Line], *, x_label: str, y_label: str, log_y: bool = False,
              y_from_zero: bool = True, x_range: tuple[float, float] | None = None,
              marks: Sequence[Mark] = (), shade: tuple[float, float, str] | None = None,
              empty_text: str = "no data", width: int = CHART_W, height: int = CHART_H) -> str:
    """A line chart as an inline ``<svg>`` element (no scripts, no external references).

    Args:
        lines: what to draw, in order (later lines on top).
        x_label: the x axis's label, with its unit.
        y_label: the y axis's label, with its unit.
        log_y: a logarithmic y axis (values ≤ 0 are left out).
        y_from_zero: a linear y axis starts at 0 (else at the smallest value).
        x_range: the x axis's data range; None fits the data (and the marks).
        marks: reference lines (N*, an SLO), labelled.
        shade: ``(x0, x1, label)``: a grey band, e.g. the warm-up.
        empty_text: what the plot says when there is nothing to draw.
        width: width of the coordinate system, px (the SVG scales to its container).
        height: height of the coordinate system, px.

    Returns:
        The ``<svg>`` element as text. Everything drawn from the data lies inside the plot
        frame: points outside ``x_range`` are left out, the data sit ``PLOT_PAD`` px in
        from the frame (so a marker at the end of an axis is whole), and an x mark
        outside the range is a label at the frame's edge, not a line past it.
    """
    left, right, top, bottom = 64, 16, 14, 44
    if x_range is not None:
        lo, hi = x_range
        lines = [dataclasses.replace(line, points=[(x, y) for x, y in line.points
                                                   if lo - 1e-9 <= x <= hi + 1e-9])
                 for line in lines]
    xs = [x for line in lines for x, y in line.points if y is not None]
    ys = [y for line in lines for _x, y in line.points
          if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
    xs += [m.value for m in marks if m.axis == "x"]
    ys += [m.value for m in marks if m.axis == "y" and (m.value > 0 or not log_y)]
    parts = [f'<svg class="plot" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_attr(y_label)} against {_attr(x_label)}">']
    px0, px1, py0, py1 = left, width - right, height - bottom, top
    parts.append(f'<rect class="area" x="{px0}" y="{py1}" width="{px1 - px0}" height="{py0 - py1}"/>')
    if not ys or not xs:
        parts.append(f'<text class="empty" x="{(px0 + px1) / 2}" y="{(py0 + py1) / 2}" '
                     f'text-anchor="middle">{escape(empty_text)}</text></svg>')
        return "".join(parts)
    x_lo, x_hi = x_range if x_range is not None else (min(xs), max(xs))
    outside = [m for m in marks if m.axis == "x" and not x_lo - 1e-9 <= m.value <= x_hi + 1e-9]
    marks = [m for m in marks if m not in outside]
    x_ticks = nice_ticks(x_lo, x_hi, 6)
    if x_range is None:
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    else:
        x_ticks = [t for t in x_ticks if x_lo - 1e-9 <= t <= x_hi + 1e-9]
    if log_y:
        y_ticks = log_ticks(min(ys), max(ys))
    else:
        y_ticks = nice_ticks(0.0 if y_from_zero and min(ys) >= 0 else min(ys), max(ys), 5)
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    pad = PLOT_PAD
    fx = _Axis(x_lo, x_hi, px0 + pad, px1 - pad, log=False)
    fy = _Axis(y_lo, y_hi, py0 - pad, py1 + pad, log=log_y)
    y_step = None if log_y else (y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else None)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else None

    if shade is not None and shade[1] > shade[0]:
        # A band reaching an end of the axis reaches the frame (past the data's padding).
        a = px0 if shade[0] <= x_lo else fx(shade[0])
        b = px1 if shade[1] >= x_hi else fx(shade[1])
        parts.append(f'<rect class="shade" x="{a:.1f}" y="{py1}" width="{max(b - a, 0):.1f}" '
                     f'height="{py0 - py1}"/>')
        parts.append(f'<text class="shade-label" x="{a + 4:.1f}" y="{py1 + 12}">'
                     f"{escape(shade[2])}</text>")
    for t in y_ticks:
        y = fy(t)
        parts.append(f'<line class="grid" x1="{px0}" y1="{y:.1f}" x2="{px1}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{px0 - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(fmt_tick(t, y_step))}</text>")
    for t in x_ticks:
        x = fx(t)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{py1}" x2="{x:.1f}" y2="{py0}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{py0 + 16}" text-anchor="middle">'
                     f"{escape(fmt_tick(t, x_step))}</text>")
    parts.append(f'<line class="axis" x1="{px0}" y1="{py0}" x2="{px1}" y2="{py0}"/>')
    parts.append(f'<line class="axis" x1="{px0}" y1="{py1}" x2="{px0}" y2="{py0}"/>')
    parts.append(f'<text class="label" x="{(px0 + px1) / 2}" y="{height - 6}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    y_text = y_label + (" (log scale)" if log_y else "")
    parts.append(f'<text class="label" transform="translate(14 {(py0 + py1) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_text)}</text>')

    for mark in marks:
        if mark.axis == "x":
            x = fx(mark.value)
            parts.append(f'<line class="mark" x1="{x:.1f}" y1="{py1}" x2="{x:.1f}" y2="{py0}" '
                         f'stroke="{_attr(mark.color)}"/>')
            anchor = "end" if x > (px0 + px1) / 2 else "start"
            dx = -5 if anchor == "end" else 5
            parts.append(f'<text class="mark-label" x="{x + dx:.1f}" y="{py0 - 8}" '
                         f'text-anchor="{anchor}" fill="{_attr(mark.color)}">{escape(mark.label)}</text>')
        elif fy.inside(mark.value):
            y = fy(mark.value)
            parts.append(f'<line class="mark" x1="{px0}" y1="{y:.1f}" x2="{px1}" y2="{y:.1f}" '
                         f'stroke="{_attr(mark.color)}"/>')
            parts.append(f'<text class="mark-label" x="{px1 - 4}" y="{y - 5:.1f}" text-anchor="end" '
                         f'fill="{_attr(mark.color)}">{escape(mark.label)}</text>')

    for mark in outside:
        # Beyond the x range (N* far past the last level): said at the edge it lies past.
        right_side = mark.value > x_hi
        x, anchor = (px1 - 4, "end") if right_side else (px0 + 4, "start")
        text = f"{mark.label} →" if right_side else f"← {mark.label}"
        parts.append(f'<text class="mark-label" x="{x}" y="{py1 + 14}" text-anchor="{anchor}" '
                     f'fill="{_attr(mark.color)}">{escape(text)}</text>')

    # A nested <svg> clips what is drawn to the plot frame, whatever the data.
    parts.append(f'<svg class="clip" x="{px0}" y="{py1}" width="{px1 - px0}" height="{py0 - py1}" '
                 f'viewBox="{px0} {py1} {px1 - px0} {py0 - py1}" overflow="hidden">')
    for line in lines:
        color = _attr(line.color)
        title = f"<title>{escape(line.label)}</title>" if line.label else ""
        for seg in _segments(line.points, fy):
            coords = [(fx(x), fy(y)) for x, y in seg]
            if line.connect and len(coords) > 1:
                d = "M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in coords)
                dash = f' stroke-dasharray="{_attr(line.dash)}"' if line.dash else ""
                parts.append(f'<path class="line" d="{d}" stroke="{color}" '
                             f'stroke-width="{line.width:g}"{dash}>{title}</path>')
            if line.markers or len(coords) == 1:
                for (x, y), (dx, dy) in zip(coords, seg, strict=True):
                    tip = escape(f"{line.label}: {fmt_tick(dx)}, {dy:.4g}" if line.label
                                 else f"{fmt_tick(dx)}, {dy:.4g}")
                    parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}">'
                                 f"<title>{tip}</title></circle>")
    parts.append("</svg></svg>")
    return "".join(parts)


def legend_html(items: Sequence[LegendItem]) -> str:
    """A chart legend: a short line (or dot) in each item's colour and dash, and its label."""
    out = []
    for item in items:
        dash = f' stroke-dasharray="{_attr(item.dash)}"' if item.dash else ""
        mark = (f'<circle cx="11" cy="6" r="4" fill="{_attr(item.color)}"/>' if item.marker
                else f'<line x1="0" y1="6" x2="22" y2="6" stroke="{_attr(item.color)}" '
                     f'stroke-width="2"{dash}/>')
        out.append(f'<span class="key"><svg width="22" height="12" aria-hidden="true">{mark}</svg>'
                   f"{escape(item.label)}</span>")
    return f'<div class="legend">{"".join(out)}</div>'


def chart_figure(title: str, svg: str, legend: Sequence[LegendItem], note: str = "") -> str:
    """A chart with its title above and its legend (and an optional note) below."""
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return (f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{svg}'
            f"{legend_html(legend)}{note_html}</figure>")


# ------------------------------------------------------------------------ the page


def run_color(index: int) -> str:
    """The colour of the ``index``-th run (or sweep) of a report."""
    return PALETTE[index % len(PALETTE)]


def _run_dash(index: int) -> str:
    """Solid for the first ten runs; past the palette, colours repeat with a dash."""
    return "" if index < len(PALETTE) else "10 3"


def run_label(run: RunRecord) -> str:
    """How a run is named in legends: ``1 lru``, ``3 default vus=4``, plus its status when it
    did not complete."""
    label = f"{run.id} {run.variant}"
    if run.sweep_id is not None and run.sweep_level is not None:
        parameter = (run.config.get("sweep") or {}).get("parameter") if isinstance(
            run.config.get("sweep"), dict) else None
        label += f" {parameter or 'level'}={run.sweep_level:g}"
    if run.status != "completed":
        label += f" ({run.status})"
    return label


def _load_text(run: RunRecord) -> str:
    load = run.config.get("load") or {}
    if not isinstance(load, dict) or not load:
        return MISSING
    model = load.get("model", "closed")
    parts = [str(model)]
    if load.get("stages"):
        parts.append(f"{len(load['stages'])} stages")
    elif model == "open" and load.get("rate") is not None:
        parts.append(f"{float(load['rate']):g} req/s")
    elif load.get("vus") is not None:
        parts.append(f"{load['vus']} VU{'' if load['vus'] == 1 else 's'}")
    if load.get("duration") is not None and not load.get("stages"):
        parts.append(f"{float(load['duration']):g} s")
    if load.get("warmup"):
        parts.append(f"warm-up {float(load['warmup']):g} s")
    workers = load.get("workers")
    note = run.config.get("generator_workers_note")
    if note:
        parts.append(f"{workers} generator worker{'' if workers == 1 else 's'} ({note})")
    elif workers and workers != 1:
        parts.append(f"{workers} generator workers")
    return ", ".join(parts)


def _host_text(host: dict[str, object]) -> str:
    parts = []
    if host.get("cores"):
        parts.append(f"{host['cores']} cores")
    memory = host.get("memory_bytes")
    if isinstance(memory, int | float) and memory:
        parts.append(f"{memory / 1024**3:.1f} GiB")
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if host.get("platform"):
        parts.append(str(host["platform"]))
    return ", ".join(parts) or MISSING


def _utc(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_s))


def _status_html(run: RunRecord) -> str:
    cls = {"completed": "good", "failed": "bad", "aborted": "warn"}.get(run.status, "info")
    out = f'<span class="status {cls}">{escape(run.status)}</span>'
    if run.summary is not None and run.summary.generator_bound:
        out += ' <span class="status warn">gen-bound</span>'
    return out


def _header(data: ReportData) -> str:
    runs = data.runs
    experiments: dict[str, str] = {}
    for run in runs:
        experiments.setdefault(run.experiment, run.title)
    for entry in data.sweeps:
        experiments.setdefault(entry.experiment, "")
    names = ", ".join(experiments) or "no runs"
    hosts = list(dict.fromkeys(_host_text(run.host) for run in runs))
    versions = list(dict.fromkeys(run.lab_version or MISSING for run in runs))
    generated = data.generated_at or time.time()
    facts = [
        ("experiment" + ("s" if len(experiments) > 1 else ""),
         "; ".join(f"{name} — {title}" if title else name for name, title in experiments.items())),
        ("runs", ", ".join(str(run.id) for run in runs)),
        ("host" + ("s" if len(hosts) > 1 else ""), "; ".join(hosts) or MISSING),
        ("lab version", f"{', '.join(versions)} (recorded); {__version__} (this report)"),
        ("generated", _utc(generated) + (f" from {data.source}" if data.source else "")),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    return (f"<header><h1>Scalability Lab report: {escape(names)}</h1>"
            f'<table class="facts">{rows}</table></header>')


def _runs_section(data: ReportData) -> str:
    with_reason = any(run.reason for run in data.runs)
    rows = []
    for i, run in enumerate(data.runs):
        swatch = (f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
                  f'rx="3" fill="{_attr(run_color(i))}"/></svg>')
        reason = escape(run.reason or "")
        rows.append(
            f'<tr class="{"" if run.status == "completed" else "not-completed"}">'
            f"<td class=\"num\">{swatch} {run.id}</td><td>{escape(run.experiment)}</td>"
            f"<td>{escape(run.variant)}</td><td>{_status_html(run)}</td>"
            f'<td class="nowrap">{escape(run.started_at.replace("T", " ")[:19])}</td>'
            f'<td class="num">{escape(fmt_seconds(run.duration_s))}</td>'
            f"<td>{escape(_load_text(run))}</td>"
            + (f'<td class="reason">{reason}</td>' if with_reason else "") + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("id", "experiment", "variant", "status", "started (UTC)", "duration s", "load",
                    *(["reason"] if with_reason else [])))
    return ('<section><h2>Runs</h2><div class="table-wrap"><table class="runs">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def _comparison_section(data: ReportData) -> str:
    runs = data.runs
    parts = ['<section><h2>Comparison</h2>',
             '<p class="lead">The same figures as <code>lab compare</code>: goodput, latency of '
             "successful requests, errors, dropped requests, the target's CPU-seconds per 1,000 "
             "requests and peak RSS; under each figure its change against the first run "
             '(<span class="good">better</span> / <span class="bad">worse</span>).</p>',
             rich_table_html(comparison_table(runs), "compare")]
    extra = target_table(runs)
    if extra is not None:
        parts.append(rich_table_html(extra, "target"))
    for run in runs:
        if data.stages.get(run.id):
            parts.append(rich_table_html(stages_table(run, data.stages[run.id]), "stages"))
    parts.append("</section>")
    return "".join(parts)


def _warmup_shade(runs: Sequence[RunRecord]) -> tuple[float, float, str] | None:
    warmups = {float((run.config.get("load") or {}).get("warmup") or 0.0) for run in runs}
    if len(warmups) == 1:
        w = math.ceil(warmups.pop() - 1e-9)
        if w > 0:
            return (0.0, float(w), "warm-up")
    return None


def _series_section(data: ReportData) -> str:
    runs = data.runs
    throughput: list[Line] = []
    errors: list[Line] = []
    latency: list[Line] = []
    cpu: list[Line] = []
    rss: list[Line] = []
    legend: list[LegendItem] = []
    any_errors = False
    t_max = 0.0
    for i, run in enumerate(runs):
        color, dash, label = run_color(i), _run_dash(i), run_label(run)
        legend.append(LegendItem(label, color, dash))
        live = [iv for iv in data.intervals.get(run.id, []) if iv.duration_s > 0]
        # Each interval's figure is plotted at its middle.
        ends = [iv.t_s + iv.duration_s / 2 for iv in live]
        t_max = max([t_max, *(iv.t_s + iv.duration_s for iv in live)])
        throughput.append(Line([(e, iv.ok / iv.duration_s) for e, iv in zip(ends, live, strict=True)],
                               color, label, dash=dash))
        if any(iv.errors for iv in live):
            any_errors = True
            errors.append(Line([(e, iv.errors / iv.duration_s) for e, iv in zip(ends, live, strict=True)],
                               color, f"{label} errors", width=1.5, dash="2 3"))
        for key, width, pdash in (("p50_ms", 1.5, "2 3"), ("p99_ms", 1.5, "7 4"), ("p95_ms", 2.5, dash)):
            latency.append(Line([(e, getattr(iv, key) if iv.ok else None)
                                 for e, iv in zip(ends, live, strict=True)],
                                color, f"{label} {key[:3]}", width=width, dash=pdash))
        res = data.target_resources.get(run.id, [])
        if res:
            t_max = max(t_max, max(r.t_s for r in res))
        cpu.append(Line([(r.t_s, r.cpu_percent) for r in res], color, label, dash=dash))
        rss.append(Line([(r.t_s, r.rss_bytes / MIB) for r in res], color, label, dash=dash))
    shade = _warmup_shade(runs)
    x_range = (0.0, t_max) if t_max > 0 else None
    x_label = "seconds after the load began"
    common = {"x_label": x_label, "x_range": x_range, "shade": shade}

    figures = []
    tp_lines = throughput + errors
    tp_legend = legend + ([LegendItem("dotted: errors/s", "#57606a", "2 3")] if any_errors else [])
    figures.append(chart_figure(
        "Throughput", svg_chart(tp_lines, y_label="ok req/s", log_y=should_log(throughput), **common),
        tp_legend, "successful requests per second (goodput), each interval at its middle"))
    p95_lines = [line for line in latency if line.label.endswith("p95")]
    figures.append(chart_figure(
        "Latency", svg_chart(latency, y_label="ms", log_y=should_log(p95_lines), **common),
        legend + [LegendItem("p95 solid · p99 dashed · p50 dotted", "#57606a")],
        "percentiles of successful requests in each interval"))
    figures.append(chart_figure(
        "Target CPU", svg_chart(cpu, y_label="% of one core", **common), legend,
        "the target's whole process tree"))
    figures.append(chart_figure(
        "Target RSS", svg_chart(rss, y_label="MiB", **common), legend,
        "resident memory of the target's whole process tree"))
    note = ""
    if shade is not None:
        note = ('<p class="note">The grey band is the warm-up, which the summaries leave out.</p>')
    return ('<section><h2>Over time</h2><div class="charts">' + "".join(figures) + "</div>"
            + note + "</section>")


# ------------------------------------------------------------------------ sweeps


def _fmt_num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _pm(value: float, stderr: float | None, fixed: bool = False) -> str:
    if fixed:
        return f"{_fmt_num(value)} (fixed)"
    return _fmt_num(value) + (f" ± {_fmt_num(stderr, 2)}" if stderr is not None else "")


def _x_max_text(fit: FitResult) -> str:
    if fit.x_max is None:
        return "unbounded"
    text = fmt_rate(fit.x_max)
    return f"→ {text} (asymptote)" if fit.x_max_kind == "asymptote" else text


def _fits_table(entries: Sequence[tuple[int, SweepEntry]]) -> str:
    rows = []
    for i, entry in entries:
        a = entry.analysis
        swatch = (f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
                  f'rx="3" fill="{_attr(run_color(i))}"/></svg>')
        name = f"{swatch} {escape(entry.variant)} <span class=\"dim\">(sweep {entry.id})</span>"
        fits = [fit for fit in (a.usl, a.amdahl) if fit is not None]
        if not fits:
            why = a.fit_note or "no fit"
            if a.slo_p99_ms is not None:
                cap = ("no level met the SLO" if a.capacity_rps is None
                       else f"capacity at the SLO: {fmt_rate(a.capacity_rps)} req/s")
                why = f"{cap} (p99 < {a.slo_p99_ms:g} ms, ≥ 99 % of the offered rate achieved)"
            rows.append(f'<tr><td class="variant">{name}</td><td colspan="8" class="verdict">'
                        f"{escape(why)}</td></tr>")
            continue
        for fit in fits:
            rows.append(
                f'<tr><td class="variant">{name}</td><td>{escape(fit.model)}</td>'
                f'<td class="num">{escape(_pm(fit.lambda_, fit.lambda_stderr))}</td>'
                f'<td class="num">{escape(_pm(fit.sigma, fit.sigma_stderr))}</td>'
                f'<td class="num">{escape(_pm(fit.kappa, fit.kappa_stderr, fit.model == "amdahl"))}</td>'
                f'<td class="num">{fit.r2:.3f}</td>'
                f'<td class="num">{escape(_fmt_num(fit.n_star))}</td>'
                f'<td class="num">{escape(_x_max_text(fit))}</td>'
                f'<td class="verdict">{escape(fit.verdict)}</td></tr>')
    head = "".join(f'<th class="{c}">{h}</th>' for h, c in (
        ("variant", ""), ("model", ""), ("λ req/s", "num"), ("σ", "num"), ("κ", "num"),
        ("R²", "num"), ("N*", "num"), ("X(N*) req/s", "num"), ("verdict", "")))
    return ('<div class="table-wrap"><table class="fits"><caption>Fits: X(N) = λN / (1 + σ(N−1) + '
            f"κN(N−1))</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            '<p class="note">λ: throughput at N = 1; σ: contention (the serialised share); κ: '
            "coherency (the cost of keeping shared state consistent); N*: the concurrency of peak "
            "throughput X(N*); ± standard errors. Amdahl's law is the USL with κ = 0.</p></div>")


def _usl_curve(fit: FitResult, lo: float, hi: float) -> list[tuple[float, float | None]]:
    steps = 120
    return [(lo + (hi - lo) * k / steps, float(fit.predict(lo + (hi - lo) * k / steps)))
            for k in range(steps + 1)]


def _sweep_group(parameter: str, entries: Sequence[tuple[int, SweepEntry]]) -> str:
    from lab.analysis.sweep import fit_levels

    rate_sweep = all(e.analysis.slo_p99_ms is not None for _i, e in entries)
    figures: list[str] = []
    legend: list[LegendItem] = []
    if rate_sweep:
        p99: list[Line] = []
        achieved: list[Line] = []
        marks: list[Mark] = []
        for i, e in entries:
            color = run_color(i)
            done = [lv for lv in fit_levels(e.analysis.levels) if lv.offered_rps]
            legend.append(LegendItem(f"{e.variant} (sweep {e.id})", color, marker=True))
            p99.append(Line([(lv.offered_rps or 0.0, lv.p99_ms) for lv in done], color,
                            f"{e.variant} p99 ms", markers=True))
            achieved.append(Line([(lv.offered_rps or 0.0, lv.throughput_rps) for lv in done], color,
                                 f"{e.variant} ok req/s", markers=True))
            if e.analysis.capacity_rps is not None:
                marks.append(Mark(e.analysis.capacity_rps,
                                  f"capacity {fmt_rate(e.analysis.capacity_rps)}", color))
        slo = entries[0][1].analysis.slo_p99_ms or 0.0
        figures.append(chart_figure(
            "p99 latency against the offered rate",
            svg_chart(p99, x_label="offered req/s", y_label="p99 ms", log_y=should_log(p99),
                      y_from_zero=True, marks=[Mark(slo, f"SLO p99 < {slo:g} ms", "#57606a", "y")]),
            legend))
        figures.append(chart_figure(
            "Achieved throughput against the offered rate",
            svg_chart(achieved, x_label="offered req/s", y_label="ok req/s", marks=marks), legend))
    else:
        points: list[Line] = []
        curves: list[Line] = []
        latency: list[Line] = []
        marks = []
        hi_all = 0.0
        for _i, e in entries:
            done = fit_levels(e.analysis.levels)
            if done:
                hi_all = max(hi_all, max(lv.level for lv in done))
            fit = e.analysis.usl
            if fit is not None and fit.n_star is not None:
                hi_all = max(hi_all, min(fit.n_star * 1.2, hi_all * 4))
        for i, e in entries:
            color = run_color(i)
            done = fit_levels(e.analysis.levels)
            name = f"{e.variant} (sweep {e.id})"
            legend.append(LegendItem(f"{name} measured", color, marker=True))
            points.append(Line([(lv.level, lv.throughput_rps) for lv in done], color,
                               f"{name} X(N)", markers=True, connect=False))
            latency.append(Line([(lv.level, lv.latency_mean_ms) for lv in done], color,
                                f"{name} R(N) mean ms", markers=True))
            latency.append(Line([(lv.level, lv.p99_ms) for lv in done], color,
                                f"{name} p99 ms", width=1.5, dash="7 4"))
            fit = e.analysis.usl
            if fit is not None and done:
                lo = max(1.0, min(lv.level for lv in done))  # the model means nothing below N = 1
                curves.append(Line(_usl_curve(fit, lo, max(hi_all, lo + 1)), color,
                                   f"{name} USL fit", width=2))
                legend.append(LegendItem(f"{name} USL fit", color))
                if fit.n_star is not None:
                    marks.append(Mark(fit.n_star, f"N* ≈ {fit.n_star:.3g}", color))
        x_range = (0.0, hi_all) if hi_all > 0 else None
        figures.append(chart_figure(
            f"Throughput X(N) against {parameter}",
            svg_chart(curves + points, x_label=parameter, y_label="ok req/s", x_range=x_range,
                      marks=marks, empty_text="no completed levels"),
            legend, "dots: measured; line: the fitted Universal Scalability Law; dashed: N*, "
                    "the concurrency of peak throughput"))
        figures.append(chart_figure(
            f"Latency R(N) against {parameter}",
            svg_chart(latency, x_label=parameter, y_label="ms", x_range=x_range,
                      log_y=should_log(latency[::2])),
            [item for item in legend if item.marker]
            + [LegendItem("mean solid · p99 dashed", "#57606a")]))
    return f'<div class="charts">{"".join(figures)}</div>'


def _sweeps_section(data: ReportData) -> str:
    if not data.sweeps:
        return ""
    from lab.report.sweep_report import levels_table

    # A sweep takes the colour of its first run in the report, so the sections agree.
    first_run: dict[int, int] = {}
    for i, run in enumerate(data.runs):
        if run.sweep_id is not None:
            first_run.setdefault(run.sweep_id, i)
    groups: dict[str, list[tuple[int, SweepEntry]]] = {}
    for k, entry in enumerate(data.sweeps):
        i = first_run.get(entry.id, len(data.runs) + k)
        groups.setdefault(entry.analysis.parameter, []).append((i, entry))
    parts = ["<section><h2>Sweeps</h2>",
             '<p class="lead">Every level of each sweep a run above belongs to; variants overlaid.</p>']
    for parameter, entries in groups.items():
        parts.append(f"<h3>Sweep of {escape(parameter)}</h3>")
        parts.append(_sweep_group(parameter, entries))
        parts.append(_fits_table(entries))
        for _i, entry in entries:
            parts.append(rich_table_html(levels_table(f"{entry.variant} (sweep {entry.id})",
                                                      entry.analysis), "levels"))
    parts.append("</section>")
    return "".join(parts)


def _errors_section(data: ReportData) -> str:
    rows = []
    for run in data.runs:
        for err in data.errors.get(run.id, []):
            rows.append(f'<tr><td class="num">{run.id}</td><td>{escape(run.variant)}</td>'
                        f"<td>{escape(err.error_class)}</td>"
                        f'<td class="num">{"" if err.status is None else err.status}</td>'
                        f'<td class="num">{err.count:,}</td>'
                        f'<td class="reason">{escape(err.message)}</td></tr>')
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("run", "variant", "class", "status", "count", "sample"))
    return ('<section><h2>Errors</h2><div class="table-wrap"><table class="errors">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #1b1f24;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 10px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.lead, .note { color: #57606a; margin: 4px 0 8px; }
.note { font-size: 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 6px 0; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; text-align: left; }
thead th { border-bottom: 2px solid #d0d7de; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.facts th { color: #57606a; font-weight: 500; padding-left: 0; white-space: nowrap; }
table.facts td, table.facts th { border: none; padding-top: 1px; padding-bottom: 1px; }
.table-wrap { overflow-x: auto; }
tr.b td { font-weight: 600; }
tr.not-completed td { background: #fff8f0; }
td.reason { max-width: 420px; overflow-wrap: anywhere; }
td.verdict { min-width: 260px; }
td.variant, td.nowrap { white-space: nowrap; }
.good { color: #116b2f; }
.bad { color: #a40e26; }
.warn { color: #7d4e00; }
.info { color: #0b5cad; }
.dim { color: #6e7781; }
.b { font-weight: 600; }
.i { font-style: italic; }
.status { font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px 24px; }
figure.chart { margin: 0; break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { font-weight: 600; margin-bottom: 2px; }
svg.plot { width: 100%; height: auto; display: block; }
svg.plot text { font-family: inherit; fill: #424a53; }
svg.plot .tick { font-size: 11px; }
svg.plot .label { font-size: 12px; fill: #24292f; }
svg.plot .empty { font-size: 14px; fill: #8c959f; }
svg.plot .area { fill: %PLOT_BG%; stroke: none; }
svg.plot .grid { stroke: #e6e9ed; stroke-width: 1; }
svg.plot .axis { stroke: #8c959f; stroke-width: 1; }
svg.plot .shade { fill: #eceef1; }
svg.plot .shade-label { font-size: 11px; fill: #6e7781; }
svg.plot .mark { stroke-width: 1.5; stroke-dasharray: 5 4; }
svg.plot .mark-label { font-size: 11.5px; font-weight: 600; }
svg.plot .line { fill: none; stroke-linejoin: round; stroke-linecap: round; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px; margin-top: 2px; }
.legend .key { display: inline-flex; align-items: center; gap: 5px; }
footer { margin-top: 32px; color: #6e7781; font-size: 12px; }
@media print {
  main { max-width: none; padding: 0; }
  body { font-size: 11px; }
  h2 { break-after: avoid; }
  section, table { break-inside: auto; }
  tr, figure.chart { break-inside: avoid; }
  .charts { grid-template-columns: 1fr 1fr; }
  .table-wrap { overflow: visible; }
}
@page { margin: 12mm; }
"""


def render_report(data: ReportData) -> str:
    """The whole report as one HTML document (UTF-8 text).

    Sections: the header (experiments, run ids, host, lab version, when and from what it
    was generated), the runs (status and the reason of a failed or aborted one), the
    comparison table with deltas against the first run (and the figures reported by the
    target, and per-stage tables), charts over time of throughput (req/s), latency
    (p50/p95/p99 ms), target CPU (% of one core) and target RSS (MiB), one line per run;
    then, when any run is a level of a sweep, the sweep curves (X(N) measured, the USL
    fit, N*; latency R(N)) with the fits and the level tables; then errors, if any.
    """
    names = ", ".join(dict.fromkeys(run.experiment for run in data.runs)) or "no runs"
    ids = ", ".join(str(run.id) for run in data.runs)
    body = [_header(data), _runs_section(data)]
    if data.runs:
        body += [_comparison_section(data), _series_section(data)]
    body += [_sweeps_section(data), _errors_section(data)]
    generated = _utc(data.generated_at or time.time())
    command = "lab report " + " ".join(str(run.id) for run in data.runs)
    footer = (f"<footer>Scalability Lab {escape(__version__)} · <code>{escape(command)}</code>"
              f" · {escape(generated)} · self-contained: no scripts, fonts or network</footer>")
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(f'lab report: {names} (runs {ids})')}</title>"
            f"<style>{_CSS.replace('%PLOT_BG%', PLOT_BG)}</style></head><body><main>"
            + "".join(body) + footer + "</main></body></html>\n")

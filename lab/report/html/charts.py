"""A small SVG chart kit for the HTML report: lines and marks on linear or log axes with
nice ticks, legends and figures. No script, no font, no external reference.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    pass


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
MARK_LABEL_ROWS = 4
"""Rows the labels of vertical marks may take, from the bottom of the plot up: a label that
would overlap one already drawn goes one row up (autoscaler decisions a second apart);
when every row is taken there, the mark is drawn without a label (its tooltip stays)."""
MARK_LABEL_ROW_H = 14
"""Px between two rows of mark labels."""
MARK_CHAR_W = 7.0
"""Estimated width of one character of a mark label (11.5 px bold), px: enough for digits
and arrows in the fonts Chromium and Firefox pick for ``system-ui``."""




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
    title: str = ""
    """Tooltip of the line (empty: none)."""


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


def attr(value: str) -> str:
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


def integer_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Whole-number ticks covering ``[lo, hi]`` (a count of replicas): a step of 1 or a
    whole nice step, never a fraction."""
    if hi <= lo:
        hi = lo + 1
    step = max(1, math.ceil(_nice_step(hi - lo, count)))
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    return [float(v) for v in range(start, stop + 1, step)]


def _label_row(rows: list[list[tuple[float, float]]], a: float, b: float) -> int | None:
    """The lowest row in which ``[a, b]`` (px) overlaps no label, taken; None when all are."""
    for i, taken in enumerate(rows):
        if all(b + 3 < lo or a - 3 > hi for lo, hi in taken):
            taken.append((a, b))
            return i
    return None


def svg_chart(lines: Sequence[Line], *, x_label: str, y_label: str, log_y: bool = False,
              y_from_zero: bool = True, integer_y: bool = False,
              x_range: tuple[float, float] | None = None,
              marks: Sequence[Mark] = (), shade: tuple[float, float, str] | None = None,
              empty_text: str = "no data", width: int = CHART_W, height: int = CHART_H) -> str:
    """A line chart as an inline ``<svg>`` element (no scripts, no external references).

    Args:
        lines: what to draw, in order (later lines on top).
        x_label: the x axis's label, with its unit.
        y_label: the y axis's label, with its unit.
        log_y: a logarithmic y axis (values ≤ 0 are left out).
        y_from_zero: a linear y axis starts at 0 (else at the smallest value).
        integer_y: whole-number ticks on a linear y axis (counts of replicas).
        x_range: the x axis's data range; None fits the data (and the marks).
        marks: reference lines (N*, an SLO, an autoscaler's decision), labelled; labels of
            vertical marks that would overlap stack upwards (``MARK_LABEL_ROWS``).
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
             f'aria-label="{attr(y_label)} against {attr(x_label)}">']
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
        ticks = integer_ticks if integer_y else nice_ticks
        y_ticks = ticks(0.0 if y_from_zero and min(ys) >= 0 else min(ys), max(ys), 5)
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

    label_rows: list[list[tuple[float, float]]] = [[] for _ in range(MARK_LABEL_ROWS)]
    for mark in marks:
        tip = f"<title>{escape(mark.title)}</title>" if mark.title else ""
        if mark.axis == "x":
            x = fx(mark.value)
            parts.append(f'<line class="mark" x1="{x:.1f}" y1="{py1}" x2="{x:.1f}" y2="{py0}" '
                         f'stroke="{attr(mark.color)}"' + (f">{tip}</line>" if tip else "/>"))
            anchor = "end" if x > (px0 + px1) / 2 else "start"
            dx = -5 if anchor == "end" else 5
            w = len(mark.label) * MARK_CHAR_W
            a, b = (x + dx - w, x + dx) if anchor == "end" else (x + dx, x + dx + w)
            row = _label_row(label_rows, a, b)
            if row is not None:
                parts.append(f'<text class="mark-label" x="{x + dx:.1f}" '
                             f'y="{py0 - 8 - row * MARK_LABEL_ROW_H}" text-anchor="{anchor}" '
                             f'fill="{attr(mark.color)}">{escape(mark.label)}{tip}</text>')
        elif fy.inside(mark.value):
            y = fy(mark.value)
            parts.append(f'<line class="mark" x1="{px0}" y1="{y:.1f}" x2="{px1}" y2="{y:.1f}" '
                         f'stroke="{attr(mark.color)}"' + (f">{tip}</line>" if tip else "/>"))
            parts.append(f'<text class="mark-label" x="{px1 - 4}" y="{y - 5:.1f}" text-anchor="end" '
                         f'fill="{attr(mark.color)}">{escape(mark.label)}</text>')

    for mark in outside:
        # Beyond the x range (N* far past the last level): said at the edge it lies past.
        right_side = mark.value > x_hi
        x, anchor = (px1 - 4, "end") if right_side else (px0 + 4, "start")
        text = f"{mark.label} →" if right_side else f"← {mark.label}"
        parts.append(f'<text class="mark-label" x="{x}" y="{py1 + 14}" text-anchor="{anchor}" '
                     f'fill="{attr(mark.color)}">{escape(text)}</text>')

    # A nested <svg> clips what is drawn to the plot frame, whatever the data.
    parts.append(f'<svg class="clip" x="{px0}" y="{py1}" width="{px1 - px0}" height="{py0 - py1}" '
                 f'viewBox="{px0} {py1} {px1 - px0} {py0 - py1}" overflow="hidden">')
    for line in lines:
        color = attr(line.color)
        title = f"<title>{escape(line.label)}</title>" if line.label else ""
        for seg in _segments(line.points, fy):
            coords = [(fx(x), fy(y)) for x, y in seg]
            if line.connect and len(coords) > 1:
                d = "M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in coords)
                dash = f' stroke-dasharray="{attr(line.dash)}"' if line.dash else ""
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
        dash = f' stroke-dasharray="{attr(item.dash)}"' if item.dash else ""
        mark = (f'<circle cx="11" cy="6" r="4" fill="{attr(item.color)}"/>' if item.marker
                else f'<line x1="0" y1="6" x2="22" y2="6" stroke="{attr(item.color)}" '
                     f'stroke-width="2"{dash}/>')
        out.append(f'<span class="key"><svg width="22" height="12" aria-hidden="true">{mark}</svg>'
                   f"{escape(item.label)}</span>")
    return f'<div class="legend">{"".join(out)}</div>'


def chart_figure(title: str, svg: str, legend: Sequence[LegendItem], note: str = "") -> str:
    """A chart with its title above and its legend (and an optional note) below."""
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return (f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{svg}'
            f"{legend_html(legend)}{note_html}</figure>")


def run_color(index: int) -> str:
    """The colour of the ``index``-th run (or sweep) of a report."""
    return PALETTE[index % len(PALETTE)]


def run_dash(index: int) -> str:
    """Solid for the first ten runs; past the palette, colours repeat with a dash."""
    return "" if index < len(PALETTE) else "10 3"

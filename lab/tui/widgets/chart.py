"""A time-series chart: a PlotextPlot that draws whatever ``ChartData`` its parent sets.

Attributes down: a screen builds an immutable ``ChartData`` and assigns it to
``chart.data``; the chart redraws. Colours are Textual theme variables (``success``,
``error``, ``primary``…), resolved when drawing, so the lines stay readable on dark and
light themes and follow a theme change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import App
from textual.color import Color
from textual.markup import escape
from textual.reactive import reactive
from textual_plotext import PlotextPlot

PALETTE = ("primary", "warning", "success", "error", "accent", "secondary")
"""Theme colours for series that have no meaning of their own (one per compared run)."""


def theme_rgb(app: App[object], name: str) -> tuple[int, int, int]:
    """A Textual theme colour (``primary``, ``error``…) as RGB for plotext; the
    foreground when the theme lacks it."""
    value = app.theme_variables.get(name) or app.theme_variables.get("foreground", "#888888")
    r, g, b = Color.parse(value).rgb
    return (r, g, b)


@dataclass(frozen=True)
class Series:
    """One line of a chart."""

    label: str
    """Legend text."""
    x: Sequence[float]
    """Seconds after the load began."""
    y: Sequence[float | None]
    """Values; None leaves a gap (an interval without a successful request)."""
    color: str
    """A Textual theme variable name, e.g. ``success``."""


@dataclass(frozen=True)
class ChartData:
    """What a chart shows: a title, its lines, and vertical markers."""

    title: str
    series: tuple[Series, ...] = ()
    markers: tuple[tuple[float, str], ...] = ()
    """``(x, theme colour)`` of each vertical marker (load changes)."""
    x_max: float | None = None
    """Right end of the x axis (the planned run length), so the line grows into it."""
    whole_numbers: bool = False
    """Label the y axis with whole numbers only (counts, such as replicas)."""
    marker_legend: tuple[tuple[str, str], ...] = ()
    """``(label, theme colour)`` of the kinds of marker to name in the legend (e.g. the
    autoscaler's scale events)."""


class TimeChart(PlotextPlot):
    """A line chart of series over time, with vertical markers.

    The title and the legend share the top border line (coloured like the lines), so a
    short chart keeps its rows for data: a legend inside the plot would hide the start
    of every line.
    """

    DEFAULT_CSS = """
    TimeChart {
        height: 1fr;
        min-height: 4;
        border-top: solid $foreground 20%;
        border-title-align: left;
        border-title-color: $foreground;
    }
    """

    data: reactive[ChartData | None] = reactive(None, always_update=True)
    """Set by the parent; the chart redraws on every assignment (a parent sets it only
    when its data changed)."""
    show_x_labels: reactive[bool] = reactive(True)
    """Whether to label the time axis (charts stacked on one time axis label only the
    lowest)."""

    def on_mount(self) -> None:
        """Draw once mounted and again whenever the app's theme changes."""
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())
        self._draw()

    def watch_data(self) -> None:
        """Redraw with the new data."""
        self._draw()

    def watch_show_x_labels(self) -> None:
        """Redraw with or without time labels."""
        self._draw()

    @staticmethod
    def legend(data: ChartData) -> str:
        """The title and each series' label in its colour, as Textual markup."""
        items = [f"[${s.color}]━ {escape(s.label)}[/]" for s in data.series if s.label != data.title]
        items += [f"[${color}]┃ {escape(label)}[/]" for label, color in data.marker_legend]
        return " ".join([f"[b]{escape(data.title)}[/b]", *items])

    def _color(self, name: str) -> tuple[int, int, int]:
        return theme_rgb(self.app, name)

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        data = self.data
        if data is None:
            self.border_title = None
            self.refresh()
            return
        self.border_title = self.legend(data)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        if not self.show_x_labels:
            plt.xfrequency(0)
        top = 0.0
        right = data.x_max or 0.0
        for series in data.series:
            points = [(x, y) for x, y in zip(series.x, series.y, strict=False) if y is not None]
            if not points:
                continue
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            top = max(top, max(ys))
            right = max(right, max(xs))
            plt.plot(xs, ys, color=self._color(series.color), marker="braille")
        for x, color in data.markers:
            plt.vertical_line(x, color=self._color(color))
        # A fixed origin: a chart that rescales its floor to the data exaggerates noise.
        plt.ylim(0, top * 1.1 if top > 0 else 1)
        if data.whole_numbers:
            # Labels land on the rows their values are drawn on; more labels than rows
            # would put one on another's row (a "2" beside a line at 3), so a short
            # chart labels only the bottom and the top.
            high = max(1, math.ceil(top))
            rows = self.content_size.height - (2 if self.show_x_labels else 1)
            ticks = list(range(0, high + 1)) if rows > 2 * high else [0, high]
            # As wide as plotext's own labels of the charts above ("231.0"), so the plot
            # starts in about the same column and the time axes line up.
            plt.yticks(ticks, [f"{t:>5}" for t in ticks])
        plt.xlim(0, right if right > 0 else 1)
        self.refresh()

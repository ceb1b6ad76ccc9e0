"""The sweep chart: measured X(N) as points, the fitted USL curve as a line and N* as a
vertical line, one colour and one point marker (●, ■, ▲, ◆) per variant; or p99 against the
offered rate with the SLO for an arrival-rate sweep. The legend is in the border title, so
nothing inside the plot hides a point."""

from __future__ import annotations

from collections.abc import Sequence

from textual.markup import escape
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from lab.analysis.sweep import SweepAnalysis, plot_data
from lab.report.sweep_report import marker
from lab.tui.widgets.chart import PALETTE, theme_rgb


class SweepChart(PlotextPlot):
    """Plots the sweeps a parent assigns to ``sweeps``."""

    DEFAULT_CSS = """
    SweepChart {
        height: 1fr;
        min-height: 12;
        border-top: solid $foreground 20%;
        border-title-align: left;
    }
    """

    sweeps: reactive[tuple[tuple[str, SweepAnalysis], ...]] = reactive((), always_update=True)
    """``(variant, analysis)`` pairs, overlaid in palette order."""

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())
        self._draw()

    def watch_sweeps(self) -> None:
        self._draw()

    def _color(self, name: str) -> tuple[int, int, int]:
        return theme_rgb(self.app, name)

    @staticmethod
    def is_rate_sweep(sweeps: Sequence[tuple[str, SweepAnalysis]]) -> bool:
        return bool(sweeps) and all(a.slo_p99_ms is not None for _, a in sweeps)

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        sweeps = self.sweeps
        if not sweeps:
            self.border_title = None
            self.refresh()
            return
        rate = self.is_rate_sweep(sweeps)
        legend = []
        points = []
        for i, (variant, a) in enumerate(sweeps):
            color = PALETTE[i % len(PALETTE)]
            rgb = self._color(color)
            data = plot_data(a, samples=80)
            xs, ys = [p[0] for p in data.points], [p[1] for p in data.points]
            if xs:
                points.append((xs, ys, rgb, marker(i)))
            if rate:
                if xs:
                    plt.plot(xs, ys, color=rgb, marker="braille")
                legend.append(f"[${color}]{marker(i)} {escape(variant)} p99[/]")
                continue
            label = f"[${color}]{marker(i)} {escape(variant)}"
            if data.curve:
                plt.plot([p[0] for p in data.curve], [p[1] for p in data.curve], color=rgb,
                         marker="braille")
            if data.n_star is not None:
                plt.vertical_line(data.n_star, color=rgb)
                label += f" N*≈{data.n_star:.3g}"
            legend.append(label + "[/]")
        # The measured points last, every variant's after every line: plotext draws in call
        # order, and a curve through a point's cell would hide the point otherwise.
        for xs, ys, rgb, mark in points:
            plt.scatter(xs, ys, color=rgb, marker=mark)
        if rate:
            slo = next(a.slo_p99_ms for _, a in sweeps)
            plt.horizontal_line(slo, color=self._color("error"))
            title = f"[b]p99 ms vs offered req/s[/b] [$error]━ SLO {slo:g} ms[/]"
        else:
            title = f"[b]X(N) req/s vs {escape(sweeps[0][1].parameter)}[/b] · ━ USL fit · │ N*"
        self.border_title = " ".join([title, *legend])
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        self.refresh()

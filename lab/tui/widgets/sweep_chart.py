"""The sweep chart: measured X(N) as points, the fitted USL curve as a line and N* as a
vertical line, one colour per variant; or p99 against the offered rate with the SLO
for an arrival-rate sweep."""

from __future__ import annotations

from collections.abc import Sequence

from textual.color import Color
from textual.markup import escape
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from lab.analysis.sweep import SweepAnalysis
from lab.tui.widgets.chart import PALETTE


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
        value = self.app.theme_variables.get(name) or self.app.theme_variables.get("foreground", "#888888")
        r, g, b = Color.parse(value).rgb
        return (r, g, b)

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
        for i, (variant, a) in enumerate(sweeps):
            color = PALETTE[i % len(PALETTE)]
            rgb = self._color(color)
            done = [lv for lv in a.levels if lv.status == "completed"]
            if rate:
                pts = [(lv.offered_rps, lv.p99_ms) for lv in done
                       if lv.offered_rps is not None and lv.p99_ms is not None]
                if pts:
                    plt.plot([p[0] for p in pts], [p[1] for p in pts], color=rgb, marker="braille")
                    plt.scatter([p[0] for p in pts], [p[1] for p in pts], color=rgb, marker="●")
                legend.append(f"[${color}]● {escape(variant)} p99[/]")
                continue
            pts = [(lv.level, lv.throughput_rps) for lv in done]
            if pts:
                plt.scatter([p[0] for p in pts], [p[1] for p in pts], color=rgb, marker="●")
            label = f"[${color}]● {escape(variant)}"
            if a.usl is not None and pts:
                hi = max(p[0] for p in pts)
                if a.usl.n_star is not None:
                    hi = max(hi, min(a.usl.n_star * 1.2, hi * 4))
                xs = [1 + (hi - 1) * k / 80 for k in range(81)]
                plt.plot(xs, [float(a.usl.predict(x)) for x in xs], color=rgb, marker="braille")
                if a.usl.n_star is not None and a.usl.n_star <= hi:
                    plt.vertical_line(a.usl.n_star, color=rgb)
                    label += f" N*≈{a.usl.n_star:.3g}"
            legend.append(label + "[/]")
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

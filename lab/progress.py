"""Headless progress: one line per second on stderr, a listener on the engine's events."""

from __future__ import annotations

import sys
from typing import TextIO

from lab.events import (
    CLOCK_OFFSET_LIMIT_MS,
    Event,
    GeneratorBound,
    GeneratorsReady,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    ServicesReady,
    TargetReady,
)
from lab.report.json_report import client_label


class ProgressPrinter:
    """Prints a line per interval: elapsed, load level, req/s, p50/p95/p99, errors, CPU.

    Args:
        stream: where to write (stderr: progress never mixes with data on stdout).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.variant = ""
        self.total_s = 0.0
        self.model = "closed"
        self.target_cpu: float | None = None
        self.gen_cpu: dict[int | None, float | None] = {}

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            plan = event.plan
            self.variant = plan.variant
            self.total_s = plan.load.total_duration_s
            self.model = plan.load.model
            load = plan.load
            level = (f"{load.vus} VUs" if load.model == "closed" and load.vus else
                     f"{load.rate:g} req/s" if load.rate else f"{len(load.stages)} stages")
            workers = f"{load.workers} generator worker{'s' if load.workers != 1 else ''}"
            if load.cluster:
                workers = f"generator workers on Dask cluster {load.cluster}"
            elif plan.generator_workers_note:
                workers += f" ({plan.generator_workers_note})"
            client = client_label(load.client, load.http2, load.follow_redirects)
            self._say(f"[{plan.variant}] {plan.experiment}: {load.model} model, {level}, "
                      f"{self.total_s:g}s (warm-up {load.warmup:g}s); {client}, {workers}")
        elif isinstance(event, ServicesReady):
            started = ", ".join(f"{name} at {url}" for name, url in event.services.items())
            if started:
                self._say(f"[{self.variant}] services ready: {started}")
            for note in event.notes:
                self._say(f"[{self.variant}] {note}")
        elif isinstance(event, GeneratorsReady):
            if event.source == "dask":
                self._say(f"[{self.variant}] load from: {event.load_from()}, scheduler {event.scheduler}: "
                          + ", ".join(f"worker {g.index} {g.address} on {g.host}" for g in event.generators))
            for g in event.generators:
                if g.clock_off:
                    self._say(f"[{self.variant}] warning: {g.label}: its clock is "
                              f"{g.clock_offset_ms:+.0f} ms "
                              f"off the Dask scheduler's (over {CLOCK_OFFSET_LIMIT_MS:g} ms): its "
                              f"intervals are shifted by as much; sync the clocks (chrony, ntpd)")
        elif isinstance(event, TargetReady):
            self._say(f"[{self.variant}] target ready at {event.url} in {event.startup_s:.1f}s")
        elif isinstance(event, ResourceSample):
            if event.role == "target":
                self.target_cpu = event.cpu_percent
            elif event.role == "generator":
                self.gen_cpu[event.pid] = event.cpu_percent
        elif isinstance(event, LoadChanged) and event.reason == "user":
            self._say(f"[{self.variant}] load set to {event.level:g} at {event.t_s:.1f}s")
        elif isinstance(event, IntervalStats):
            self._interval(event)
        elif isinstance(event, GeneratorBound):
            self._say(f"[{self.variant}] warning at {event.t_s:.0f}s: generator-bound ({event.reason}); "
                      f"results may be limited by the load generator")
        elif isinstance(event, RunFinished):
            s = event.summary
            if s is None:
                figures = "nothing measured"
            else:
                p95 = f"p95 {s.latency_ms.p95:.1f} ms" if s.latency_ms.count else "no successful request"
                figures = f"{s.throughput_rps:.1f} req/s, {p95}, {s.errors} errors"
            why = f" ({event.reason})" if event.reason else ""
            self._say(f"[{self.variant}] {event.status}{why}: {figures}")
            if s is not None and s.generator_bound:
                self._say(f"[{self.variant}] warning: generator-bound ({s.generator_bound_reason});"
                          f" these figures describe the load generator, not the target")
            if s is not None and s.load_not_achieved:
                self._say(f"[{self.variant}] warning: offered load not achieved: "
                          f"{s.load_not_achieved_reason}")

    def _interval(self, iv: IntervalStats) -> None:
        end = iv.t_s + iv.duration_s
        rps = iv.ok / iv.duration_s if iv.duration_s > 0 else 0.0
        level = f"{iv.active_vus} VUs" if self.model == "closed" else f"{iv.target_rate:g}/s"
        if iv.p50_ms is None:
            latency = "no ok response"
        else:
            latency = f"p50/95/99 {_ms(iv.p50_ms)}/{_ms(iv.p95_ms)}/{_ms(iv.p99_ms)} ms"
        cpu = ""
        if self.target_cpu is not None:
            cpu += f" tgt {self.target_cpu:.0f}%"
        gens = [v for v in self.gen_cpu.values() if v is not None]
        if iv.generator_cpu_percent is not None:
            gens = [iv.generator_cpu_percent]  # the workers' own reading of this interval
        if gens:
            # The busiest worker is the one that limits the measurement.
            cpu += f" gen {max(gens):.0f}%"
        extra = f" drop {iv.dropped}" if iv.dropped else ""
        self._say(
            f"[{self.variant}] {end:4.0f}/{self.total_s:g}s {level:>7} {_rate(rps)} req/s  "
            f"{latency}  err {iv.errors}{extra}{' ' + cpu if cpu else ''}"
        )


def _ms(value: float | None) -> str:
    """Three significant figures: 0.52, 4.31, 18.3, 246."""
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _rate(value: float) -> str:
    return f"{value:6.1f}" if value < 1000 else f"{value:6.0f}"

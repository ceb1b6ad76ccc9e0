"""Headless progress: one line per second on stderr, a listener on the engine's events."""

from __future__ import annotations

import sys
from typing import TextIO

from lab.events import (
    Event,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    TargetReady,
)


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
        self.gen_cpu: float | None = None

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
            self._say(f"[{plan.variant}] {plan.experiment}: {load.model} model, {level}, "
                      f"{self.total_s:g}s (warm-up {load.warmup:g}s)")
        elif isinstance(event, TargetReady):
            self._say(f"[{self.variant}] target ready at {event.url} in {event.startup_s:.1f}s")
        elif isinstance(event, ResourceSample):
            if event.role == "target":
                self.target_cpu = event.cpu_percent
            elif event.role == "generator":
                self.gen_cpu = event.cpu_percent
        elif isinstance(event, LoadChanged) and event.reason == "user":
            self._say(f"[{self.variant}] load set to {event.level:g} at {event.t_s:.1f}s")
        elif isinstance(event, IntervalStats):
            self._interval(event)
        elif isinstance(event, RunFinished):
            s = event.summary
            figures = (f"{s.throughput_rps:.1f} req/s, p95 {s.latency_ms.p95:.1f} ms, "
                       f"{s.errors} errors" if s else "nothing measured")
            why = f" ({event.reason})" if event.reason else ""
            self._say(f"[{self.variant}] {event.status}{why}: {figures}")

    def _interval(self, iv: IntervalStats) -> None:
        end = iv.t_s + iv.duration_s
        rps = iv.ok / iv.duration_s if iv.duration_s > 0 else 0.0
        level = f"{iv.active_vus} VUs" if self.model == "closed" else f"{iv.target_rate:g}/s"

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        cpu = ""
        if self.target_cpu is not None:
            cpu += f"  target {self.target_cpu:.0f}%"
        if self.gen_cpu is not None:
            cpu += f"  gen {self.gen_cpu:.0f}%"
        extra = f"  dropped {iv.dropped}" if iv.dropped else ""
        self._say(
            f"[{self.variant}] {end:5.1f}/{self.total_s:g}s  {level:>8}  {rps:7.1f} req/s  "
            f"p50 {ms(iv.p50_ms)}  p95 {ms(iv.p95_ms)}  p99 {ms(iv.p99_ms)} ms  "
            f"err {iv.errors}{extra}{cpu}"
        )

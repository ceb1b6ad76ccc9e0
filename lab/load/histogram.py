"""HDR latency histograms in microseconds, encoded for transport between processes.

Backed by the ``hdrhistogram`` package (HdrHistogram_py); see https://hdrhistogram.github.io/
Three significant digits over 1 µs .. 1 hour.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


class LatencyHistogram:
    """An HDR histogram of latencies recorded in microseconds, read in milliseconds."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record_s(self, seconds: float) -> None:
        """Record one latency given in seconds (clamped to the histogram's range)."""
        us = int(seconds * 1_000_000)
        self._h.record_value(min(max(us, LOWEST_US), HIGHEST_US))

    def record_us(self, us: int, count: int = 1) -> None:
        self._h.record_value(min(max(us, LOWEST_US), HIGHEST_US), count)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, pct: float) -> float:
        """The value at percentile ``pct`` (0..100) in ms; 0.0 when empty."""
        if not self.count:
            return 0.0
        return self._h.get_value_at_percentile(pct) / 1000.0

    def max_ms(self) -> float:
        return self._h.get_max_value() / 1000.0 if self.count else 0.0

    def mean_ms(self) -> float:
        return self._h.get_mean_value() / 1000.0 if self.count else 0.0

    def merge(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def merge_encoded(self, blob: bytes) -> None:
        """Add an encoded histogram (from ``encode()``); an empty blob adds nothing."""
        if blob:
            self._h.add(HdrHistogram.decode(blob))

    def encode(self) -> bytes:
        """Compressed, base64 HdrHistogram V2 encoding (empty bytes when empty)."""
        return bytes(self._h.encode()) if self.count else b""

    @classmethod
    def decode(cls, blob: bytes) -> LatencyHistogram:
        hist = cls()
        hist.merge_encoded(blob)
        return hist

    def reset(self) -> None:
        self._h.reset()


def merged(blobs: list[bytes]) -> LatencyHistogram:
    """Merge encoded histograms into one."""
    hist = LatencyHistogram()
    for blob in blobs:
        hist.merge_encoded(blob)
    return hist

"""Unit tests of the load parts: histograms, profiles, workload, error classes, the
recorder, the precise sleeper and the in-flight mean.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import httpx
import pytest

from lab.load.histogram import LatencyHistogram
from lab.load.outcome import classify_exception, status_class
from lab.load.profile import LoadProfile, split_evenly
from lab.load.recorder import IntervalAccumulator, StatsRecorder, count_us
from lab.load.wire import IntervalReport, WorkerConfig, decode_report, encode
from lab.load.workload import RequestPicker
from lab.pool import IntervalMerger
from lab.spec import RequestSpec


def _report(index: int, latencies_ms: list[float]) -> IntervalReport:
    acc = IntervalAccumulator(index)
    for ms in latencies_ms:
        acc.ok += 1
        count_us(acc.ok_us, ms / 1000)
    return acc.report(float(index), 1.0, 1, 0.0, 0)


def test_merged_p99_is_the_p99_of_the_union() -> None:
    rng = random.Random(7)
    fast = [rng.uniform(1, 5) for _ in range(990)]  # worker A: quick responses
    slow = [rng.uniform(200, 400) for _ in range(110)]  # worker B: a slow tail
    merger = IntervalMerger("k", workers=2)
    assert merger.add(_report(0, fast), 0) == []  # waits for the second worker
    [merged] = merger.add(_report(0, slow), 1)
    union = LatencyHistogram()
    for ms in fast + slow:
        union.record_s(ms / 1000)
    assert merged.requests == 1100
    assert merged.p99_ms == pytest.approx(union.percentile_ms(99), rel=1e-9)
    exact = sorted(fast + slow)[int(0.99 * 1100) - 1]
    assert merged.p99_ms == pytest.approx(exact, rel=0.01)  # HDR: 3 significant digits
    # Averaging the two workers' p99s would have said something else entirely.
    a, b = LatencyHistogram(), LatencyHistogram()
    for ms in fast:
        a.record_s(ms / 1000)
    for ms in slow:
        b.record_s(ms / 1000)
    assert abs((a.percentile_ms(99) + b.percentile_ms(99)) / 2 - merged.p99_ms) > 50


def test_histogram_encoding_round_trips() -> None:
    h = LatencyHistogram()
    for ms in (1, 2, 3, 1000):
        h.record_s(ms / 1000)
    again = LatencyHistogram.decode(h.encode())
    assert again.count == 4
    assert again.max_ms() == pytest.approx(1000, rel=1e-3)
    assert LatencyHistogram().encode() == b""
    assert LatencyHistogram.decode(b"").count == 0


def test_split_is_exact() -> None:
    for total in range(0, 20):
        for parts in range(1, 5):
            shares = [split_evenly(total, i, parts) for i in range(parts)]
            assert sum(shares) == total
            assert max(shares) - min(shares) <= 1


def test_constant_rate_arrivals() -> None:
    p = LoadProfile([], 10.0, 3.0)
    assert p.time_of_arrival(0) == pytest.approx(0.0)
    assert p.time_of_arrival(5) == pytest.approx(0.5)
    assert p.time_of_arrival(29.5) == pytest.approx(2.95)
    assert p.time_of_arrival(30.5) is None


def test_ramp_from_zero_schedules_arrivals_where_the_ramp_puts_them() -> None:
    # 0 → 100 req/s over 2 s: N(t) = 25 t², so arrival n is due at sqrt(n / 25).
    p = LoadProfile([(2.0, 100.0)], 0.0, 0.0)
    for n in (1, 4, 25, 99):
        assert p.time_of_arrival(n) == pytest.approx((n / 25) ** 0.5, rel=1e-6)
    assert p.level_at(1.0) == pytest.approx(50)
    assert p.time_of_arrival(101) is None


def test_rate_below_worker_count_is_split_not_rounded() -> None:
    # 1 req/s over 3 workers for 6 s: each worker schedules 2 arrivals, 6 in total.
    counts = []
    for i in range(3):
        p = LoadProfile([], 1.0, 6.0, scale=1 / 3)
        n, c = i / 3, 0
        while (t := p.time_of_arrival(n)) is not None and t < 6.0:
            c += 1
            n += 1
        counts.append(c)
    assert sum(counts) == 6


def test_override_holds_the_new_level() -> None:
    p = LoadProfile([(10.0, 100.0)], 0.0, 0.0)
    p.override(2.0, 7.0)
    assert p.level_at(5.0) == 7.0
    assert p.level_at(1.0) == pytest.approx(10.0)
    before = p.time_of_arrival(20.0)  # N(2) = 20 arrivals by the override
    assert before == pytest.approx(2.0, rel=1e-6)
    assert p.time_of_arrival(27.0) == pytest.approx(3.0, rel=1e-6)


def test_stage_levels_and_stage_index() -> None:
    p = LoadProfile([(2.0, 10.0), (2.0, 10.0), (2.0, 0.0)], 0.0, 0.0)
    assert p.level_at(1.0) == pytest.approx(5.0)
    assert p.level_at(3.0) == pytest.approx(10.0)
    assert p.level_at(5.0) == pytest.approx(5.0)
    assert [p.stage_at(t) for t in (0.5, 2.5, 4.5)] == [0, 1, 2]


def _picker(**params: object) -> RequestPicker:
    spec = RequestSpec.model_validate({"path": "/p/{id}", "params": {"id": params}})
    return RequestPicker([spec], seed=3)


def test_zipf_is_skewed_towards_low_ranks() -> None:
    picker = _picker(distribution="zipf", n=1000, s=1.1)
    ids = Counter(int(picker.pick().path.rsplit("/", 1)[1]) for _ in range(20000))
    assert min(ids) >= 1 and max(ids) <= 1000
    assert ids[1] > ids[2] > ids[10] > ids.get(500, 0)
    assert ids[1] / 20000 == pytest.approx(1 / sum(1 / k**1.1 for k in range(1, 1001)), rel=0.1)


def test_sequence_wraps_and_uniform_stays_in_range() -> None:
    seq = _picker(distribution="sequence", start=5, stop=7)
    assert [seq.pick().path for _ in range(4)] == ["/p/5", "/p/6", "/p/7", "/p/5"]
    uni = _picker(distribution="uniform", low=3, high=4)
    assert {uni.pick().path for _ in range(200)} == {"/p/3", "/p/4"}


def test_choice_follows_weights_and_requests_follow_weight() -> None:
    ch = _picker(distribution="choice", values=["a", "b"], weights=[9, 1])
    share_a = sum(ch.pick().path == "/p/a" for _ in range(5000)) / 5000
    assert share_a == pytest.approx(0.9, abs=0.03)
    specs = [RequestSpec.model_validate({"path": "/x", "weight": 3}),
             RequestSpec.model_validate({"path": "/y", "weight": 1})]
    picker = RequestPicker(specs, seed=1)
    share_x = sum(picker.pick().path == "/x" for _ in range(4000)) / 4000
    assert share_x == pytest.approx(0.75, abs=0.03)


def test_error_classes() -> None:
    req = httpx.Request("GET", "http://127.0.0.1:1/")
    assert classify_exception(TimeoutError())[0] == "timeout"
    assert classify_exception(httpx.ReadTimeout("slow", request=req))[0] == "timeout"
    assert classify_exception(httpx.ConnectError("refused", request=req))[0] == "connect"
    assert classify_exception(httpx.ReadError("reset", request=req))[0] == "reset"
    assert classify_exception(httpx.RemoteProtocolError("closed", request=req))[0] == "reset"
    emfile = httpx.ConnectError("too many", request=req)
    emfile.__cause__ = OSError(errno.EMFILE, "Too many open files")
    assert classify_exception(emfile)[0] == "generator"
    assert classify_exception(ValueError("bug"))[0] == "generator"
    assert status_class(200, frozenset()) is None
    assert status_class(404, frozenset()) == "http_4xx"
    assert status_class(404, frozenset({404})) is None
    assert status_class(503, frozenset()) == "http_5xx"


def _iv(t: float, cpu: float | None, lag_ms: float = 0.1) -> object:
    from lab.figures import IntervalCounts

    lag = LatencyHistogram()
    for _ in range(100):
        lag.record_s(lag_ms / 1000)
    return IntervalCounts(t_s=t, duration_s=1.0, ok=1, errors=0, dropped=0, interrupted=0,
                          bytes=0, errors_by_class={}, histogram=b"", histogram_all=b"",
                          histogram_service=b"", generator_cpu_percent=cpu,
                          histogram_lag=lag.encode())


def test_generator_bound_needs_three_busy_seconds_in_a_row() -> None:
    from lab.analysis.summary import summarise

    def bound(cpus: list[float | None], lag_ms: float = 0.1) -> bool:
        s = summarise([_iv(i, c, lag_ms) for i, c in enumerate(cpus)], [], 0.0)
        assert s is not None
        return s.generator_bound

    assert not bound([95, 95, 50, 95, 95, 50])
    assert bound([50, 95, 92, 90, 40])
    assert not bound([89, 89, 89, 89])
    assert bound([20, 20, 20], lag_ms=25.0)  # a lagging loop is enough on its own
    s = summarise([_iv(i, 99) for i in range(4)], [], 0.0)
    assert s is not None and "for 4s" in (s.generator_bound_reason or "")


def test_recorder_keeps_all_attempts_and_service_time_apart() -> None:
    closed = StatsRecorder(t0=0.0, interval_s=1.0, total_s=2.0, service_is_latency=True)
    closed.record(0.5, 0.010, 0.010, 10, None, 200, None)
    closed.record(0.6, 0.900, 0.900, 0, "timeout", None, "timeout")
    rep = closed.pop(0).report(0.0, 1.0, 1, 0.0, 0)
    assert LatencyHistogram.decode(rep.histogram.encode()).count == 1
    everything = LatencyHistogram.decode(rep.histogram_all.encode())
    assert everything.count == 2 and everything.max_ms() == pytest.approx(900, rel=0.01)
    assert rep.histogram_service == rep.histogram
    opened = StatsRecorder(t0=0.0, interval_s=1.0, total_s=2.0)
    opened.record(0.5, 0.800, 0.005, 10, None, 200, None)  # waited 795 ms for a connection
    rep = opened.pop(0).report(0.0, 1.0, 0, 10.0, 0)
    assert LatencyHistogram.decode(rep.histogram.encode()).max_ms() == pytest.approx(800, rel=0.01)
    assert LatencyHistogram.decode(rep.histogram_service.encode()).max_ms() == pytest.approx(5, rel=0.01)
    assert rep.histogram_all == rep.histogram
    assert decode_report(encode(rep)) == rep  # survives the trip to the engine


@pytest.mark.parametrize("client", ["fast", "httpx"])
def test_keep_alive_reaches_the_engine(client: str) -> None:
    from lab.load.worker import build_executor

    for keep_alive in (True, False):
        config = WorkerConfig(base_url="http://127.0.0.1:9", index=0, workers=1, seed=1,
                              load={"vus": 1, "duration": 1.0, "client": client,
                                    "keep_alive": keep_alive, "requests": [{"path": "/"}]})
        executor, _ = build_executor(config, 0.0)
        assert executor.engine.keep_alive is keep_alive  # type: ignore[attr-defined]


def test_count_us_counts_the_lowest_value_of_the_hdr_bucket() -> None:
    from hdrh.histogram import HdrHistogram

    from lab.load.histogram import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS

    h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    rng = random.Random(5)
    values = list(range(1, 5000)) + [rng.randint(1, HIGHEST_US) for _ in range(50_000)]
    values += [2**k + d for k in range(11, 32) for d in (-1, 0, 1)]
    for us in values:
        seconds = us / 1_000_000
        counts: dict[int, int] = {}
        count_us(counts, seconds)
        exact = int(seconds * 1_000_000)  # what the recorder reads of a float duration
        assert list(counts) == [h.get_lowest_equivalent_value(exact)], us


def _latencies(rng: random.Random, n: int) -> list[float]:
    """Seconds, log-uniform over 1 µs .. 100 s, plus the edges: 0, negative, over an hour."""
    out = [10 ** rng.uniform(-6, 2) for _ in range(n)]
    return out + [0.0, -0.001, 1e-7, 5000.0, 0.0021, 0.002047, 0.002048]


def test_counted_latencies_give_the_same_histograms_as_recording_each() -> None:
    rng = random.Random(11)
    rec = StatsRecorder(t0=100.0, interval_s=1.0, total_s=3.0)  # open model: service kept
    direct = {"histogram": LatencyHistogram(), "histogram_all": LatencyHistogram(),
              "histogram_service": LatencyHistogram(), "histogram_lag": LatencyHistogram()}
    lat = _latencies(rng, 20_000)
    for i, latency in enumerate(lat):
        service = latency * rng.uniform(0.2, 1.0)
        err = "http_5xx" if i % 50 == 0 else None
        rec.record(100.5, latency, service, 1, err, 500 if err else 200, None)
        direct["histogram_all"].record_s(latency)
        if err is None:
            direct["histogram"].record_s(latency)
            direct["histogram_service"].record_s(service)
    for lag in _latencies(rng, 2000):
        rec.lag(100.7, lag)
        direct["histogram_lag"].record_s(lag)
    # Two reports through the recorder's one reused histogram: the second must not
    # carry anything of the first.
    first = rec.pop(0).report(0.0, 1.0, 0, 1.0, 0, scratch=rec.scratch)
    rec.record(101.5, 0.003, 0.001, 1, None, 200, None)
    second = rec.pop(1).report(1.0, 1.0, 0, 1.0, 0, scratch=rec.scratch)
    for key, want in direct.items():
        got = LatencyHistogram.decode(getattr(first, key).encode())
        assert getattr(first, key) == want.encode().decode(), key  # the very same encoding
        assert got.count == want.count
        for p in (0, 1, 50, 90, 99, 99.9, 100):
            assert got.percentile_ms(p) == want.percentile_ms(p), (key, p)
        assert (got.max_ms(), got.mean_ms()) == (want.max_ms(), want.mean_ms())
    assert LatencyHistogram.decode(str(second.histogram).encode()).count == 1
    assert second.histogram_lag == "" and second.histogram_all == second.histogram


def test_a_reset_histogram_is_as_good_as_new() -> None:
    h = LatencyHistogram()
    for us in (1, 500, 10_000, 3_000_000):
        h.add_counts({us: 3})
    h.reset()
    assert h.count == 0 and h.max_ms() == 0.0 and h.encode() == b""
    fresh = LatencyHistogram()
    for hist in (h, fresh):
        hist.add_counts({7: 2, 2500: 1})
    assert h.encode() == fresh.encode()
    assert h.percentile_ms(50) == fresh.percentile_ms(50) == 0.007


def _on_uvloop(coro: Any) -> Any:
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def test_precise_sleeper_wakes_on_time_without_spinning() -> None:
    from lab.load.timer import PreciseSleeper

    async def go() -> tuple[bool, list[float], float]:
        sleeper = PreciseSleeper(asyncio.get_running_loop())
        precise = sleeper.precise
        late = []
        cpu, wall = time.process_time(), time.monotonic()
        try:
            for _ in range(300):
                deadline = time.monotonic() + 0.0003
                await sleeper.until(deadline)
                late.append(time.monotonic() - deadline)
        finally:
            sleeper.close()
        return precise, sorted(late), (time.process_time() - cpu) / (time.monotonic() - wall)

    # The control: how late this machine wakes a thread that sleeps 0.3 ms in the kernel
    # (nanosleep), now; a busy machine makes both late alike.
    kernel = []
    for _ in range(300):
        deadline = time.monotonic() + 0.0003
        time.sleep(max(0.0, deadline - time.monotonic()))
        kernel.append(time.monotonic() - deadline)
    kernel.sort()
    precise, late, busy = _on_uvloop(go())
    if not precise:
        pytest.skip("no timerfd here")
    assert late[0] >= -1e-4  # never early (but for clock rounding)
    # About as late as the kernel's own sleep (measured 0.04 against 0.08 ms); loop timers
    # of 1 ms resolution would be ~0.5 ms late, and uvloop's own sleep returns at once.
    assert late[len(late) // 2] < kernel[len(kernel) // 2] + 0.0003, (late[150], kernel[150])
    # uvloop's asyncio.sleep(0.0003) returns on the next loop turn, so a loop of them spins
    # a whole core; the timerfd sleeps (measured 11 % of a core, mostly wake-ups).
    assert busy < 0.6


def test_in_flight_mean_is_the_area_under_the_in_flight_curve() -> None:
    rec = StatsRecorder(t0=10.0, interval_s=1.0, total_s=3.0, service_is_latency=True)
    rec.begin(10.2)
    rec.record(10.4, 0.2, 0.2, 0, None, 200, None)  # 0.2 s inside interval 0
    rec.begin(10.5)  # straddles the first boundary: 0.5 s in interval 0, 0.5 s in 1
    first = rec.pop(0).report(0.0, 1.0, 0, 0.0, 0)  # shipped while it is in flight
    rec.record(11.5, 1.0, 1.0, 0, None, 200, None)
    rec.begin(10.9)  # late: its interval was shipped; counted from the next one's start
    rec.record(11.1, 0.2, 0.2, 0, "timeout", None, "t")
    second = rec.pop(1).report(1.0, 1.0, 0, 0.0, 0)
    rec.begin(12.5)
    rec.interrupt(12.7)  # cancelled at the end: no longer in flight
    third = rec.pop(2).report(2.0, 1.0, 0, 0.0, 0)
    assert first.in_flight_mean == pytest.approx(0.7)
    assert second.in_flight_mean == pytest.approx(0.5 + 0.1)
    assert third.in_flight_mean == pytest.approx(0.2)
    assert third.interrupted == 1


def test_in_flight_mean_is_summed_across_workers() -> None:
    def report(index: int, in_flight: float, duration_s: float = 1.0) -> IntervalReport:
        return replace(_report(index, [1.0]), in_flight_mean=in_flight, duration_s=duration_s)

    merger = IntervalMerger("k", workers=2)
    merger.add(report(0, 3.0), 0)
    [iv] = merger.add(report(0, 4.5), 1)
    assert iv.in_flight_mean == pytest.approx(7.5)
    merger.add(report(1, 2.0, 0.5), 0)  # a last interval: the workers ended apart
    [last] = merger.add(report(1, 2.0, 0.4), 1)
    assert last.in_flight_mean == pytest.approx((2.0 * 0.5 + 2.0 * 0.4) / 0.5)
    old = replace(_report(2, [1.0]), in_flight_mean=None)
    solo = IntervalMerger("k", workers=1)
    [iv] = solo.add(old, 0)
    assert iv.in_flight_mean is None  # from a worker that does not report it


def test_max_rps_hands_out_exactly_the_slots_before_the_end() -> None:
    from lab.load.executors import Pacer

    async def slots(rate_per_s: float, first_slot: float, end: float) -> list[float]:
        taken: list[float] = []

        async def at_once(deadline: float) -> bool:
            taken.append(deadline - first_slot)  # the slot a VU waits for
            return True  # at once: the VU is always ready, the slots alone decide the count

        pacer = Pacer(rate_per_s, first_slot)
        while await pacer.take(at_once, lambda: True, end):
            pass
        return taken

    async def go() -> None:
        # max_rps 10 over 3 workers for 3 s: 10/3 req/s each, worker i's slots i/10 s late;
        # slots at 0, 0.1, ..., 2.9 (30 of them), one at 3.0 is at the end and not sent.
        # Several start times, as the monotonic clock's value changes float rounding.
        now = time.monotonic()
        for k in range(50):
            t0 = now + 100 + k * 0.0137
            per_worker = [await slots(10 / 3, t0 + i / 10, t0 + 3.0) for i in range(3)]
            assert [len(s) for s in per_worker] == [10, 10, 10], (t0, per_worker)
            for i, s in enumerate(per_worker):
                assert s == pytest.approx([j * 0.3 for j in range(10)], abs=1e-9), (i, s)

    asyncio.run(go())

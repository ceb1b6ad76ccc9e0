"""The worker wire format (``lab.load.wire``): every message survives the trip, and a
malformed line is one clear error naming the worker and the field, never a ``KeyError``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lab.errors import ExitCode, GeneratorError
from lab.load.recorder import IntervalAccumulator, count_us
from lab.load.wire import (
    Done,
    IntervalReport,
    Ready,
    SetLevel,
    Start,
    Stop,
    WireError,
    WorkerConfig,
    decode_command,
    decode_config,
    decode_report,
    encode,
)
from lab.pool import Exited, GeneratorPool, Malformed, WorkerMessage


def _interval() -> IntervalReport:
    acc = IntervalAccumulator(3)
    acc.ok, acc.errors, acc.errors_by_class = 2, 1, {"http_5xx": 1}
    count_us(acc.ok_us, 0.004)
    count_us(acc.ok_us, 0.006)
    count_us(acc.err_us, 0.2)
    return acc.report(3.0, 1.0, 4, 0.0, 1, cpu_percent=37.5)


def test_every_message_round_trips() -> None:
    for report in (Ready(), _interval(), Done(errors=(("http_5xx", 503, "Service Unavailable", 7),
                                                      ("timeout", None, "timed out", 1)))):
        line = encode(report)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode_report(line) == report
    for command in (Start(t0=12.5), SetLevel(value=40.0), Stop()):
        assert decode_command(encode(command)) == command
    config = WorkerConfig(base_url="http://127.0.0.1:9", load={"vus": 2}, index=1, workers=2, seed=1)
    assert decode_config(encode(config)) == config


def test_the_keys_on_the_wire_are_the_ones_the_worker_always_sent() -> None:
    import json

    sent = json.loads(encode(_interval()))
    assert list(sent) == ["type", "index", "t_s", "duration_s", "ok", "errors", "bytes", "dropped",
                          "interrupted", "errors_by_class", "active_vus", "target_rate", "stage",
                          "histogram", "histogram_all", "histogram_service", "histogram_lag",
                          "cpu_percent", "in_flight_mean"]
    assert json.loads(encode(Start(t0=1.0))) == {"cmd": "start", "t0": 1.0}


@pytest.mark.parametrize(("line", "names"), [
    (b'{"type":"interval","index":0}', "field 't_s': field required"),
    (b'{"type":"interval","index":"zero"}', "field 'index': input should be a valid integer"),
    (b'{"type":"done","errors":[["timeout"]]}', "field 'errors.0.1': field required"),
    (b'{"type":"hello"}', "'hello'"),
    (b"Traceback (most recent call last):", "invalid json"),
])
def test_a_malformed_report_is_one_error_naming_the_field(line: bytes, names: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_report(line)
    text = str(caught.value)
    assert text.startswith("malformed report: ") and names in text, text
    assert "\n" not in text and line.decode()[:20] in text  # one line, quoting what came
    assert isinstance(caught.value, GeneratorError) and caught.value.exit_code == ExitCode.RUN_FAILED


def test_a_bad_field_of_the_right_shape_is_refused_not_coerced() -> None:
    good = encode(_interval())
    with pytest.raises(WireError, match="'ok'"):
        decode_report(good.replace(b'"ok":2', b'"ok":"2"'))


class _FakeProc:
    """A process whose stdout is a stream the test writes (no subprocess in unit tests)."""

    def __init__(self, lines: list[bytes]) -> None:
        self.stdout = asyncio.StreamReader()
        for line in lines:
            self.stdout.feed_data(line)
        self.stdout.feed_eof()
        self.returncode = 0

    async def wait(self) -> int:
        return 0


async def test_the_pool_turns_a_malformed_line_into_one_message_naming_the_worker() -> None:
    pool = GeneratorPool(WorkerConfig(base_url="http://127.0.0.1:9", load={}), workers=2)
    proc: Any = _FakeProc([encode(Ready()), b'{"type":"interval","index":0,"ok":1}\n', encode(Done())])
    await pool._read(1, proc)
    got: list[WorkerMessage] = []
    while not pool.messages.empty():
        got.append(pool.messages.get_nowait())
    assert [type(m.msg) for m in got] == [Ready, Malformed, Done, Exited]
    bad = got[1].msg
    assert isinstance(bad, Malformed)
    text = pool.describe_malformed(got[1].index, bad.error)
    assert text.startswith("generator worker 1 sent a malformed report: field 't_s'"), text

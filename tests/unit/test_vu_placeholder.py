"""The ``{vu}`` placeholder: each VU's run-wide number in a request's path, headers and body
(closed model), refused in the open model and as a parameter's name."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lab.load.executors import ClosedExecutor
from lab.load.outcome import Outcome
from lab.load.profile import LoadProfile, split_evenly
from lab.load.recorder import StatsRecorder
from lab.load.workload import Request, RequestPicker
from lab.spec import RequestSpec
from tests.unit.test_spec import BASE, line_of, spec_error

USER = '[load.requests.headers]\n"X-User" = "user-{vu}"\n'


def test_vu_fills_path_headers_and_body_and_nothing_else() -> None:
    spec = RequestSpec.model_validate({
        "method": "POST", "path": "/users/{vu}/items/{id}", "body": '{"user": {vu}, "x": "{id}"}',
        "headers": {"X-User": "user-{vu}", "Accept": "text/plain"},
        "params": {"id": {"distribution": "sequence", "start": 5}}})
    picker = RequestPicker([spec], seed=1)
    first, again, other = picker.pick(3), picker.pick(3), picker.pick(12)
    assert (first.path, again.path, other.path) == ("/users/3/items/5", "/users/3/items/6",
                                                    "/users/12/items/7")
    assert first.headers == {"X-User": "user-3", "Accept": "text/plain"}
    assert other.headers == {"X-User": "user-12", "Accept": "text/plain"}
    assert first.body == b'{"user": 3, "x": "{id}"}'  # only {vu} is filled outside the path


def test_a_request_without_vu_is_one_object_and_with_only_vu_one_per_vu() -> None:
    static = RequestPicker([RequestSpec(path="/work")])
    assert static.pick(1) is static.pick(2)
    per_vu = RequestPicker([RequestSpec(path="/work", headers={"X-User": "user-{vu}"})])
    assert per_vu.pick(1) is per_vu.pick(1)
    assert per_vu.pick(1) is not per_vu.pick(2) and per_vu.pick(2).path == "/work"


def test_vu_needs_no_params_entry(tmp_path: Path) -> None:
    from lab.spec import load_experiment

    path = tmp_path / "exp.toml"
    path.write_text(BASE.replace("/products/{id}", "/users/{vu}/products/{id}") + USER)
    exp = load_experiment(path)
    assert exp.load.requests[0].vu_fields() == [("path",), ("headers", "X-User")]


def test_a_param_named_vu_is_refused(tmp_path: Path) -> None:
    text = BASE.replace("/products/{id}", "/products/{vu}").replace("params.id", "params.vu")
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests[0].params.vu"
    assert err.line == line_of(text, "params.vu")
    assert "'vu' is the built-in placeholder {vu}" in err.message


@pytest.mark.parametrize(("extra", "field", "needle"), [
    ("", "load.requests[0].path", "path ="),
    (USER, "load.requests[0].headers.X-User", '"X-User"'),
    ('body = "{vu}"\n', "load.requests[0].body", "body ="),
])
def test_vu_is_refused_in_the_open_model(tmp_path: Path, extra: str, field: str, needle: str) -> None:
    text = BASE.replace("vus = 4", 'model = "open"\nrate = 10')
    if not extra:
        text = text.replace("/products/{id}", "/users/{vu}/products/{id}")
    text += extra
    err = spec_error(tmp_path, text)
    assert err.field == field
    assert err.line == line_of(text, needle)
    assert "{vu} is a VU's number, and the open model has no VUs" in err.message


def test_vu_in_a_variant_that_switches_to_the_open_model_is_refused(tmp_path: Path) -> None:
    text = (BASE.replace("/products/{id}", "/users/{vu}/products/{id}")
            + '\n[[variants]]\nname = "open"\nload = { model = "open", rate = 10 }\n')
    err = spec_error(tmp_path, text)
    assert err.field.startswith("variants[0].load.requests[0].path"), err.field


class _Engine:
    """Records the VU numbers (from ``{vu}`` in the path) of the requests sent."""

    name = "fake"

    def __init__(self) -> None:
        self.users: set[str] = set()
        self.clients = 0
        """VUs started (each makes one client)."""

    def new_client(self) -> object:
        self.clients += 1
        return self

    async def aclose(self) -> None:
        pass

    async def send(self, client: object, req: Request) -> Outcome:
        self.users.add(req.path)
        await asyncio.sleep(0.001)
        return Outcome(200, 0, None, None)


@pytest.mark.parametrize(("vus", "workers"), [(5, 2), (7, 3), (2, 4), (1, 1)])
async def test_vu_numbers_are_one_to_n_across_workers(vus: int, workers: int) -> None:
    specs = [RequestSpec(path="/u/{vu}")]
    t0 = time.monotonic()
    engines = [_Engine() for _ in range(workers)]
    executors = [ClosedExecutor(engine, RequestPicker(specs), StatsRecorder(t0, 1.0, 0.3),
                                LoadProfile([], float(vus), 0.3), t0, 1.0, worker_index=index,
                                workers=workers, think_time_s=0.0, max_rps=None)
                 for index, engine in enumerate(engines)]
    await asyncio.gather(*(executor.run() for executor in executors))
    seen: list[int] = []
    for index, engine in enumerate(engines):
        numbers = [int(path.rsplit("/", 1)[1]) for path in engine.users]
        assert len(numbers) == split_evenly(vus, index, workers)
        seen += numbers
    assert sorted(seen) == list(range(1, vus + 1))


async def test_a_vu_started_after_a_ramp_down_takes_the_lowest_number_free() -> None:
    engine = _Engine()
    t0 = time.monotonic()
    # 4 VUs, down to 1, back up to 4: the new VUs take numbers 2..4 again, never 5 and up.
    profile = LoadProfile([(0.3, 4.0), (0.3, 1.0), (0.3, 1.0), (0.3, 4.0), (0.3, 4.0)], 4.0, 1.5)
    executor = ClosedExecutor(engine, RequestPicker([RequestSpec(path="/u/{vu}")]),
                              StatsRecorder(t0, 1.0, 1.5), profile, t0, 1.0, worker_index=0,
                              workers=1, think_time_s=0.0, max_rps=None)
    await executor.run()
    assert sorted(int(path.rsplit("/", 1)[1]) for path in engine.users) == [1, 2, 3, 4]
    assert engine.clients > 4  # VUs were retired and new ones started

"""The request mix: weighted requests whose path parameters are drawn from distributions."""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.spec import ParamSpec, RequestSpec

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Request:
    """One concrete request, ready to send."""

    method: str
    path: str
    headers: dict[str, str] | None
    body: bytes | None
    expect_status: frozenset[int]
    idempotent: bool


def param_sampler(spec: ParamSpec, rng: random.Random) -> Callable[[], object]:
    """A zero-argument function drawing values of one parameter.

    zipf: ranks 1..n with P(k) ∝ 1/k**s (a bounded Zipf, drawn by inverse CDF);
    uniform: integers low..high inclusive; sequence: start, start+1, … wrapping after
    ``stop``; choice: one of ``values`` by ``weights``.
    """
    if spec.distribution == "zipf":
        n = int(spec.n or 1)
        s = float(spec.s)
        cum = list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))
        total = cum[-1]
        return lambda: bisect.bisect_left(cum, rng.random() * total) + 1
    if spec.distribution == "uniform":
        low, high = int(spec.low or 0), int(spec.high or 0)
        return lambda: rng.randint(low, high)
    if spec.distribution == "sequence":
        start = int(spec.start)
        stop = spec.stop
        counter = itertools.count(start)
        if stop is None:
            return lambda: next(counter)
        span = int(stop) - start + 1
        return lambda: start + (next(counter) - start) % span
    values: Sequence[object] = list(spec.values or [])
    weights = spec.weights
    if weights:
        cum_w = list(itertools.accumulate(weights))
        total_w = cum_w[-1]
        return lambda: values[bisect.bisect_right(cum_w, rng.random() * total_w)]
    return lambda: rng.choice(values)


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


_VU = "vu"  # lab.spec's VU_PLACEHOLDER (the spec is imported for types only)
_VU_TOKEN = "{vu}"


class _Template:
    """A request spec compiled for fast repeated sampling.

    A request without placeholders is one ``Request`` object, sent again and again; one
    whose only placeholder is ``{vu}`` is one object per VU, made on its first use; only
    parameters drawn from distributions make a new one per send.
    """

    def __init__(self, spec: RequestSpec, rng: random.Random) -> None:
        self.method = spec.method
        self.parts = _PLACEHOLDER.split(spec.path)  # literal, name, literal, name, …
        self.samplers = {name: param_sampler(p, rng) for name, p in spec.params.items()}
        self.headers = dict(spec.headers) or None
        self.body_text = spec.body
        self.body = spec.body.encode() if spec.body is not None else None
        self.expect = frozenset(spec.expect_status)
        self.idempotent = spec.method in _IDEMPOTENT
        self.vu_headers = any(_VU_TOKEN in value for value in (self.headers or {}).values())
        self.vu_body = spec.body is not None and _VU_TOKEN in spec.body
        names = set(self.parts[1::2])
        self.uses_vu = _VU in names or self.vu_headers or self.vu_body
        self.static = None
        self.per_vu: dict[int, Request] | None = None
        if not names - {_VU}:
            if self.uses_vu:
                self.per_vu = {}
            else:
                self.static = self._make(spec.path)

    def _make(self, path: str, vu: int = 0) -> Request:
        if not self.uses_vu:
            return Request(self.method, path, self.headers, self.body, self.expect, self.idempotent)
        number = str(vu)
        headers = self.headers
        if self.vu_headers and headers is not None:
            headers = {name: value.replace(_VU_TOKEN, number) for name, value in headers.items()}
        body = self.body
        if self.vu_body and self.body_text is not None:
            body = self.body_text.replace(_VU_TOKEN, number).encode()
        return Request(self.method, path, headers, body, self.expect, self.idempotent)

    def _path(self, vu: int) -> str:
        parts = self.parts
        out = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(part)
            elif part == _VU:
                out.append(str(vu))
            else:
                out.append(str(self.samplers[part]()))
        return "".join(out)

    def build(self, vu: int = 0) -> Request:
        """A request to send; ``vu`` is the sending VU's number (0: no VU, open model)."""
        if self.static is not None:
            return self.static
        per_vu = self.per_vu
        if per_vu is not None:
            req = per_vu.get(vu)
            if req is None:
                req = per_vu[vu] = self._make(self._path(vu), vu)
            return req
        return self._make(self._path(vu), vu)


class RequestPicker:
    """Picks requests by weight and fills their parameters.

    Args:
        specs: the ``[[load.requests]]`` of a load spec (at least one).
        seed: seed of the private random generator, for reproducible request streams.
    """

    def __init__(self, specs: Sequence[RequestSpec], seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._templates = [_Template(s, self._rng) for s in specs]
        self._cum = list(itertools.accumulate(s.weight for s in specs))
        self._total = self._cum[-1]

    def pick(self, vu: int = 0) -> Request:
        """The next request; ``vu`` is the sending VU's number, for ``{vu}`` (closed model)."""
        if len(self._templates) == 1:
            return self._templates[0].build(vu)
        i = bisect.bisect_right(self._cum, self._rng.random() * self._total)
        return self._templates[min(i, len(self._templates) - 1)].build(vu)

"""``load.http2`` and ``load.follow_redirects`` before a run: what only the httpx engine does
is refused where it cannot work, and ``client = "auto"`` picks httpx for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.plan import plan_runs
from lab.spec import SpecError, load_experiment
from tests.conftest import write_experiment

BASE = """\
[experiment]
title = "http2"
[target]
url = "http://127.0.0.1:8080"
[load]
vus = 1
[[load.requests]]
path = "/"
"""


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ("vus = 1", 'vus = 1\nclient = "fast"\nhttp2 = true', "load.http2",
     'needs the httpx client engine; the fast engine speaks HTTP/1.1 and follows no redirects '
     '(use client = "httpx" or "auto")'),
    ("vus = 1", 'vus = 1\nclient = "fast"\nfollow_redirects = true', "load.follow_redirects",
     'needs the httpx client engine; the fast engine speaks HTTP/1.1 and follows no redirects '
     '(use client = "httpx" or "auto")'),
    ('url = "http://127.0.0.1:8080"', 'app = "targets.testing:app"', "load.http2",
     "the lab serves 'app' targets with uvicorn, which speaks HTTP/1.1 only; HTTP/2 needs a "
     "'url' target served by an HTTP/2 server (e.g. hypercorn)"),
])
def test_what_only_httpx_does_is_refused_where_it_cannot_work(tmp_path: Path, old: str, new: str,
                                                              field: str, message: str) -> None:
    body = BASE.replace("vus = 1", "vus = 1\nhttp2 = true") if "app =" in new else BASE
    with pytest.raises(SpecError) as err:
        load_experiment(write_experiment(tmp_path, body.replace(old, new)))
    assert (err.value.field, err.value.message) == (field, message)
    assert err.value.line is not None


@pytest.mark.parametrize(("load", "client"), [
    ("", "fast"), ("http2 = true", "httpx"), ("follow_redirects = true", "httpx"),
])
def test_auto_chooses_httpx_for_http2_and_redirects(tmp_path: Path, load: str, client: str) -> None:
    body = BASE.replace("vus = 1", f"vus = 1\n{load}")
    plan = plan_runs(load_experiment(write_experiment(tmp_path, body)))[0]
    assert plan.load.client == client

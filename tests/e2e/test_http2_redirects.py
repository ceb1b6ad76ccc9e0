"""``load.http2`` and ``load.follow_redirects``: real, with the httpx engine, against the
testing target served by hypercorn (HTTP/1.1 and HTTP/2 over cleartext), which counts the
HTTP version of every request it serves and the redirects it sends (its ``/stats``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.topology.targets import free_port
from tests.conftest import run_lab, write_experiment
from tests.e2e.servers import external_server


@pytest.fixture(scope="module")
def hypercorn_url() -> Iterator[str]:
    """The testing target under hypercorn on 127.0.0.1 (h2c with prior knowledge too)."""
    pytest.importorskip("hypercorn")
    port = free_port()
    argv = [sys.executable, "-m", "hypercorn", "targets.testing:app", "--bind", f"127.0.0.1:{port}"]
    with external_server(argv, port):
        yield f"http://127.0.0.1:{port}"


def _run(tmp_path: Path, url: str, load: str, path: str) -> dict[str, object]:
    exp = write_experiment(tmp_path, f"""
        [experiment]
        title = "http2"
        [target]
        url = "{url}"
        [load]
        vus = 2
        duration = "1s"
        warmup = "0s"
        {load}
        [[load.requests]]
        path = "{path}"
    """)
    res = run_lab("run", str(exp), "--db", str(tmp_path / "r.db"), "--format", "json", "--progress")
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)["runs"][0]
    run["progress"] = res.stderr
    return run


def test_http2_requests_go_out_as_http2_and_a_redirect_chain_is_one_request(
        hypercorn_url: str, tmp_path: Path) -> None:
    run = _run(tmp_path, hypercorn_url, "http2 = true\nfollow_redirects = true", "/redirect/2")
    summary, stats = run["summary"], run["target_stats"]
    assert run["client"] == "httpx"  # client = "auto" chose httpx for HTTP/2 and redirects
    assert run["config"]["http_version"] == "HTTP/2"
    assert summary["errors"] == 0 and summary["ok"] > 20
    # Every counted request is a chain /redirect/2 → /redirect/1 → /fast that ended in a
    # 200: the target served 2 redirects and 1 /fast per request, all over HTTP/2.
    assert stats["cache_hits"] == summary["ok"]  # the testing target's count of /fast
    assert stats["redirects"] == 2 * summary["ok"]
    assert stats["http2_requests"] == 3 * summary["ok"]
    assert stats["http1_requests"] == 0
    assert "httpx client (HTTP/2, follows redirects)" in run["progress"]


def test_without_follow_redirects_a_redirect_is_the_response(hypercorn_url: str, tmp_path: Path) -> None:
    run = _run(tmp_path, hypercorn_url, "", "/redirect/2")
    summary, stats = run["summary"], run["target_stats"]
    assert run["client"] == "fast" and run["config"]["http_version"] == "HTTP/1.1"
    # The 302 is the answer (a success: below 400); nothing follows it.
    assert summary["errors"] == 0 and summary["ok"] > 20
    assert stats["redirects"] == summary["ok"] and stats["cache_hits"] == 0
    assert stats["http1_requests"] == summary["ok"] and stats["http2_requests"] == 0


def test_a_redirect_loop_is_an_error_of_its_own(hypercorn_url: str, tmp_path: Path) -> None:
    # 25 redirects in a row: more than the 20 httpx follows.
    run = _run(tmp_path, hypercorn_url, "follow_redirects = true", "/redirect/25")
    summary = run["summary"]
    assert summary["ok"] == 0 and summary["errors"] > 0
    assert summary["errors_by_class"] == {"redirects": summary["errors"]}

"""The nginx balancer without nginx: the configuration it writes, the access-log lines it
reads back, the settings and addresses it refuses, and the leftover directories of killed
labs. (Real nginx: tests/e2e/test_balancer.py.)"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import psutil
import pytest

from lab.topology.balancer import (
    BALANCER_METHODS,
    AccessEntry,
    AccessLogReader,
    NginxBalancer,
    check_settings,
    normalize_upstream,
    normalize_upstreams,
    parse_access_line,
    render_main_config,
    render_upstreams,
)
from lab.topology.services import NGINX_DIR_PREFIX, OWNER_FILE, PG_DIR_PREFIX, remove_orphaned_dirs

TWO = ("127.0.0.1:8001", "127.0.0.1:8002")


def _upstream_block(conf: str) -> str:
    found = re.search(r"upstream lab_replicas \{(.*?)\}", conf, re.S)
    assert found, conf
    return found.group(1)


def test_main_config_keeps_every_file_nginx_writes_inside_its_directory(tmp_path: Path) -> None:
    d = tmp_path / "lab-nginx-x"
    conf = render_main_config(d, as_root=False)
    for line in ("daemon off;", "worker_processes 1;", "master_process on;"):
        assert line in conf
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path",
                      "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "include"):
        found = re.search(rf"^\s*{directive} \"([^\"]+)\"", conf, re.M)
        assert found, directive
        assert Path(found.group(1)).parent == d, (directive, found.group(1))
    # Every path in it, whatever the directive: nothing goes to /var/log/nginx or /etc/nginx.
    paths = re.findall(r"\"(/[^\"]*)\"", conf)
    assert paths and all(p.startswith(f"{d}/") for p in paths), paths
    assert "access_log off" not in conf  # every request is logged
    assert re.search(r"access_log \"[^\"]+\" lab_balancer buffer=64k flush=1s;", conf)
    assert ('log_format lab_balancer "$msec\\t$upstream_addr\\t$status\\t$request_time\\t'
            '$upstream_response_time') in conf
    # Client keep-alive is not cut short by nginx's default of 1000 requests.
    assert int(re.search(r"^\s*keepalive_requests (\d+);", conf, re.M).group(1)) >= 10**8  # type: ignore[union-attr]


def test_workers_stay_the_labs_user_only_when_it_is_root(tmp_path: Path) -> None:
    assert "user root root;" in render_main_config(tmp_path, as_root=True)
    # nginx ignores `user` (with a warning) unless started as root: not written then.
    assert "user " not in render_main_config(tmp_path, as_root=False)


def test_a_path_with_quotes_or_spaces_stays_one_nginx_string(tmp_path: Path) -> None:
    conf = render_main_config(tmp_path / 'a "b" c', as_root=False)
    assert 'pid "' + str(tmp_path) + '/a \\"b\\" c/nginx.pid";' in conf


@pytest.mark.parametrize(("method", "directive"), [
    ("round_robin", None),
    ("least_conn", "least_conn;"),
    ("random_two", "random two least_conn;"),
    ("hash", 'hash "$http_x_session" consistent;'),
    ("ip_hash", "ip_hash;"),
])
def test_each_method_writes_its_directive_before_keepalive(method: str, directive: str | None) -> None:
    key = "$http_x_session" if method == "hash" else None
    conf = render_upstreams(8000, TWO, method, key, 64)
    block = _upstream_block(conf)
    lines = [line.strip() for line in block.strip().splitlines()]
    assert "zone lab_replicas 256k;" in lines
    assert [line for line in lines if line.startswith("server ")] == [
        "server 127.0.0.1:8001;", "server 127.0.0.1:8002;"]
    methods = {"least_conn;", "random two least_conn;", "ip_hash;"}
    chosen = [line for line in lines if line in methods or line.startswith("hash ")]
    if directive is None:
        assert chosen == []  # nginx's default is weighted round-robin
    else:
        assert chosen == [directive]
        # nginx requires the method before keepalive.
        assert lines.index(directive) < lines.index("keepalive 64;")
    assert "keepalive_requests 1000000000;" in lines
    assert "listen 127.0.0.1:8000;" in conf
    assert "proxy_http_version 1.1;" in conf and 'proxy_set_header Connection "";' in conf
    assert "proxy_pass http://lab_replicas;" in conf
    assert set(BALANCER_METHODS) == {"round_robin", "least_conn", "random_two", "hash", "ip_hash"}


def test_keepalive_zero_opens_a_connection_per_request() -> None:
    block = _upstream_block(render_upstreams(8000, TWO, "least_conn", None, 0))
    assert "keepalive" not in block
    assert "keepalive 7;" in _upstream_block(render_upstreams(8000, TWO, "least_conn", None, 7))


def test_no_upstreams_answers_503_with_retry_after_and_no_group() -> None:
    conf = render_upstreams(8000, (), "least_conn", None, 64)
    assert "upstream " not in conf and "proxy_pass" not in conf  # nginx refuses an empty group
    assert "add_header Retry-After 1 always;" in conf
    assert re.search(r"return 503 ", conf)
    assert "listen 127.0.0.1:8000;" in conf


@pytest.mark.parametrize(("method", "key", "keepalive", "message"), [
    ("fastest", None, 64, "balancer method 'fastest': expected one of round_robin, least_conn, "
                          "random_two, hash, ip_hash"),
    ("hash", None, 64, "balancer method 'hash' needs a hash_key"),
    ("hash", "", 64, "balancer method 'hash' needs a hash_key"),
    ("hash", "$http_x; return 200", 64, "hash_key '$http_x; return 200': expected nginx variables"),
    ("hash", '$http_x"', 64, "hash_key '$http_x\"': expected nginx variables"),
    ("hash", "$http_x}", 64, "hash_key '$http_x}': expected nginx variables"),
    ("least_conn", "$http_x", 64, "hash_key is only for balancer method 'hash' (method is 'least_conn')"),
    ("round_robin", None, -1, "balancer keepalive -1: expected 0 (no upstream keep-alive) to 100000"),
])
def test_settings_nginx_would_not_take_are_refused_with_what_is_allowed(
        method: str, key: str | None, keepalive: int, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_settings(method, key, keepalive)
    assert str(raised.value).startswith(message)
    with pytest.raises(ValueError):
        NginxBalancer("/usr/sbin/nginx", method, key, keepalive)


def test_upstream_addresses_are_written_as_nginx_logs_them() -> None:
    assert normalize_upstream("127.0.0.1:8001") == "127.0.0.1:8001"
    assert normalize_upstream("http://127.0.0.1:8001/") == "127.0.0.1:8001"
    assert normalize_upstream("[::1]:8001") == "[::1]:8001"
    for bad in ("localhost:8001", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", ""):
        with pytest.raises(ValueError, match="expected IP:PORT"):
            normalize_upstream(bad)
    assert normalize_upstreams(["http://127.0.0.1:1", "127.0.0.1:2"]) == ("127.0.0.1:1", "127.0.0.1:2")
    with pytest.raises(ValueError, match="upstream 127.0.0.1:1 is listed twice"):
        normalize_upstreams(["127.0.0.1:1", "http://127.0.0.1:1"])
    with pytest.raises(ValueError, match="not one string"):
        normalize_upstreams("127.0.0.1:1")


def _line(addr: str = "127.0.0.1:8001", status: str = "200", req: str = "0.012",
          up: str = "0.011") -> str:
    return "\t".join(["1796655472.851", addr, status, req, up, "4242", "7", "3"])


def test_access_lines_become_entries() -> None:
    assert parse_access_line(_line()) == AccessEntry(
        t_unix=1796655472.851, upstream="127.0.0.1:8001", upstreams_tried=1, status=200,
        request_time_ms=pytest.approx(12.0), upstream_time_ms=pytest.approx(11.0),  # type: ignore[arg-type]
        worker_pid=4242, connection=7, connection_requests=3)
    # nginx retried another replica after a connection error: the last one answered.
    retried = parse_access_line(_line("127.0.0.1:8001, 127.0.0.1:8002", up="0.000, 0.004"))
    assert retried is not None
    assert (retried.upstream, retried.upstreams_tried) == ("127.0.0.1:8002", 2)
    assert retried.upstream_time_ms == pytest.approx(4.0)
    # No replica: the 503 of an empty list; or the group's name when none was usable.
    for none in ("-", "lab_replicas"):
        entry = parse_access_line(_line(none, "503", "0.000", "-"))
        assert entry is not None and entry.upstream is None and entry.upstreams_tried == 0
        assert entry.upstream_time_ms is None
    entry = parse_access_line(_line("127.0.0.1:8001, lab_replicas", "502", up="0.001, -"))
    assert entry is not None and (entry.upstream, entry.upstreams_tried) == ("127.0.0.1:8001", 1)
    assert entry.upstream_time_ms is None
    ipv6 = parse_access_line(_line("[::1]:8001"))
    assert ipv6 is not None and ipv6.upstream == "[::1]:8001"
    for foreign in ("", "hello", "x\t-\t200\t0.1\t-", "1.0\t-\tOK\t0.1\t-"):
        assert parse_access_line(foreign) is None


def test_the_log_reader_returns_each_line_once_and_waits_for_a_partly_written_one(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    reader = AccessLogReader(path)
    assert reader.take() == []  # nginx has not created it yet
    first, second = _line("127.0.0.1:1"), _line("127.0.0.1:2")
    path.write_text(first + "\n" + second[:10])
    assert [e.upstream for e in reader.take()] == ["127.0.0.1:1"]
    assert reader.take() == []
    with path.open("a") as f:
        f.write(second[10:] + "\n" + "garbage\n")
    assert [e.upstream for e in reader.take()] == ["127.0.0.1:2"]
    assert reader.take() == []


async def test_a_balancer_not_started_has_a_url_no_log_and_stops_quietly() -> None:
    balancer = NginxBalancer("/usr/sbin/nginx", "least_conn")
    assert balancer.url == f"http://127.0.0.1:{balancer.port}" and 0 < balancer.port < 65536
    assert balancer.pid is None and balancer.upstreams == () and balancer.worker_pids() == []
    assert balancer.take_log() == []
    await balancer.stop()
    await balancer.stop()


def test_leftover_nginx_directories_of_dead_labs_are_removed(tmp_path: Path) -> None:
    me = {"pid": os.getpid(), "started_at_unix": psutil.Process().create_time(),
          "host": socket.gethostname()}
    dead = {**me, "pid": 4194305}  # above Linux's highest pid: no such process, ever
    for name, owner in ((f"{NGINX_DIR_PREFIX}live", me), (f"{NGINX_DIR_PREFIX}dead", dead),
                        (f"{PG_DIR_PREFIX}dead", dead)):
        (tmp_path / name / "client_body").mkdir(parents=True)
        (tmp_path / name / OWNER_FILE).write_text(json.dumps(owner))
    removed = remove_orphaned_dirs(tmp_path)
    assert sorted(p.name for p in removed) == [f"{NGINX_DIR_PREFIX}dead", f"{PG_DIR_PREFIX}dead"]
    assert [p.name for p in tmp_path.iterdir()] == [f"{NGINX_DIR_PREFIX}live"]

"""A real generator worker refuses a line that is not of its protocol: exit code 2 and one
line on stderr naming the field, rather than a traceback or a silently ignored command."""

from __future__ import annotations

import subprocess
import sys

from lab.load.wire import Ready, WorkerConfig, decode_report, encode
from tests.conftest import REPO


def _worker(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "lab.load.worker"], input=stdin, cwd=REPO,
                          capture_output=True, timeout=60)


def test_a_malformed_config_ends_the_worker_with_one_line() -> None:
    done = _worker(b'{"base_url": "http://127.0.0.1:9"}\n')
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert lines == [lines[0]] and "malformed config: field 'load': field required" in lines[0], lines
    assert done.stdout == b""  # never said it was ready


def test_a_malformed_command_ends_the_worker_with_one_line() -> None:
    config = encode(WorkerConfig(base_url="http://127.0.0.1:9", load={"vus": 1, "duration": 1.0,
                                                                      "requests": [{"path": "/"}]}))
    done = _worker(config + b'{"cmd": "start", "t0": "soon"}\n')
    assert done.returncode == 2, done.stderr
    (line,) = done.stdout.splitlines()
    ready = decode_report(line)
    assert isinstance(ready, Ready) and ready.pid > 0 and ready.host
    text = done.stderr.decode().strip()
    assert "\n" not in text and "malformed command: field 't0': input should be a valid number" in text, text

"""The access log's line names its logger, ``lucidrec.access``, and nothing else.

Litestar's default format also wrote the emitting module, ``security``, so the line
read as a "security" log. The app runs in a child process: its logging configuration
is process-wide, and the line is written by a listener thread to stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import logging
from litestar.testing import TestClient
from api.app import create_app
from configs import load_settings

client = TestClient(create_app(load_settings("test", env={})))
assert client.get("/health", headers={"X-Request-ID": "probe-1"}).status_code == 200
logging.shutdown()
"""


def test_the_access_log_line_is_named_lucidrec_access() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if '"probe-1"' in line]
    assert len(lines) == 1, done.stderr[-2000:]
    level, _time, name, message = lines[0].split(" - ", 3)
    assert (level, name) == ("INFO", "lucidrec.access")
    assert json.loads(message)["path"] == "/health"
    assert "security" not in lines[0]

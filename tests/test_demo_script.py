"""``scripts/demo.sh`` as a user runs it (with the suite's interpreter, Redis and a fresh
SQLite file): the admin URL it prints is one its server answers on, and a re-run keeps
worker counts edited since."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.common import ROOT

pytestmark = pytest.mark.slow

READY = "demo: starting the pool"


@contextlib.contextmanager
def running_demo(env: dict[str, str]):
    """The demo until its pool starts: yields its output so far; stops the whole group."""
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(READY) or time.monotonic() > deadline:
                break
        if not any(line.startswith(READY) for line in lines):
            pytest.fail("the demo did not start:\n" + "\n".join(lines[-20:]))
        yield lines
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def demo_counts(database: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return dict(db.execute("SELECT queues, count FROM resque_pool_workercount"))


# The queues the testproject's TASKS backend pushes to, in priority order (docs/tasks.md).
TASK_QUEUES = "default.high,default,default.low"


def test_demo_serves_the_url_it_prints_and_keeps_edited_counts(resque, tmp_path):
    database = str(tmp_path / "demo.sqlite3")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    env = resque.env(
        DATABASE_URL=f"sqlite:///{database}",
        DEMO_PYTHON=sys.executable,
        DEMO_PORT=str(taken_port),
    )
    with taken, running_demo(env) as lines:
        output = "\n".join(lines)
        assert f"port {taken_port} is in use" in output
        [url] = re.findall(r"admin at (http://127\.0\.0\.1:\d+/admin/)", output)
        assert f":{taken_port}/" not in url
        with urllib.request.urlopen(url + "login/", timeout=10) as page:
            assert "Django" in page.read().decode()
    assert demo_counts(database) == {"demo": 2, "high,demo": 1, TASK_QUEUES: 1}

    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE resque_pool_workercount SET count = 5 WHERE queues = 'demo'")
    env["DEMO_PORT"] = "0"  # any free port
    with running_demo(env) as lines:
        assert "demo: keeping the worker counts already in the database" in lines
    assert demo_counts(database) == {"demo": 5, "high,demo": 1, TASK_QUEUES: 1}

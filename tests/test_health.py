"""The health probes against real pools: ``python -m resque_pool.health`` (liveness, no
Django) and ``manage.py resque_health`` (liveness, and ``--ready``). Liveness is the age of
the file the manager's loop touches: a stopped loop is not alive, a Redis outage is."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from resque_pool import health
from tests.support.common import ROOT, wait_until
from tests.support.pool_fixtures import write
from tests.support.redis_server import free_port, spawn_redis_server


def light_probe(resque, *args: str) -> subprocess.CompletedProcess:
    # Only what a container's probe would have: no DJANGO_SETTINGS_MODULE at all.
    env = {k: v for k, v in resque.env().items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "resque_pool.health", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def answers(result: subprocess.CompletedProcess) -> tuple[int, str]:
    """The exit status and the one line on stdout (exactly one line, nothing on stderr)."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result
    assert result.stderr == "", result
    return result.returncode, lines[0]


def unique_app() -> str:
    return f"health-{uuid.uuid4().hex[:8]}"


def start(start_pool, tmp_path, appname: str, config: str = "demo: 2\n", *args: str, env=None):
    config_file = write(tmp_path / "pool.yml", config)
    return start_pool("-c", str(config_file), "--appname", appname, *args, env=env)


def test_a_running_pool_is_alive_then_ready_and_gone_once_it_stops(
    start_pool, tmp_path, resque, run_manage
):
    app = unique_app()
    pool = start(start_pool, tmp_path, app)
    pool.wait_for_workers({"demo": 2})

    def ready():
        result = run_manage("resque_health", "--appname", app, "--ready")
        return answers(result) if result.returncode == 0 else None

    code, line = wait_until(ready, 30, 0.2, lambda: f"a ready pool (log:\n{pool.log()})")
    assert line == f"ready: pool {pool.pid} ({app}): 2 workers registered, Redis answers"
    code, line = answers(light_probe(resque, "--appname", app))
    assert code == health.ALIVE
    assert line.startswith(f"alive: main loop came round: pool {pool.pid} ({app}) ")
    code, line = answers(run_manage("resque_health", "--appname", app))
    assert (code, line.split(":")[0]) == (health.ALIVE, "alive")

    pool.signal(signal.SIGQUIT)
    pool.wait_exit()
    # The manager removed its file on the way out: there is no such pool any more.
    code, line = answers(light_probe(resque, "--appname", app))
    assert (code, line) == (health.NO_POOL, f"no pool: no pool of app {app} on this host")


def test_the_pidfile_names_the_pool(start_pool, tmp_path, resque, run_manage):
    pidfile = tmp_path / "run" / "pool.pid"
    pool = start(start_pool, tmp_path, unique_app(), "demo: 1\n", "--pidfile", str(pidfile))
    pool.wait_for_workers({"demo": 1})
    code, line = answers(light_probe(resque, "--pidfile", str(pidfile)))
    assert code == health.ALIVE, line
    code, line = wait_until(
        lambda: (
            (r := answers(run_manage("resque_health", "--pidfile", str(pidfile), "--ready")))
            and r[0] == 0
            and r
        ),
        30,
        0.2,
        "ready",
    )
    assert line.startswith(f"ready: pool {pool.pid} (")

    # A pidfile left by a manager that died without removing it (SIGKILL).
    pool.signal(signal.SIGKILL)
    pool.wait_exit()
    assert pidfile.exists()
    code, line = answers(light_probe(resque, "--pidfile", str(pidfile)))
    assert code == health.NOT_ALIVE
    assert line == f"not alive: pool {pool.pid} ({pidfile}) is not running"


def test_a_main_loop_that_stopped_is_not_alive(start_pool, tmp_path, resque):
    app = unique_app()
    pool = start(start_pool, tmp_path, app, "demo: 1\n")
    pool.wait_for_workers({"demo": 1})
    assert answers(light_probe(resque, "--appname", app, "--max-age", "2"))[0] == health.ALIVE
    pool.signal(signal.SIGSTOP)  # a deadlocked or stuck manager, as far as its loop goes
    try:
        time.sleep(2.5)
        code, line = answers(light_probe(resque, "--appname", app, "--max-age", "2"))
        assert code == health.NOT_ALIVE
        assert line.startswith(f"not alive: pool {pool.pid} ({app}): its main loop last came")
        assert line.endswith("(--max-age 2)")
    finally:
        pool.signal(signal.SIGCONT)
    wait_until(
        lambda: light_probe(resque, "--appname", app, "--max-age", "2").returncode == 0,
        10,
        0.2,
        "alive again after SIGCONT",
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server to stop")
def test_a_redis_outage_leaves_the_pool_alive_but_not_ready(start_pool, tmp_path, run_manage):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = spawn_redis_server(port, str(tmp_path))
    app = unique_app()
    try:
        pool = start(start_pool, tmp_path, app, "demo: 1\n", env={"RESQUE_REDIS_URL": url})
        pool.wait_for_workers({"demo": 1})
        probe = ("resque_health", "--appname", app, "--max-age", "3")
        env = {"RESQUE_REDIS_URL": url}
        wait_until(lambda: run_manage(*probe, "--ready", env=env).returncode == 0, 30, 0.2, "ready")
        server.terminate()
        server.wait(10)
        # Longer than --max-age, with the manager meeting the outage at every poll.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            code, line = answers(run_manage(*probe, env=env))
            assert code == health.ALIVE, line
            time.sleep(0.5)
        code, line = answers(run_manage(*probe, "--ready", env=env))
        assert (code, line) == (
            health.NOT_ALIVE,
            "not ready: Redis does not answer (ConnectionError)",
        )
        # The manager met the outage too: its poll for the idle workers comes every
        # INTERVAL; its state is published on change and refreshed every 10 s.
        assert "could not look at Redis for idle workers" in pool.log()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


def test_not_ready_while_a_configured_worker_is_missing(start_pool, tmp_path, run_manage):
    # Workers of a list named "crash" die at start (tests/support/processes.py): the pool
    # keeps trying with backoff and never runs the worker its counts ask for.
    app = unique_app()
    pool = start(start_pool, tmp_path, app, "demo: 1\ncrash: 1\n")
    pool.wait_for_log("crash")
    code, line = wait_until(
        lambda: (
            (r := answers(run_manage("resque_health", "--appname", app, "--ready")))
            and "runs" in r[1]
            and r
        ),
        30,
        0.2,
        "not ready",
    )
    assert code == health.NOT_ALIVE
    assert line.startswith(f"not ready: pool {pool.pid} ({app}) runs ")
    assert line.endswith(" of 2 workers")
    assert answers(run_manage("resque_health", "--appname", app))[0] == health.ALIVE


def test_no_such_pool_and_bad_input(resque, run_manage, tmp_path):
    missing = tmp_path / "none.pid"
    code, line = answers(light_probe(resque, "--pidfile", str(missing)))
    assert (code, line) == (health.NO_POOL, f"no pool: no pidfile at {missing}")
    garbage = write(tmp_path / "garbage.pid", "not a pid\n")
    code, line = answers(light_probe(resque, "--pidfile", str(garbage)))
    assert (code, line) == (health.NO_POOL, f"no pool: pidfile {garbage} holds no pid")
    # A live process that is no pool manager (this test's own process).
    other = write(tmp_path / "other.pid", f"{os.getpid()}\n")
    code, line = answers(run_manage("resque_health", "--pidfile", str(other)))
    assert code == health.NO_POOL
    assert line == f"no pool: pid {os.getpid()} from {other} is not a pool manager of this user"
    code, line = answers(run_manage("resque_health", "--appname", "no-such-app", "--ready"))
    assert (code, line) == (health.NO_POOL, "no pool: no pool of app no-such-app on this host")
    for args in (["--max-age", "-1"], ["--max-age", "soon"], ["--pidfile", "x", "--appname", "y"]):
        for result in (light_probe(resque, *args), run_manage("resque_health", *args)):
            assert result.returncode == 2, result
            assert result.stdout == ""
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and ": error: " in lines[0], result.stderr
            assert "Traceback" not in result.stderr

"""Failure backends and the ``job_failure`` signal with real pools: Sentry (sentry-sdk, a
transport that sends from a thread to a file, no network) gets each failure once, from the
process that wrote it, after a backend that raises; retried attempts reach the signal
only; a failure whose write Redis refused for a while is sent once, when it is written."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from resque_pool import enqueue
from tests.support.common import ROOT, wait_until
from tests.support.pool_fixtures import first_failure, processing_worker, write
from tests.support.processes import cmdline, parent_of
from tests.support.redis_server import free_port, spawn_redis_server

pytest.importorskip("sentry_sdk")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Tracker:
    """The files the pool's Sentry transport and signal receiver write to."""

    def __init__(self, tmp_path: Path) -> None:
        self.events_path = tmp_path / "sentry-events.jsonl"
        self.signals_path = tmp_path / "signals.jsonl"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "tests.support.sentry_settings",
            "SENTRY_TEST_EVENTS": str(self.events_path),
            "SENTRY_TEST_SIGNALS": str(self.signals_path),
            **extra,
        }

    def events(self, count: int, pool, timeout: float = 30) -> list[dict]:
        """Wait for ``count`` events, then make sure no other one follows."""
        wait_until(
            lambda: len(read_lines(self.events_path)) >= count,
            timeout,
            0.1,
            lambda: f"{count} events, found {read_lines(self.events_path)} (log:\n{pool.log()})",
        )
        time.sleep(1.0)  # longer than the transport's send delay
        found = read_lines(self.events_path)
        assert len(found) == count, found
        return found

    def signals(self) -> list[dict]:
        return read_lines(self.signals_path)


def tags(event: dict) -> dict:
    found = event["event"]["tags"]
    return dict(found) if isinstance(found, dict) else {k: v for k, v in found}


def exception_of(event: dict) -> tuple[str, str]:
    value = event["event"]["exception"]["values"][-1]
    return value["type"], value["value"]


@pytest.fixture
def tracker(tmp_path):
    return Tracker(tmp_path)


def test_the_job_child_sends_once_after_a_backend_that_raises(
    start_pool, tmp_path, resque, tracker
):
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config), env=tracker.env())
    (worker_pid,) = pool.wait_for_workers({"demo": 1})
    enqueue("Fail", "to sentry")
    entry = first_failure(resque, pool)
    (event,) = tracker.events(1, pool)

    assert exception_of(event) == ("RuntimeError", "to sentry")
    assert tags(event) == {"queue": "demo", "job_class": "Fail", "outcome": "failed"}
    assert event["event"]["contexts"]["job"]["worker"] == entry["worker"]
    # Sent (and flushed before os._exit) by the job child: neither the worker nor the manager.
    assert event["pid"] not in (worker_pid, pool.pid)
    # The failed list first, whatever the broken backend did.
    assert resque.client.llen(resque.key("failed")) == 1
    assert (entry["exception"], entry["error"]) == ("RuntimeError", "to sentry")
    assert (
        "failure backend tests.support.sentry_backend.Broken raised; the failure is in the "
        "failed list all the same" in pool.log()
    )
    (sent,) = tracker.signals()
    assert sent == {
        "pid": event["pid"],
        "job_class": "Fail",
        "args": ["to sentry"],
        "queue": "demo",
        "worker": entry["worker"],
        "attempt": 1,
        "outcome": "failed",
        "exception": "RuntimeError",
        "entry": True,
    }


def test_dirty_exits_are_sent_by_the_worker_and_by_the_manager(
    start_pool, tmp_path, resque, tracker
):
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config), env=tracker.env())
    (worker_pid,) = pool.wait_for_workers({"demo": 1})

    # A job child killed: its worker records the DirtyExit and sends it.
    enqueue("Sleep", 60)
    wait_until(lambda: processing_worker(resque), 20, 0.1, "a job in flight")
    # The worker's title names its job child (another child may come and go: the first
    # job's prctl look-up runs ldconfig).
    forked = wait_until(
        lambda: re.search(r"Forked (\d+) at", cmdline(worker_pid)), 20, 0.05, "the job child"
    )
    os.kill(int(forked.group(1)), signal.SIGKILL)
    (event,) = tracker.events(1, pool)
    assert event["pid"] == worker_pid
    kind, text = exception_of(event)
    assert kind == "DirtyExit" and text.startswith("Child process received unhandled signal")

    # The worker killed mid-job: the manager finds it dead and sends.
    enqueue("Sleep", 60)
    wait_until(lambda: processing_worker(resque), 20, 0.1, "a job in flight")
    generation = parent_of(worker_pid)  # the worker's manager
    os.kill(worker_pid, signal.SIGKILL)
    first, second = tracker.events(2, pool)
    # Its manager is the pool's generation (pool/master.py), a child of the pool's pid.
    assert second["pid"] == generation and parent_of(generation) == pool.pid
    kind, text = exception_of(second)
    assert kind == "DirtyExit" and "did not gracefully exit" in text
    assert resque.client.llen(resque.key("failed")) == 2
    assert [s["pid"] for s in tracker.signals()] == [worker_pid, generation]


def test_retried_attempts_reach_the_signal_only(start_pool, tmp_path, resque, tracker):
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config), env=tracker.env())
    pool.wait_for_workers({"demo": 1})
    enqueue("RetryTwice", "t1", queue="demo")  # registered in the pool only
    (event,) = tracker.events(1, pool)
    assert tags(event)["outcome"] == "gave up"
    assert event["event"]["contexts"]["job"]["attempt"] == 3
    sent = tracker.signals()
    assert [(s["outcome"], s["attempt"], s["entry"]) for s in sent] == [
        ("retried", 1, False),
        ("retried", 2, False),
        ("gave up", 3, True),
    ]
    assert {s["args"][0] for s in sent} == {"t1"}
    assert resque.client.llen(resque.key("failed")) == 1


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs its own redis-server")
def test_a_failure_written_after_refused_writes_is_sent_once(start_pool, tmp_path, tracker):
    import redis

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = spawn_redis_server(port, str(tmp_path))
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        wait_until(lambda: _pings(client), 10, 0.05, "redis-server")
        config = write(tmp_path / "pool.yml", "demo: 1\n")
        namespace = "outage"
        env = tracker.env(RESQUE_REDIS_URL=url, RESQUE_NAMESPACE=namespace)
        pool = start_pool("-c", str(config), env=env)
        pool.wait_for_workers({"demo": 1})
        wait_until(lambda: client.smembers(f"{namespace}:workers"), 20, 0.1, "registered")
        payload = json.dumps({"class": "FailAfter", "args": [1.5, "during refusals"]})
        client.sadd(f"{namespace}:queues", "demo")
        client.rpush(f"{namespace}:queue:demo", payload)
        wait_until(
            lambda: any(
                client.get(f"{namespace}:worker:{w}")
                for w in client.smembers(f"{namespace}:workers")
            ),
            20,
            0.05,
            "the job in flight",
        )
        client.config_set("min-replicas-to-write", 1)  # every write refused: NOREPLICAS
        try:
            pool.wait_for_log("could not record the failure of", timeout=20)
            time.sleep(2.5)  # the child tries again every second meanwhile
            assert not tracker.signals() and not read_lines(tracker.events_path)
        finally:
            client.config_set("min-replicas-to-write", 0)
        (event,) = tracker.events(1, pool)
        assert exception_of(event) == ("RuntimeError", "during refusals")
        assert len(tracker.signals()) == 1
        assert client.llen(f"{namespace}:failed") == 1
    finally:
        client.close()
        server.kill()
        server.wait(10)


def _pings(client) -> bool:
    import redis

    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_the_docs_show_the_tested_sentry_backend():
    """docs/failures.md's example is the code the tests above run."""
    source = (ROOT / "tests/support/sentry_backend.py").read_text()
    start = "# --- the example of docs/failures.md, from here to the end marker ---\n"
    example = source.split(start)[1].split("# --- end of the example ---")[0]
    docs = (ROOT / "docs/failures.md").read_text()
    for block in example.strip().split("\n\n\n"):
        assert block.strip() in docs, block


def test_the_checks_keep_the_failed_list_first_and_refuse_what_is_no_backend(settings):
    from resque_pool.checks import check_settings

    def errors() -> list[str]:
        return [m.msg for m in check_settings(None) if m.id == "resque_pool.E009"]

    assert errors() == []
    settings.RESQUE_FAILURE_BACKENDS = ["tests.support.sentry_backend.Sentry"]
    assert errors() == [
        "RESQUE_FAILURE_BACKENDS must start with "
        "'resque_pool.failure_backends.RedisFailedList', not 'tests.support.sentry_backend.Sentry'."
    ]
    settings.RESQUE_FAILURE_BACKENDS = [
        "resque_pool.failure_backends.RedisFailedList",
        "myapp.nowhere.Backend",
        "resque_pool.failure_backends.Failure",
    ]
    found = errors()
    assert len(found) == 2
    assert found[0].startswith(
        "RESQUE_FAILURE_BACKENDS: 'myapp.nowhere.Backend' cannot be imported"
    )
    assert found[1] == (
        "RESQUE_FAILURE_BACKENDS: 'resque_pool.failure_backends.Failure' is not a subclass "
        "of resque_pool.failure_backends.Backend"
    )

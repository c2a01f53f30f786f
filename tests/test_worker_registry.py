"""Unregistering, pruning dead workers and the manager's cleanup of a worker that died."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resque_pool import hooks
from resque_pool.resque import wire
from resque_pool.resque.pruning import prune_dead_workers, resque_process_alive
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.worker_records import register, unregister
from resque_pool.worker.loop import cleanup_dead_worker
from tests.support.common import wait_until

HOST = socket.gethostname()
PAYLOAD = {"class": "Record", "args": ["in-flight"]}


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []

    def start(*argv: str) -> subprocess.Popen:
        process = subprocess.Popen(argv)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(10)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def fake_worker(resque, worker_id, job=True, heartbeat_age=None, queue="demo"):
    """Register a worker as a running one would, optionally holding a job."""
    register(worker_id)
    client = resque.client
    client.set(resque.key("stat", "processed", worker_id), 3)
    client.set(resque.key("stat", "failed", worker_id), 1)
    if job:
        data = {"queue": queue, "run_at": wire.run_at(), "payload": PAYLOAD}
        client.set(resque.key("worker", worker_id), wire.dumps(data))
    if heartbeat_age is not None:
        now, _ = client.time()
        client.hset(resque.key("workers:heartbeat"), worker_id, wire.heartbeat(now - heartbeat_age))


def worker_keys(resque, worker_id) -> list[str]:
    keys = [k for k in resque.client.keys(resque.key("*")) if worker_id in k]
    if resque.client.sismember(resque.key("workers"), worker_id):
        keys.append("workers member")
    if resque.client.hexists(resque.key("workers:heartbeat"), worker_id):
        keys.append("heartbeat field")
    return keys


def failure_entries(resque) -> list[dict]:
    return [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]


def test_unregister_fails_the_in_flight_job_and_removes_every_key(resque):
    worker_id = f"{HOST}:{dead_pid()}:demo"
    fake_worker(resque, worker_id, heartbeat_age=0)
    assert unregister(worker_id) is True
    assert worker_keys(resque, worker_id) == []
    [entry] = failure_entries(resque)
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["error"] == "Job still being processed"
    assert entry["backtrace"] == []
    assert entry["payload"] == PAYLOAD
    assert entry["worker"] == worker_id
    assert entry["queue"] == "demo"
    assert resque.client.get(resque.key("stat", "failed")) is None  # DirtyExit: not counted


def test_cleanup_dead_worker_records_dirty_exit(resque):
    worker_id = f"{HOST}:{dead_pid()}:demo"
    fake_worker(resque, worker_id, heartbeat_age=0)
    assert cleanup_dead_worker(worker_id) is True
    assert worker_keys(resque, worker_id) == []
    [entry] = failure_entries(resque)
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["error"] == f"Worker {worker_id} did not gracefully exit while processing Record"
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    assert cleanup_dead_worker(worker_id) is False  # nothing left to clean


def test_cleanup_dead_worker_can_requeue_instead(resque):
    worker_id = f"{HOST}:{dead_pid()}:demo"
    fake_worker(resque, worker_id)
    assert cleanup_dead_worker(worker_id, requeue=True) is True
    assert failure_entries(resque) == []
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [wire.dumps(PAYLOAD)]
    assert resque.client.smembers(resque.key("queues")) == {"demo"}
    assert worker_keys(resque, worker_id) == []


def test_cleanup_of_an_idle_worker_records_nothing(resque):
    worker_id = f"{HOST}:{dead_pid()}:demo"
    fake_worker(resque, worker_id, job=False)
    assert cleanup_dead_worker(worker_id) is True
    assert failure_entries(resque) == []
    assert worker_keys(resque, worker_id) == []


def test_cleanup_runs_on_failure_hooks_of_registered_jobs(resque):
    from resque_pool import job

    seen = []

    @job(queue="demo", name="RegistryTestHooked")
    class Hooked:
        @staticmethod
        def perform(token):
            pass

        @staticmethod
        def on_failure_note(error, token):
            seen.append((type(error).__name__, token))

    worker_id = f"{HOST}:{dead_pid()}:demo"
    register(worker_id)
    data = {
        "queue": "demo",
        "run_at": wire.run_at(),
        "payload": {"class": Hooked.job_definition.name, "args": ["t"]},
    }
    resque.client.set(resque.key("worker", worker_id), wire.dumps(data))
    cleanup_dead_worker(worker_id)
    assert seen == [("DirtyExit", "t")]


def test_prune_expired_heartbeat_anywhere(resque):
    me = f"{HOST}:1:demo"
    stale = "otherhost:123:mail"
    fresh = "otherhost:124:mail"
    fake_worker(resque, stale, heartbeat_age=301)
    fake_worker(resque, fresh, heartbeat_age=10)
    # An id that only has a heartbeat (Resque #1751) is pruned too.
    now, _ = resque.client.time()
    resque.client.hset(
        resque.key("workers:heartbeat"), "otherhost:125:x", wire.heartbeat(now - 999)
    )
    prune_dead_workers(me, QueueList("demo"))

    assert worker_keys(resque, stale) == []
    assert worker_keys(resque, "otherhost:125:x") == []
    assert "workers member" in worker_keys(resque, fresh)
    [entry] = failure_entries(resque)
    assert entry["exception"] == "Resque::PruneDeadWorkerDirtyExit"
    assert entry["error"] == f"Worker {stale} did not gracefully exit while processing Record"
    assert entry["worker"] == stale
    assert resque.client.get(resque.key("pruning_dead_workers_in_progress")) == me
    assert 0 < resque.client.ttl(resque.key("pruning_dead_workers_in_progress")) <= 60


def test_prune_same_host_dead_pid_with_same_queues(resque, processes):
    me = f"{HOST}:1:demo,mail"
    dead_same = f"{HOST}:{dead_pid()}:mail,demo"  # same set, other order
    dead_other_queues = f"{HOST}:{dead_pid()}:other"
    dead_other_host = f"elsewhere:{dead_pid()}:demo,mail"
    recycled = f"{HOST}:{processes('sleep', '30').pid}:demo,mail"  # alive, but not resque
    alive = processes(
        sys.executable,
        "-c",
        "import setproctitle, time; setproctitle.setproctitle('resque-0.1.0: Waiting for demo');"
        " time.sleep(30)",
    )
    wait_until(lambda: b"resque-0.1.0" in Path(f"/proc/{alive.pid}/cmdline").read_bytes())
    live = f"{HOST}:{alive.pid}:demo,mail"
    for worker_id in (dead_same, dead_other_queues, dead_other_host, recycled, live):
        fake_worker(resque, worker_id, job=worker_id == dead_same)

    prune_dead_workers(me, QueueList("demo,mail"))

    assert worker_keys(resque, dead_same) == []
    assert worker_keys(resque, recycled) == []
    for kept in (dead_other_queues, dead_other_host, live):
        assert "workers member" in worker_keys(resque, kept), kept
    [entry] = failure_entries(resque)
    assert (entry["exception"], entry["error"]) == (
        "Resque::DirtyExit",
        "Job still being processed",
    )
    assert entry["worker"] == dead_same


def test_prune_with_star_takes_any_queue_set_on_this_host(resque):
    other = f"{HOST}:{dead_pid()}:whatever"
    fake_worker(resque, other, job=False)
    prune_dead_workers(f"{HOST}:1:*", QueueList("*"))
    assert worker_keys(resque, other) == []


def test_prune_skips_when_another_worker_holds_the_lock(resque):
    other = f"{HOST}:{dead_pid()}:demo"
    fake_worker(resque, other, job=False)
    resque.client.set(resque.key("pruning_dead_workers_in_progress"), "someone", ex=60)
    prune_dead_workers(f"{HOST}:1:demo", QueueList("demo"))
    assert "workers member" in worker_keys(resque, other)


def test_prune_leaves_unreadable_heartbeats_alone(resque):
    resque.client.hset(resque.key("workers:heartbeat"), "x:1:demo", "not a time")
    prune_dead_workers(f"{HOST}:1:demo", QueueList("demo"))
    assert resque.client.hget(resque.key("workers:heartbeat"), "x:1:demo") == "not a time"


def test_process_liveness(processes):
    assert resque_process_alive(dead_pid()) is False
    assert resque_process_alive(processes("sleep", "30").pid) is False


def test_worker_prunes_at_startup_before_hooks_and_registration(resque):
    from resque_pool.worker.loop import Worker

    other = f"{HOST}:{dead_pid()}:demo"
    fake_worker(resque, other)
    seen = []

    def before_first_fork(worker):
        seen.append(worker_keys(resque, other))

    hooks.register("before_first_fork", before_first_fork)
    try:
        Worker("demo", interval=0, fork_per_job=False).work()
    finally:
        hooks.unregister("before_first_fork", before_first_fork)
    assert seen == [[]]
    assert [e["error"] for e in failure_entries(resque)] == ["Job still being processed"]


def test_heartbeat_thread_beats_from_server_time_until_stopped(resque):
    from resque_pool.worker.heartbeat import Heartbeat

    worker_id = f"{HOST}:1:demo"
    field = resque.key("workers:heartbeat")
    resque.client.hset(field, worker_id, "stale value")
    heartbeat = Heartbeat(worker_id, interval=0.2)
    heartbeat.start()
    try:
        value = wait_until(
            lambda: (
                resque.client.hget(field, worker_id) != "stale value"
                and resque.client.hget(field, worker_id)
            )
        )
        now, _ = resque.client.time()
        assert abs(wire.parse_time(value).timestamp() - now) <= 2
        resque.client.hset(field, worker_id, "overwritten")
        wait_until(lambda: resque.client.hget(field, worker_id) != "overwritten", timeout=10)
    finally:
        heartbeat.stop()
    resque.client.hdel(field, worker_id)
    time.sleep(0.5)
    assert resque.client.hget(field, worker_id) is None  # the thread stopped

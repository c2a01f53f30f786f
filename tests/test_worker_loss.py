"""The loss policy: a job whose process died is a DirtyExit failure (Resque's behaviour) or,
with RESQUE_REQUEUE_DIRTY_JOBS, its exact bytes go back to the head of its queue, at most
RESQUE_MAX_INTERRUPTIONS times in all; ``@job(requeue_on_loss=False)`` opts out."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

from resque_pool import job
from resque_pool.resque import reserve, wire
from resque_pool.resque.pruning import cleanup_dead_worker, prune_dead_workers
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.worker_records import register
from resque_pool.worker.loop import Worker
from tests.support.common import wait_until

HOST = socket.gethostname()


@job(queue="loss", name="LossTestOnce", requeue_on_loss=False)
class Once:
    @staticmethod
    def perform(token):
        pass


def dead_id(queues: str = "loss") -> str:
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{HOST}:{process.pid}:{queues}"


def take(resque, worker_id: str, raw: str | bytes, queue: str = "loss") -> None:
    """Push ``raw`` and reserve it as ``worker_id`` would, then let the worker 'die'."""
    register(worker_id)
    redis.Redis.from_url(resque.url).rpush(resque.key("queue", queue), raw)
    assert reserve.reserve(worker_id, [queue]) is not None


def entries(resque) -> list[dict]:
    return [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]


def queue(resque, name: str = "loss") -> list[str]:
    return resque.client.lrange(resque.key("queue", name), 0, -1)


def test_requeue_pushes_the_exact_bytes_to_the_head(resque, settings):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    raw = '{"class":"Archive","args":[1.0e+20,"é"],"id":"x"}'  # Ruby's float, an extra key
    worker_id = dead_id()
    take(resque, worker_id, raw)
    resque.client.rpush(resque.key("queue", "loss"), "next-in-line")
    assert cleanup_dead_worker(worker_id) is True
    assert queue(resque) == [raw, "next-in-line"]
    assert resque.client.smembers(resque.key("queues")) == {"loss"}
    assert resque.client.llen(resque.key("wakeup", "loss")) == 1  # an idle worker takes it now
    assert entries(resque) == []
    assert not resque.client.exists(resque.key("worker", worker_id))


def test_bytes_that_are_not_json_are_requeued_exactly(resque, settings):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    raw = b"\xff\x00 not json"
    worker_id = dead_id()
    take(resque, worker_id, raw)
    assert cleanup_dead_worker(worker_id) is True
    raw_client = redis.Redis.from_url(resque.url)
    assert raw_client.lrange(resque.key("queue", "loss"), 0, -1) == [raw]
    assert not raw_client.exists(resque.key("worker-raw", worker_id))


def test_default_is_resques_dirty_exit_with_the_payload_kept(resque):
    raw = b"\xff not json"
    worker_id = dead_id()
    take(resque, worker_id, raw)
    assert cleanup_dead_worker(worker_id) is True
    [entry_raw] = redis.Redis.from_url(resque.url).lrange(resque.key("failed"), 0, -1)
    entry = json.loads(entry_raw.decode("utf-8", "surrogateescape"))
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["payload"].encode("utf-8", "surrogateescape") == raw
    assert queue(resque) == []
    assert not resque.client.exists(resque.key("wakeup", "loss"))  # nothing to wake for
    assert not resque.client.exists(resque.key("worker-raw", worker_id))


def test_the_interruption_that_reaches_the_maximum_is_a_failure(resque, settings):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    settings.RESQUE_MAX_INTERRUPTIONS = 3
    raw = wire.job_payload("Archive", ["poison"])
    for _ in range(2):
        worker_id = dead_id()
        take(resque, worker_id, raw)
        resque.client.lpop(resque.key("queue", "loss"))  # nothing else there
        resque.client.rpush(resque.key("queue", "loss"), raw)
        cleanup_dead_worker(worker_id)
        assert queue(resque) == [raw, raw]
        resque.client.delete(resque.key("queue", "loss"))
    worker_id = dead_id()
    take(resque, worker_id, raw)
    cleanup_dead_worker(worker_id)
    assert queue(resque) == []
    [entry] = entries(resque)
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["error"].endswith("(interrupted 3 times, not requeued again)")
    ttl = resque.client.ttl(resque.key("interruptions", _digest(raw)))
    assert 0 < ttl <= 24 * 3600


def _digest(raw: str) -> str:
    import hashlib

    return hashlib.sha1(raw.encode()).hexdigest()


def test_a_job_can_opt_out(resque, settings):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    worker_id = dead_id()
    take(resque, worker_id, wire.job_payload("LossTestOnce", ["x"]))
    cleanup_dead_worker(worker_id)
    assert queue(resque) == []
    [entry] = entries(resque)
    assert entry["exception"] == "Resque::DirtyExit"


def test_two_cleaners_requeue_a_job_once(resque, settings):
    """The manager and a prune may find the same dead worker: the record is compared and
    deleted in the same step as the push."""
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    from resque_pool.resque.in_flight import job_lost
    from resque_pool.resque.reserve import read_in_flight

    worker_id = dead_id()
    take(resque, worker_id, wire.job_payload("Archive", [1]))
    in_flight = read_in_flight(worker_id)
    from resque_pool.errors import DirtyExit

    assert job_lost(worker_id, in_flight, DirtyExit("a")) == "requeued"
    assert job_lost(worker_id, in_flight, DirtyExit("b")) == "gone"
    assert len(queue(resque)) == 1


def test_prune_of_an_expired_heartbeat_requeues(resque, settings):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    other = "elsewhere:123:loss"
    take(resque, other, wire.job_payload("Archive", [7]))
    now, _ = resque.client.time()
    resque.client.hset(resque.key("workers:heartbeat"), other, wire.heartbeat(now - 3600))
    prune_dead_workers("pruner:1:loss", QueueList("loss"))
    assert queue(resque) == [wire.job_payload("Archive", [7])]
    assert resque.client.smembers(resque.key("workers")) == set()


@pytest.mark.parametrize("requeue", [False, True], ids=["default", "requeue"])
def test_killed_job_child(resque, settings, requeue):
    """A job child killed by SIGKILL (the OOM killer's signal): a DirtyExit failure by
    default, requeued at the head with requeueing on; the worker goes on either way."""
    settings.RESQUE_REQUEUE_DIRTY_JOBS = requeue
    from resque_pool import enqueue

    enqueue("Sleep", 30)
    enqueue("Record", "after")
    worker = Worker("demo", interval=0.1, fork_per_job=True)
    pid = os.getpid()

    def killer():
        try:
            first = wait_until(lambda: worker.child, timeout=20, message="a job child").pid
            os.kill(first, signal.SIGKILL)
            if requeue:  # the Sleep comes back first: kill it once more as the worker stops
                second = wait_until(
                    lambda: worker.child and worker.child.pid != first and worker.child,
                    timeout=20,
                    message="the requeued job",
                ).pid
                os.kill(pid, signal.SIGQUIT)
                os.kill(second, signal.SIGKILL)
            else:
                wait_until(lambda: resque.client.sismember(resque.key("demo", "done"), "after"))
        finally:
            os.kill(pid, signal.SIGQUIT)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        worker.work()
    finally:
        thread.join()
    failed = entries(resque)
    if requeue:
        # Killed twice: back at the head both times (max 3), nothing failed.
        assert failed == []
        assert queue(resque, "demo") == [
            wire.job_payload("Sleep", [30]),
            wire.job_payload("Record", ["after"]),
        ]
    else:
        [entry] = failed
        assert entry["exception"] == "Resque::DirtyExit"
        assert "SIGKILL" in entry["error"]
        assert queue(resque, "demo") == []


def test_usr1_ends_the_job_and_never_requeues_it(resque, settings):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    from resque_pool import enqueue

    enqueue("Sleep", 30)
    worker = Worker("demo", interval=0.1, fork_per_job=True)
    pid = os.getpid()

    def operator():
        try:
            wait_until(lambda: worker.child, timeout=20, message="a job child")
            os.kill(pid, signal.SIGUSR1)
            wait_until(lambda: entries(resque), 20, message="the failure")
        finally:
            os.kill(pid, signal.SIGQUIT)

    thread = threading.Thread(target=operator)
    thread.start()
    try:
        started = time.monotonic()
        worker.work()
    finally:
        thread.join()
    assert time.monotonic() - started < 20
    [entry] = entries(resque)
    assert "SIGKILL" in entry["error"]
    assert queue(resque, "demo") == []


def _dead_redis_url() -> str:
    from tests.support.redis_server import free_port

    return f"redis://127.0.0.1:{free_port()}/0"


def test_resque_work_with_interval_zero_and_no_redis_says_so_in_one_line(run_manage):
    result = run_manage(
        "resque_work",
        "--queues",
        "demo",
        "--interval",
        "0",
        env={"RESQUE_REDIS_URL": _dead_redis_url()},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: Redis is unreachable: ")


def test_resque_work_waits_for_redis_at_start_up(spawn_manage, tmp_path):
    from tests.support.redis_server import free_port, spawn_redis_server

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = tmp_path / "worker.log"
    with log.open("w") as handle:
        worker = spawn_manage(
            "resque_work",
            "--queues",
            "demo",
            "--interval",
            "0.2",
            env={"RESQUE_REDIS_URL": url, "RESQUE_NAMESPACE": "startup"},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    # Redis starts only once the worker has met it down (a loaded machine may take
    # seconds to get the worker that far), and after a few more attempts.
    wait_until(lambda: "Redis is unreachable" in log.read_text(), 30, 0.1, "the first refusal")
    time.sleep(1.0)
    assert worker.poll() is None, "the worker gave up before Redis answered"
    server = spawn_redis_server(port, str(tmp_path))
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        wait_until(lambda: _answers(client) and client.scard("startup:workers") == 1, 20)
        worker.send_signal(signal.SIGQUIT)
        worker.wait(timeout=20)
    finally:
        server.terminate()
        server.wait(10)
    output = log.read_text()
    assert output.count("Redis is unreachable") == 1, output
    assert "Traceback" not in output


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_the_manager_prunes_dead_workers_of_other_hosts_periodically(resque, start_pool, tmp_path):
    """A worker on another host whose heartbeat stopped is pruned by a running manager
    (not only when some worker starts), and its job follows the policy."""
    from tests.support.pool_fixtures import write

    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "other: 1\n")),
        "--no-scheduler",
        settings={"RESQUE_HEARTBEAT_INTERVAL": 0.5, "RESQUE_REQUEUE_DIRTY_JOBS": True},
    )
    pool.wait_for_workers({"other": 1})  # its start-up prune is over
    dead = "elsewhere:4242:loss"
    take(resque, dead, wire.job_payload("Archive", ["from the dead"]))
    now, _ = resque.client.time()
    resque.client.hset(resque.key("workers:heartbeat"), dead, wire.heartbeat(now - 3600))
    wait_until(
        lambda: not resque.client.sismember(resque.key("workers"), dead),
        timeout=20,
        message=lambda: f"the manager's prune (log:\n{pool.log()})",
    )
    assert queue(resque) == [wire.job_payload("Archive", ["from the dead"])]


def test_a_term_reaching_the_child_before_its_handlers_is_not_swallowed(resque, monkeypatch):
    """The child inherits the worker's handlers until it installs its own: a TERM landing
    in between (the worker's TERM_CHILD kill, a TERM to the process group) used to be
    swallowed there, and the job ran on until KILLed as a DirtyExit. The worker forks with
    its signals blocked; the child takes them once its own handlers are in place."""
    import resque_pool.worker.job_child as job_child
    from resque_pool import enqueue

    monkeypatch.setenv("TERM_CHILD", "1")
    original = job_child._reset_signals

    def term_arrives_first(term_child):
        os.kill(os.getpid(), signal.SIGTERM)  # runs in the child, right after the fork
        original(term_child)

    monkeypatch.setattr(job_child, "_reset_signals", term_arrives_first)
    enqueue("Sleep", 5)
    started = time.monotonic()
    Worker("demo", interval=0, fork_per_job=True).work()
    [entry] = entries(resque)
    assert (entry["exception"], entry["error"]) == ("Resque::TermException", "SIGTERM")
    assert time.monotonic() - started < 5

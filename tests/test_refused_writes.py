"""Redis refusing writes (out of memory under ``noeviction``, a read-only replica, too few
replicas) is an outage, not a loss: a job's outcome and the removal of its in-flight
record are one transaction, refused whole; the worker keeps the outcome, takes no other
job meanwhile, and writes it once Redis takes writes again. Real redis-server throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time

import pytest
import redis as redis_lib

from resque_pool.errors import DirtyExit
from resque_pool.resque import outages, outcomes, reserve, wire
from resque_pool.resque.in_flight import job_lost
from resque_pool.resque.jobs import Job
from resque_pool.resque.reserve import read_in_flight
from resque_pool.worker.loop import Worker
from tests.support.common import wait_until
from tests.support.pool_fixtures import write

WORKER = "host:1:demo"


def push(resque, *payloads: str, queue: str = "demo") -> None:
    pipe = resque.client.pipeline(transaction=False)
    pipe.sadd(resque.key("queues"), queue)
    pipe.rpush(resque.key("queue", queue), *payloads)
    pipe.execute()


@contextlib.contextmanager
def refusing(resque, kind: str):
    """The test's redis-server refusing writes the way ``kind`` says, until the block ends."""
    client = resque.client
    if kind == "OOM":
        policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # below any data set: every write that grows it
        try:
            yield
        finally:
            client.config_set("maxmemory", 0)
            client.config_set("maxmemory-policy", policy)
    elif kind == "NOREPLICAS":
        client.config_set("min-replicas-to-write", 1)
        try:
            yield
        finally:
            client.config_set("min-replicas-to-write", 0)
    elif kind == "READONLY":
        # A replica of a master that does not answer keeps its data and refuses writes.
        client.execute_command("REPLICAOF", "127.0.0.1", "1")
        try:
            yield
        finally:
            client.execute_command("REPLICAOF", "NO", "ONE")
    else:
        raise ValueError(kind)


def snapshot(resque) -> dict:
    client = resque.client
    return {
        "record": client.get(resque.key("worker", WORKER)),
        "failed": client.lrange(resque.key("failed"), 0, -1),
        "stats": client.mget(
            resque.key("stat", "processed"),
            resque.key("stat", "failed"),
            resque.key("stat", "processed", WORKER),
        ),
        "queue": client.lrange(resque.key("queue", "demo"), 0, -1),
    }


@pytest.mark.parametrize("kind", ["OOM", "NOREPLICAS", "READONLY"])
def test_a_refused_outcome_changes_nothing_and_is_written_later(resque, kind):
    if resque.client.info("server").get("redis_version", "0") < "6" and kind == "READONLY":
        pytest.skip("REPLICAOF needs Redis 5 or newer")
    push(resque, wire.job_payload("Fail", ["boom"]))
    got = reserve.reserve(WORKER, ["demo"])
    job = Job.from_raw(got.queue, got.raw)
    before = snapshot(resque)
    assert before["record"] is not None
    with refusing(resque, kind):
        # Each outcome the worker may write: all refused whole, the record kept.
        with pytest.raises(redis_lib.RedisError) as raised:
            outcomes.record_failure(WORKER, job, RuntimeError("boom"))
        assert outages.refusal(raised.value) == kind
        with pytest.raises(redis_lib.RedisError):
            outcomes.done_working(WORKER)
        with pytest.raises(redis_lib.RedisError):
            job_lost(WORKER, read_in_flight(WORKER), DirtyExit("killed"), requeue=True)
        with pytest.raises(redis_lib.RedisError):
            job_lost(WORKER, read_in_flight(WORKER), DirtyExit("killed"), requeue=False)
        assert snapshot(resque) == before
    assert outcomes.record_failure(WORKER, job, RuntimeError("boom")) == outcomes.FAILED
    after = snapshot(resque)
    assert after["record"] is None
    assert [json.loads(entry)["error"] for entry in after["failed"]] == ["boom"]
    assert after["stats"] == ["1", "1", "1"]


def test_a_failure_is_written_only_while_the_job_is_recorded_in_flight(resque):
    """Someone else (the manager, a prune) dealt with the job first: nothing more."""
    push(resque, wire.job_payload("Fail", ["boom"]))
    got = reserve.reserve(WORKER, ["demo"])
    job = Job.from_raw(got.queue, got.raw)
    resque.client.delete(resque.key("worker", WORKER))
    assert outcomes.record_failure(WORKER, job, RuntimeError("boom")) == outcomes.GONE
    assert resque.client.llen(resque.key("failed")) == 0
    assert resque.client.get(resque.key("stat", "failed")) is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis_lib.exceptions.OutOfMemoryError("command not allowed"), "OOM"),
        (
            redis_lib.exceptions.ReadOnlyError("You can't write against a read only replica."),
            "READONLY",
        ),
        (redis_lib.ResponseError("MISCONF Redis is configured to save RDB snapshots"), "MISCONF"),
        (redis_lib.ResponseError("BUSY Redis is busy running a script."), "BUSY"),
        (redis_lib.ResponseError("NOREPLICAS Not enough good replicas to write."), "NOREPLICAS"),
        (redis_lib.ResponseError("MASTERDOWN Link with MASTER is down"), "MASTERDOWN"),
        (
            redis_lib.ResponseError(
                "Command # 2 (RPUSH failed x) of pipeline caused error: MISCONF Redis is"
            ),
            "MISCONF",
        ),
        (redis_lib.ConnectionError("Connection refused"), "down"),
        (redis_lib.exceptions.BusyLoadingError("Redis is loading"), "down"),
        (redis_lib.ResponseError("WRONGTYPE Operation against a key"), None),
        (redis_lib.ResponseError("ERR Error running script"), None),
        (redis_lib.ResponseError("ERR BUSY is not a refusal here"), None),
    ],
)
def test_what_counts_as_an_outage(error, kind):
    assert outages.outage(error) == kind


def test_an_error_waiting_cannot_heal_is_logged_and_the_worker_goes_on(resque, caplog):
    """``failed`` overwritten with a string: the failure entry cannot be pushed
    (WRONGTYPE), which no wait heals; the worker logs the job and its failure, removes
    the in-flight record and takes the next job."""
    resque.client.set(resque.key("failed"), "not a list")
    push(resque, wire.job_payload("Fail", ["boom"]), wire.job_payload("Noop", []))
    Worker(["demo"], interval=0, fork_per_job=False).work()
    messages = [record.getMessage() for record in caplog.records]
    dropped = [m for m in messages if "waiting will not help" in m]
    assert len(dropped) == 1, messages
    assert '"Fail"' in dropped[0] and "RuntimeError: boom" in dropped[0]
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    assert resque.client.get(resque.key("stat", "processed")) == "2"
    assert not [k for k in resque.client.keys(resque.key("worker", "*")) if ":started" not in k]


def lines(log: str) -> int:
    return len(log.splitlines())


@pytest.mark.parametrize("fork_per_job", [True, False], ids=["fork", "in-process"])
def test_jobs_that_meet_a_redis_out_of_memory_are_all_recorded(
    resque, start_pool, tmp_path, fork_per_job
):
    """The reproduction: Redis out of memory under ``noeviction`` while a pool runs jobs
    that fail and jobs that write to Redis themselves. Each worker takes one job, cannot
    record its end, holds it and takes no other; the log says so in a few lines; once
    Redis takes writes again every job ends done or failed, exactly once."""
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "demo: 2\n")),
        env={"FORK_PER_JOB": "true" if fork_per_job else "false"},
    )
    pool.wait_for_workers({"demo": 2})
    client = resque.client
    client.set(resque.key("pause-all-workers"), "true")
    failing = [f"f{n}" for n in range(100)]
    writing = [f"r{n}" for n in range(100)]
    push(
        resque,
        *(wire.job_payload("Fail", [token]) for token in failing),
        *(wire.job_payload("Record", [token]) for token in writing),
    )
    lines_before = lines(pool.log())
    with refusing(resque, "OOM"):
        client.delete(resque.key("pause-all-workers"))  # a DEL is taken even now

        def held() -> int:
            return sum(
                1
                for worker in client.smembers(resque.key("workers"))
                if client.exists(resque.key("worker", worker))
            )

        wait_until(lambda: held() == 2, 20, message=f"two jobs held:\n{pool.log()}")
        time.sleep(3)  # the outage goes on: no worker takes another job
        assert client.llen(resque.key("queue", "demo")) == 198
        assert held() == 2
        during = pool.log().splitlines()[lines_before:]
    assert len(during) < 30, "\n".join(during)
    assert any(re.search(r"Redis refuses writes \(OOM\)", line) for line in during), during

    def drained() -> bool:
        return (
            client.llen(resque.key("queue", "demo")) == 0
            and client.get(resque.key("stat", "processed")) == "200"
        )

    wait_until(drained, 60, message=f"drained:\n{pool.log()[-3000:]}")
    done = client.smembers(resque.key("demo", "done"))
    entries = [json.loads(raw) for raw in client.lrange(resque.key("failed"), 0, -1)]
    failed_tokens = [entry["payload"]["args"][0] for entry in entries]
    assert len(failed_tokens) == len(set(failed_tokens))  # no job failed twice
    assert set(failing) <= set(failed_tokens)
    # A Record job that ran during the outage failed with Redis's refusal; the others ran.
    assert set(writing) == done | (set(failed_tokens) & set(writing))
    assert not done & set(failed_tokens)
    assert client.get(resque.key("stat", "failed")) == str(len(entries))
    assert pool.log().count("after the outage") + pool.log().count("Redis answers again") >= 2


def test_a_worker_started_while_redis_refuses_writes_registers_once_it_takes_them(
    resque, spawn_manage, tmp_path
):
    client = resque.client
    log = tmp_path / "worker.log"
    with refusing(resque, "OOM"), log.open("w") as handle:
        worker = spawn_manage(
            "resque_work",
            "--queues",
            "demo",
            env={"INTERVAL": "0.2"},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        # Once it met the refusal (a busy machine may take seconds to get it that far),
        # and a few attempts more.
        wait_until(lambda: "Redis refuses writes" in log.read_text(), 30, 0.1, "the refusal")
        time.sleep(1.0)
        assert worker.poll() is None  # waiting, not crashed
        assert not client.smembers(resque.key("workers"))
    wait_until(lambda: client.smembers(resque.key("workers")), 15, message="registered")
    worker.terminate()
    worker.wait(timeout=20)
    output = log.read_text()
    assert output.count("Redis refuses writes (OOM)") == 1, output
    assert "Traceback" not in output, output


def test_a_worker_killed_while_redis_refuses_writes_is_cleaned_up_once_it_takes_them(
    resque, start_pool, tmp_path
):
    """The manager's clean-up of a SIGKILLed worker (its job's DirtyExit) is refused under
    OOM: it is retried, not dropped, and the record stays until Redis takes the write."""
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")))
    [pid] = pool.wait_for_workers({"demo": 1})
    client = resque.client
    client.sadd(resque.key("queues"), "demo")
    client.rpush(resque.key("queue", "demo"), wire.job_payload("SlowRecord", ["held", 60]))
    worker_id = wait_until(
        lambda: next(
            (
                w
                for w in client.smembers(resque.key("workers"))
                if client.get(resque.key("worker", w))
            ),
            None,
        ),
        20,
        message="the job in flight",
    )
    with refusing(resque, "OOM"):
        os.kill(pid, signal.SIGKILL)
        pool.wait_for_log(r"could not clean up worker .* yet \(Redis refuses writes \(OOM\)")
        time.sleep(1.5)  # retried every second meanwhile, and refused
        assert client.get(resque.key("worker", worker_id))
        assert client.llen(resque.key("failed")) == 0
    pool.wait_for_log(rf"cleaned up dead worker {re.escape(worker_id)} in Redis after the outage")
    entries = [json.loads(raw) for raw in client.lrange(resque.key("failed"), 0, -1)]
    assert [(e["exception"], e["payload"]["args"][0]) for e in entries] == [
        ("Resque::DirtyExit", "held")
    ]
    assert client.get(resque.key("worker", worker_id)) is None

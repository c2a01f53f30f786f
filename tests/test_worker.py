"""The worker in this process (FORK_PER_JOB off, interval 0): the exact keys and formats it
writes to Redis, bad payloads, priorities, pausing and hooks."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

from resque_pool import enqueue, hooks, job
from resque_pool.errors import NoQueueError
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.worker.loop import Worker, make_worker_id

HOST = socket.gethostname()
FAILURE_KEYS = ["failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"]
SNAPSHOTS: list[dict] = []


@job(queue="wt", name="WorkerTestSnapshot")
class Snapshot:
    """Records what Redis holds about the worker while a job runs."""

    @staticmethod
    def perform(worker_id):
        client = get_redis()
        SNAPSHOTS.append(
            {
                "workers": client.smembers(key("workers")),
                "working_on": client.get(key("worker", worker_id)),
                "started": client.get(key("worker", worker_id, "started")),
                "heartbeat": client.hget(key("workers:heartbeat"), worker_id),
                "processed": client.get(key("stat", "processed", worker_id)),
                "failed": client.get(key("stat", "failed", worker_id)),
            }
        )


@job(queue="wt", name="WorkerTestAppend")
class Append:
    """Appends its token to a list, optionally enqueueing a follow-up job first."""

    @staticmethod
    def perform(token, then_queue=None, then_token=None):
        if then_queue:
            enqueue("WorkerTestAppend", then_token, queue=then_queue)
        get_redis().rpush(key("order"), token)


@pytest.fixture(autouse=True)
def _clear_snapshots():
    SNAPSHOTS.clear()


def run_worker(queues, **options) -> Worker:
    options.setdefault("interval", 0)
    options.setdefault("fork_per_job", False)
    worker = Worker(queues, **options)
    worker.work()
    return worker


def failures(resque) -> list[str]:
    return resque.client.lrange(resque.key("failed"), 0, -1)


def test_processes_a_job_and_leaves_only_global_stats(resque):
    enqueue("Record", "tok-1")
    worker = run_worker(["demo"])
    assert resque.client.smembers(resque.key("demo", "done")) == {"tok-1"}
    assert resque.client.get(resque.key("stat", "processed")) == "1"
    assert resque.client.get(resque.key("stat", "failed")) is None
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    remaining = {k for k in resque.client.keys(resque.key("*")) if worker.id in k}
    assert remaining == set()
    assert resque.client.smembers(resque.key("workers")) == set()
    assert resque.client.hgetall(resque.key("workers:heartbeat")) == {}


def test_worker_id_and_keys_while_working(resque):
    worker_id = make_worker_id(os.getpid(), ["wt"])
    pushed = enqueue("WorkerTestSnapshot", worker_id)
    worker = run_worker("wt")
    assert worker.id == worker_id == f"{HOST}:{os.getpid()}:wt"
    host, pid, queues = worker.id.split(":", 2)  # Ruby's split(':', 3)
    assert (host, int(pid), queues) == (HOST, os.getpid(), "wt")

    [snapshot] = SNAPSHOTS
    assert snapshot["workers"] == {worker_id}
    working_on = snapshot["working_on"]
    assert re.fullmatch(
        r'\{"queue":"wt","run_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","payload":'
        + re.escape(pushed.payload)
        + r"\}",
        working_on,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", snapshot["started"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", snapshot["heartbeat"])
    assert snapshot["processed"] is None  # counted when the job is done


def test_failed_job_entry_format_and_stats(resque):
    worker_id = make_worker_id(os.getpid(), ["demo", "wt"])
    enqueue("Fail", 'bad é/ü "quoted"')
    enqueue("WorkerTestSnapshot", worker_id)
    run_worker("demo,wt")

    [raw] = failures(resque)
    entry = json.loads(raw)
    assert list(entry) == FAILURE_KEYS
    assert raw == wire.dumps(entry)  # compact separators, raw UTF-8, "/" unescaped
    assert '"error":"bad é/ü \\"quoted\\""' in raw
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d UTC", entry["failed_at"])
    assert entry["payload"] == {"class": "Fail", "args": ['bad é/ü "quoted"']}
    assert entry["exception"] == "RuntimeError"
    assert entry["worker"] == worker_id
    assert entry["queue"] == "demo"
    assert entry["backtrace"] and entry["backtrace"][-1].endswith(":in `perform'")
    assert "testproject/demo/jobs.py" in entry["backtrace"][-1]

    # The Snapshot job ran second: the failed job counted as processed and as failed.
    assert SNAPSHOTS[0]["processed"] == "1"
    assert SNAPSHOTS[0]["failed"] == "1"
    assert resque.client.get(resque.key("stat", "processed")) == "2"
    assert resque.client.get(resque.key("stat", "failed")) == "1"
    assert resque.client.get(resque.key("stat", "processed", worker_id)) is None


@pytest.mark.parametrize(
    ("raw", "exception", "error"),
    [
        ("not json {", "MalformedPayload", "payload is not JSON"),
        ("[1,2]", "MalformedPayload", "payload is not a JSON object"),
        ('{"args":[1]}', "MalformedPayload", "payload has no 'class' string"),
        ('{"class":42,"args":[]}', "MalformedPayload", "payload has no 'class' string"),
        ('{"class":"os.system","args":["true"]}', "UnknownJob", "'os.system'"),
        ('{"class":"Record","args":"x"}', "MalformedPayload", "'args' must be a list"),
        ('{"class":"Record","args":["a","b"]}', "BadArguments", "cannot take 2 argument(s)"),
    ],
)
def test_bad_payload_is_a_failure_and_the_worker_goes_on(resque, raw, exception, error):
    resque.client.sadd(resque.key("queues"), "demo")
    resque.client.rpush(resque.key("queue", "demo"), raw, '{"class":"Record","args":["after"]}')
    run_worker("demo")

    [entry_raw] = failures(resque)
    entry = json.loads(entry_raw)
    assert list(entry) == FAILURE_KEYS
    assert entry["exception"] == f"resque_pool.errors.{exception}"
    assert error in entry["error"]
    expected_payload = raw if raw.startswith("not json") else json.loads(raw)
    assert entry["payload"] == expected_payload
    assert entry["backtrace"] == []
    assert resque.client.smembers(resque.key("demo", "done")) == {"after"}
    assert resque.client.get(resque.key("stat", "processed")) == "2"
    assert resque.client.get(resque.key("stat", "failed")) == "1"


def test_payload_pushed_the_ruby_way_is_processed(resque):
    resque.client.rpush(resque.key("queue", "demo"), '{"class":"Record","args":["from-ruby"]}')
    resque.client.sadd(resque.key("queues"), "demo")
    run_worker("*")  # dynamic: found through the queues set
    assert resque.client.smembers(resque.key("demo", "done")) == {"from-ruby"}
    assert failures(resque) == []


def test_priority_order_restarts_from_the_first_queue_after_each_job(resque):
    enqueue("WorkerTestAppend", "L1", "high", "H2", queue="low")
    enqueue("WorkerTestAppend", "L2", queue="low")
    enqueue("WorkerTestAppend", "H1", queue="high")
    run_worker("high,low")
    assert resque.client.lrange(resque.key("order"), 0, -1) == ["H1", "L1", "H2", "L2"]


def test_dynamic_list_with_negation_reads_resolved_queues(resque):
    for queue in ("critical", "alpha", "file_serve", "zeta"):
        enqueue("WorkerTestAppend", queue, queue=queue)
    worker = run_worker("critical,*,!file_*")
    assert worker.id.endswith(":critical,*")
    assert resque.client.lrange(resque.key("order"), 0, -1) == ["critical", "alpha", "zeta"]
    assert resque.client.llen(resque.key("queue", "file_serve")) == 1


@pytest.mark.parametrize("value", ["true", " TRUE\n", "True"])
def test_pause_all_workers_key_stops_reserving(resque, value):
    enqueue("Record", "paused")
    resque.client.set(resque.key("pause-all-workers"), value)
    run_worker("demo")
    assert resque.client.llen(resque.key("queue", "demo")) == 1
    resque.client.set(resque.key("pause-all-workers"), "false")
    run_worker("demo")
    assert resque.client.smembers(resque.key("demo", "done")) == {"paused"}


def test_hooks_run_in_order_around_registration(resque):
    seen = []

    def registered(worker):
        return resque.client.sismember(resque.key("workers"), worker.id)

    def before_first_fork(worker):
        seen.append(("before_first_fork", registered(worker)))

    def worker_exit(worker):
        seen.append(("worker_exit", registered(worker)))

    def fork_hook(job):
        seen.append(("fork", job))

    hooks.register("before_first_fork", before_first_fork)
    hooks.register("worker_exit", worker_exit)
    hooks.register("before_fork", fork_hook)
    hooks.register("after_fork", fork_hook)
    try:
        enqueue("Noop")
        run_worker("demo")
    finally:
        for name, func in [
            ("before_first_fork", before_first_fork),
            ("worker_exit", worker_exit),
            ("before_fork", fork_hook),
            ("after_fork", fork_hook),
        ]:
            hooks.unregister(name, func)
    # Fork hooks run only when forking.
    assert seen == [("before_first_fork", 0), ("worker_exit", 0)]


def test_before_fork_hook_error_fails_the_job_not_the_worker(resque):
    calls = []

    def broken(job):
        calls.append(job.class_name)
        raise ValueError("hook broke")

    hooks.register("before_fork", broken)
    try:
        enqueue("Record", "x")
        enqueue("Record", "y")
        run_worker("demo", fork_per_job=True)
    finally:
        hooks.unregister("before_fork", broken)
    assert calls == ["Record", "Record"]
    assert [json.loads(raw)["error"] for raw in failures(resque)] == ["hook broke"] * 2
    assert resque.client.get(resque.key("stat", "processed")) == "2"


def test_environment_fallbacks(monkeypatch, settings):
    monkeypatch.setenv("QUEUES", "high, low")
    monkeypatch.setenv("INTERVAL", "0.5")
    monkeypatch.setenv("FORK_PER_JOB", "false")
    worker = Worker(None)
    assert worker.queue_list.patterns == ["high", "low"]
    assert worker.options.interval == 0.5
    assert worker.options.fork_per_job is False
    monkeypatch.delenv("QUEUES")
    monkeypatch.setenv("QUEUE", "only")
    monkeypatch.delenv("FORK_PER_JOB")
    monkeypatch.delenv("INTERVAL")
    worker = Worker([])
    assert worker.queue_list.patterns == ["only"]
    assert worker.options.interval == 5.0
    assert worker.options.fork_per_job is True
    settings.RESQUE_FORK_PER_JOB = False
    assert Worker("q").options.fork_per_job is False
    assert Worker("q", fork_per_job=True).options.fork_per_job is True


def test_no_queue_is_an_error(monkeypatch):
    monkeypatch.delenv("QUEUES", raising=False)
    monkeypatch.delenv("QUEUE", raising=False)
    with pytest.raises(NoQueueError, match="Please give each worker at least one queue."):
        Worker(None)
    with pytest.raises(NoQueueError):
        Worker("!low")


def test_resque_work_command_without_queues_fails_clearly(run_manage):
    result = run_manage("resque_work", env={"QUEUES": "", "QUEUE": ""})
    assert result.returncode == 1
    assert "Please give each worker at least one queue." in result.stderr


def test_resque_work_command_drains_with_interval_zero(resque, run_manage):
    enqueue("Record", "cmd")
    result = run_manage("resque_work", "--queues", "demo", "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert resque.client.smembers(resque.key("demo", "done")) == {"cmd"}
    assert resque.client.smembers(resque.key("workers")) == set()


def test_dirty_exit_wording_for_signals_and_exit_statuses():
    from resque_pool.worker.job_child import dirty_exit_for

    statuses = {}
    for code in (0, 3):
        pid = os.fork()
        if pid == 0:
            os._exit(code)
        statuses[code] = (pid, os.waitpid(pid, 0)[1])
    pid, status = statuses[0]
    assert dirty_exit_for(pid, status) is None
    pid, status = statuses[3]
    assert str(dirty_exit_for(pid, status)) == f"Child process exited unexpectedly pid {pid} exit 3"
    # A wait status for "killed by SIGKILL" is the signal number itself.
    assert str(dirty_exit_for(42, 9)) == (
        "Child process received unhandled signal pid 42 SIGKILL (signal 9)"
    )


@job(queue="wt", name="WorkerTestExits")
class Exits:
    @staticmethod
    def perform(status):
        raise SystemExit(status)


@pytest.mark.parametrize("fork_per_job", [False, True])
def test_job_calling_sys_exit_fails_the_job_not_the_worker(resque, fork_per_job):
    enqueue("WorkerTestExits", 3)
    enqueue("Record", "after")
    run_worker("wt,demo", fork_per_job=fork_per_job)
    assert resque.client.smembers(resque.key("demo", "done")) == {"after"}
    (entry,) = [json.loads(raw) for raw in failures(resque)]
    assert (entry["exception"], entry["error"]) == ("SystemExit", "3")
    assert resque.client.get(resque.key("stat", "failed")) == "1"
    assert resque.client.get(resque.key("stat", "processed")) == "2"


def test_term_between_pop_and_fork_still_kills_the_job(resque):
    """A TERM that lands after the job was popped but before its child exists (here from a
    before_fork hook) must still end the job at once, not let it run to its end."""
    import signal
    import time

    def term_myself(job):
        os.kill(os.getpid(), signal.SIGTERM)

    hooks.register("before_fork", term_myself)
    try:
        enqueue("Sleep", 20)
        started = time.monotonic()
        run_worker("demo", fork_per_job=True, interval=0.1)
    finally:
        hooks.unregister("before_fork", term_myself)
    assert time.monotonic() - started < 10
    (entry,) = [json.loads(raw) for raw in failures(resque)]
    assert entry["exception"] == "Resque::DirtyExit"
    assert "SIGKILL" in entry["error"]


def test_state_hooks_queue_empty_and_shutdown(resque):
    """queue_empty when the worker turns idle after jobs; shutdown once when it stops."""
    import signal

    seen = []

    def on_empty(worker):
        seen.append("queue_empty")
        os.kill(os.getpid(), signal.SIGQUIT)  # then stop, as an operator would

    def on_shutdown(worker):
        seen.append(("shutdown", worker.id))

    hooks.register("queue_empty", on_empty)
    hooks.register("shutdown", on_shutdown)
    try:
        enqueue("Record", "a")
        enqueue("Record", "b")
        worker = run_worker("demo", interval=0.1)
    finally:
        hooks.unregister("queue_empty", on_empty)
        hooks.unregister("shutdown", on_shutdown)
    assert seen == ["queue_empty", ("shutdown", worker.id)]


def test_pause_hooks_run_on_usr2_and_cont(resque):
    import signal
    import threading
    import time

    seen = []

    def before(worker):
        seen.append("before_pause")

    def after(worker):
        seen.append("after_pause")

    pid = os.getpid()

    def operator():
        for signum in (signal.SIGUSR2, signal.SIGCONT, signal.SIGQUIT):
            time.sleep(0.5)
            os.kill(pid, signum)

    hooks.register("before_pause", before)
    hooks.register("after_pause", after)
    thread = threading.Thread(target=operator)
    thread.start()
    try:
        run_worker("demo", interval=0.1)
    finally:
        thread.join()
        hooks.unregister("before_pause", before)
        hooks.unregister("after_pause", after)
    assert seen == ["before_pause", "after_pause"]

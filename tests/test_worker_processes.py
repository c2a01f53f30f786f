"""``manage.py resque_work`` as real processes: fork per job, proclines, signals, pausing,
TERM_CHILD, a manager that disappears, and the manager's cleanup of a killed worker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from resque_pool import enqueue
from resque_pool.worker.loop import cleanup_dead_worker
from tests.support.common import ROOT, wait_until

HOST = socket.gethostname()
TIMEOUT = 30.0
PROCLINE = "resque-0.1.0: "


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def wait_procline(pid: int, pattern: str) -> re.Match:
    return wait_until(
        lambda: re.fullmatch(pattern, cmdline(pid)),
        timeout=TIMEOUT,
        message=f"procline of {pid} matching {pattern!r} (now {cmdline(pid)!r})",
    )


def wait_exit(process: subprocess.Popen, timeout: float = TIMEOUT) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker {process.pid} did not exit; procline {cmdline(process.pid)!r}")


def start_worker(spawn_manage, *, queues="demo", env=None, settings=None) -> subprocess.Popen:
    env = {"INTERVAL": "0.2", **(env or {})}
    return spawn_manage("resque_work", "--queues", queues, env=env, settings=settings)


def forked_child(worker: subprocess.Popen, job_class: str = "Sleep") -> int:
    """Wait until the worker forked a child for a job; return the child's pid."""
    match = wait_procline(worker.pid, re.escape(PROCLINE) + r"Forked (\d+) at \d+")
    child = int(match.group(1))
    wait_procline(child, re.escape(PROCLINE) + rf"Processing demo since \d+ \[{job_class}\]")
    return child


def catches(pid: int, signum: int) -> bool:
    """Whether ``pid`` has a handler for ``signum`` and does not block it (/proc status)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    bit = 1 << (signum - 1)
    return bool(int(fields["SigCgt"], 16) & bit) and not int(fields["SigBlk"], 16) & bit


def failures(resque) -> list[dict]:
    return [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]


def stat(resque, name: str) -> str | None:
    return resque.client.get(resque.key("stat", name))


def registered(resque) -> set[str]:
    return resque.client.smembers(resque.key("workers"))


def done(resque) -> set[str]:
    return resque.client.smembers(resque.key("demo", "done"))


def test_fork_per_job_proclines_and_registration(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    worker_id = f"{HOST}:{worker.pid}:demo"
    wait_procline(worker.pid, re.escape(PROCLINE + "Waiting for demo"))
    assert registered(resque) == {worker_id}
    heartbeat = resque.client.hget(resque.key("workers:heartbeat"), worker_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", heartbeat)

    enqueue("Sleep", 1.5)
    child = forked_child(worker)
    assert child != worker.pid
    working = json.loads(resque.client.get(resque.key("worker", worker_id)))
    assert list(working) == ["queue", "run_at", "payload"]
    assert working["payload"] == {"class": "Sleep", "args": [1.5]}

    enqueue("Record", "forked")
    wait_until(lambda: done(resque) == {"forked"}, timeout=TIMEOUT, message="Record job")
    wait_until(lambda: stat(resque, "processed") == "2", timeout=TIMEOUT, message="2 processed")
    assert failures(resque) == []

    worker.send_signal(signal.SIGQUIT)
    assert wait_exit(worker) == 0
    assert registered(resque) == set()
    assert [k for k in resque.client.keys(resque.key("*")) if worker_id in k] == []


def test_procline_prefix(resque, spawn_manage):
    worker = start_worker(spawn_manage, env={"RESQUE_PROCLINE_PREFIX": "myapp "})
    wait_procline(worker.pid, re.escape("myapp " + PROCLINE + "Waiting for demo"))


def test_killed_child_is_a_dirty_exit_and_the_worker_goes_on(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    enqueue("Sleep", 60)
    child = forked_child(worker)
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: failures(resque), timeout=TIMEOUT, message="failure entry")
    [entry] = failures(resque)
    assert entry["exception"] == "Resque::DirtyExit"
    assert (
        entry["error"] == f"Child process received unhandled signal pid {child} SIGKILL (signal 9)"
    )
    assert entry["payload"] == {"class": "Sleep", "args": [60]}
    assert entry["backtrace"] == []

    enqueue("Record", "after-kill")
    wait_until(lambda: done(resque) == {"after-kill"}, timeout=TIMEOUT, message="next job")
    wait_until(lambda: stat(resque, "processed") == "2", timeout=TIMEOUT, message="2 processed")
    assert stat(resque, "failed") is None  # DirtyExit does not count as failed
    assert worker.poll() is None


def test_quit_waits_for_the_job_then_unregisters(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    enqueue("Sleep", 2)
    forked_child(worker)
    started = time.monotonic()
    worker.send_signal(signal.SIGQUIT)
    assert wait_exit(worker) == 0
    assert time.monotonic() - started >= 1.0  # it waited for the job
    assert stat(resque, "processed") == "1"
    assert failures(resque) == []
    assert registered(resque) == set()
    assert resque.client.hgetall(resque.key("workers:heartbeat")) == {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_kill_the_child_and_exit(resque, spawn_manage, signum):
    worker = start_worker(spawn_manage)
    enqueue("Sleep", 60)
    enqueue("Record", "never")
    child = forked_child(worker)
    worker.send_signal(signum)
    assert wait_exit(worker) == 0
    [entry] = failures(resque)
    assert (
        entry["error"] == f"Child process received unhandled signal pid {child} SIGKILL (signal 9)"
    )
    assert registered(resque) == set()
    assert done(resque) == set()
    assert resque.client.llen(resque.key("queue", "demo")) == 1


def test_graceful_term_behaves_like_quit(resque, spawn_manage):
    worker = start_worker(spawn_manage, env={"GRACEFUL_TERM": "1"})
    enqueue("Sleep", 1.5)
    forked_child(worker)
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker) == 0
    assert failures(resque) == []
    assert stat(resque, "processed") == "1"


def test_usr1_kills_the_child_and_keeps_working(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    enqueue("Sleep", 60)
    child = forked_child(worker)
    worker.send_signal(signal.SIGUSR1)
    wait_until(lambda: failures(resque), timeout=TIMEOUT, message="failure entry")
    assert failures(resque)[0]["error"].endswith(f"pid {child} SIGKILL (signal 9)")
    enqueue("Record", "still-working")
    wait_until(lambda: done(resque) == {"still-working"}, timeout=TIMEOUT, message="next job")
    assert worker.poll() is None
    assert registered(resque) == {f"{HOST}:{worker.pid}:demo"}


def test_usr2_pauses_and_cont_resumes(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    wait_procline(worker.pid, re.escape(PROCLINE + "Waiting for demo"))
    worker.send_signal(signal.SIGUSR2)
    wait_procline(worker.pid, re.escape(PROCLINE + "Paused"))
    enqueue("Record", "after-pause")
    time.sleep(1.5)
    assert done(resque) == set()
    assert resque.client.llen(resque.key("queue", "demo")) == 1
    worker.send_signal(signal.SIGCONT)
    wait_until(lambda: done(resque) == {"after-pause"}, timeout=TIMEOUT, message="resumed job")
    wait_procline(worker.pid, re.escape(PROCLINE + "Waiting for demo"))


def test_pause_all_workers_key(resque, spawn_manage):
    resque.client.set(resque.key("pause-all-workers"), "true")
    worker = start_worker(spawn_manage)
    wait_procline(worker.pid, re.escape(PROCLINE + "Paused"))
    enqueue("Record", "key-paused")
    time.sleep(1.5)
    assert done(resque) == set()
    resque.client.delete(resque.key("pause-all-workers"))
    wait_until(lambda: done(resque) == {"key-paused"}, timeout=TIMEOUT, message="unpaused job")


def test_term_child_raises_term_exception_in_the_job(resque, spawn_manage):
    worker = start_worker(spawn_manage, env={"TERM_CHILD": "1", "RESQUE_TERM_TIMEOUT": "10"})
    enqueue("Sleep", 60)
    child = forked_child(worker)
    # Its handlers in place and TERM no longer blocked: a TERM sent before then stops the
    # child before the job starts, and the backtrace below would not be the job's.
    wait_until(lambda: catches(child, signal.SIGTERM), 20, 0.01, "the job child catching TERM")
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker) == 0
    [entry] = failures(resque)
    assert (entry["exception"], entry["error"]) == ("Resque::TermException", "SIGTERM")
    assert entry["backtrace"] and "jobs.py" in entry["backtrace"][-1]
    assert stat(resque, "failed") == "1"  # a normal failure, counted
    assert stat(resque, "processed") == "1"
    assert registered(resque) == set()


def test_term_child_usr1_terminates_the_job_and_keeps_working(resque, spawn_manage):
    worker = start_worker(spawn_manage, env={"TERM_CHILD": "1"})
    enqueue("Sleep", 60)
    forked_child(worker)
    worker.send_signal(signal.SIGUSR1)
    wait_until(lambda: failures(resque), timeout=TIMEOUT, message="failure entry")
    assert failures(resque)[0]["exception"] == "Resque::TermException"
    enqueue("Record", "next")
    wait_until(lambda: done(resque) == {"next"}, timeout=TIMEOUT, message="next job")
    assert worker.poll() is None


def test_term_child_kills_a_child_that_ignores_term(resque, spawn_manage):
    # A child stuck where Python cannot raise (here: stopped) gets KILL after the timeout.
    worker = start_worker(spawn_manage, env={"TERM_CHILD": "1", "RESQUE_TERM_TIMEOUT": "1"})
    enqueue("Sleep", 60)
    child = forked_child(worker)
    os.kill(child, signal.SIGSTOP)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker) == 0
    assert time.monotonic() - started >= 0.9
    [entry] = failures(resque)
    assert (
        entry["error"] == f"Child process received unhandled signal pid {child} SIGKILL (signal 9)"
    )


MANAGER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import django
    django.setup()
    from resque_pool.worker.loop import Worker

    manager = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            Worker("demo", interval=0.2, manager_pid=manager).work()
        finally:
            os._exit(0)
    print(pid, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.slow  # a manager process of its own, started here rather than by a fixture
def test_worker_exits_after_its_job_when_the_manager_is_gone(resque):
    manager = subprocess.Popen(
        [sys.executable, "-c", MANAGER_SCRIPT],
        env=resque.env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        worker_pid = int(manager.stdout.readline())
        worker_id = f"{HOST}:{worker_pid}:demo"
        wait_procline(worker_pid, re.escape(PROCLINE + "Waiting for demo"))
        enqueue("Record", "before")
        wait_until(lambda: done(resque) == {"before"}, timeout=TIMEOUT, message="first job")
        enqueue("Sleep", 2)
        # The Sleep job itself in flight (the title "Forked ..." may still be the first job's).
        wait_until(
            lambda: "Sleep" in (resque.client.get(resque.key("worker", worker_id)) or ""),
            timeout=TIMEOUT,
            message="the Sleep job in flight",
        )
        manager.kill()
        manager.wait(10)
        enqueue("Record", "after")
        wait_until(lambda: worker_id not in registered(resque), timeout=TIMEOUT, message="exit")
        wait_until(lambda: not cmdline(worker_pid), timeout=TIMEOUT, message="worker gone")
        assert stat(resque, "processed") == "2"  # the Sleep job finished
        assert failures(resque) == []
        assert done(resque) == {"before"}  # nothing taken after the manager died
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(manager.pid, signal.SIGKILL)
        manager.wait(10)


def test_cleanup_dead_worker_after_sigkill(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    worker_id = f"{HOST}:{worker.pid}:demo"
    enqueue("Sleep", 60)
    child = forked_child(worker)
    os.kill(worker.pid, signal.SIGKILL)
    os.kill(child, signal.SIGKILL)
    worker.wait(10)
    assert worker_id in registered(resque)  # nobody unregistered it

    assert cleanup_dead_worker(worker_id) is True
    [entry] = failures(resque)
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["error"] == f"Worker {worker_id} did not gracefully exit while processing Sleep"
    assert entry["worker"] == worker_id
    assert registered(resque) == set()
    assert resque.client.hget(resque.key("workers:heartbeat"), worker_id) is None


def test_term_child_in_process_raises_term_exception_in_the_job(resque, spawn_manage):
    worker = start_worker(spawn_manage, env={"TERM_CHILD": "1", "FORK_PER_JOB": "false"})
    worker_id = f"{HOST}:{worker.pid}:demo"
    enqueue("Sleep", 60)
    enqueue("Record", "never")
    wait_procline(worker.pid, re.escape(PROCLINE) + r"Processing demo since \d+ \[Sleep\]")
    wait_until(lambda: resque.client.get(resque.key("worker", worker_id)), timeout=TIMEOUT)
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker) == 0
    [entry] = failures(resque)
    assert (entry["exception"], entry["error"]) == ("Resque::TermException", "SIGTERM")
    assert entry["worker"] == worker_id
    assert stat(resque, "failed") == "1"
    assert done(resque) == set()
    assert registered(resque) == set()


def test_in_process_term_without_term_child_finishes_the_job(resque, spawn_manage):
    worker = start_worker(spawn_manage, env={"FORK_PER_JOB": "false"})
    enqueue("Sleep", 1.5)
    wait_procline(worker.pid, re.escape(PROCLINE) + r"Processing demo since \d+ \[Sleep\]")
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker) == 0
    assert failures(resque) == []
    assert stat(resque, "processed") == "1"


def test_quit_to_the_whole_process_group_lets_the_job_finish(resque, spawn_manage):
    # A terminal's Ctrl-\ reaches the job child too: it must not die of it.
    worker = start_worker(spawn_manage)
    enqueue("Sleep", 1.5)
    child = forked_child(worker)
    os.killpg(worker.pid, signal.SIGQUIT)  # spawn_manage made the worker a group leader
    assert wait_exit(worker) == 0
    assert failures(resque) == []
    assert stat(resque, "processed") == "1"
    assert not cmdline(child)


def test_job_child_ignores_usr1_and_usr2_sent_to_it(resque, spawn_manage):
    worker = start_worker(spawn_manage)
    enqueue("Sleep", 1.5)
    child = forked_child(worker)
    os.kill(child, signal.SIGUSR1)
    os.kill(child, signal.SIGUSR2)
    wait_until(lambda: stat(resque, "processed") == "1", timeout=TIMEOUT, message="job done")
    assert failures(resque) == []
    assert worker.poll() is None


def test_term_child_pre_shutdown_timeout_lets_a_short_job_finish(resque, spawn_manage):
    env = {"TERM_CHILD": "1", "RESQUE_PRE_SHUTDOWN_TIMEOUT": "20"}
    worker = start_worker(spawn_manage, env=env)
    enqueue("Sleep", 1.5)
    forked_child(worker)
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker) == 0
    assert failures(resque) == []
    assert stat(resque, "processed") == "1"


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads: line for {pid}")


@pytest.mark.parametrize(
    "fork_per_job, expected_threads", [("true", 1), ("false", 2)], ids=["fork", "in-process"]
)
def test_the_heartbeat_goes_on_through_a_job_and_only_in_process_needs_a_thread(
    resque, spawn_manage, fork_per_job, expected_threads
):
    """A forking worker beats from its main loop, which comes round while it waits for its
    job child: no thread, and nothing else running in it when it forks. A worker that runs
    jobs itself keeps Resque's heartbeat thread, since a job holds its loop."""
    worker = start_worker(
        spawn_manage,
        env={"FORK_PER_JOB": fork_per_job},
        settings={"RESQUE_HEARTBEAT_INTERVAL": 0.2},
    )
    wait_until(lambda: registered(resque), TIMEOUT, message="registered")
    (worker_id,) = registered(resque)
    enqueue("SlowRecord", "long", 3)
    wait_until(
        lambda: resque.client.exists(resque.key("worker", worker_id)), TIMEOUT, message="busy"
    )
    assert threads(worker.pid) == expected_threads
    seen = set()
    deadline = time.monotonic() + 2.5  # within the job: it lasts 3 s
    while time.monotonic() < deadline:
        seen.add(resque.client.hget(resque.key("workers:heartbeat"), worker_id))
        time.sleep(0.1)
    assert resque.client.exists(resque.key("worker", worker_id))  # still in the job
    assert len(seen - {None}) >= 2, seen  # second-resolution stamps: it beat through the job
    worker.send_signal(signal.SIGQUIT)
    wait_exit(worker)

"""A worker's two round trips per job (the reserve script, ``done_working``) go out packed
once, on a connection each thread keeps (``resque/packed.py``): the same commands as the
ordinary API sends, and the same recovery when the connection breaks or Redis answers an
error."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import threading
import time
import weakref
from urllib.parse import urlparse

import fakeredis
import pytest
import redis

from resque_pool.resque import connection, outcomes, packed, reserve, wire
from tests.support.common import wait_until

WORKER = "host:1:high"


def push(resque, queue: str, *raws: str) -> None:
    resque.client.rpush(resque.key("queue", queue), *raws)


def one_job(worker: str = WORKER) -> reserve.Reservation | str | None:
    got = reserve.reserve(worker, ["high"])
    if isinstance(got, reserve.Reservation):
        outcomes.done_working(worker, not got.spliced)
    return got


@pytest.mark.skipif(os.environ.get("RESQUE_TEST_REDIS_KIND") == "fakeredis", reason="needs MONITOR")
def test_the_commands_on_the_wire_are_the_ordinary_ones(resque):
    push(resque, "high", wire.job_payload("A", [1]), "not json")
    one_job()  # loads the script (NOSCRIPT on a fresh server) and keeps a connection
    seen: list[list[str]] = []
    ready = threading.Event()

    def watch() -> None:
        with resque.client.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if command["client_type"] == "lua":
                    continue
                seen.append(command["command"].split(" "))
                if len(seen) == 6:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(5)
    one_job()  # a placeholder this time: done_working deletes our raw key too
    watcher.join(5)
    sha = connection.registered_script(reserve._LUA).sha
    ns = resque.namespace
    evalsha = seen[0]
    assert evalsha[:7] == [
        "EVALSHA",
        sha,
        "4",
        f"{ns}:pause-all-workers",
        f"{ns}:worker:{WORKER}",
        f"{ns}:worker-raw:{WORKER}",
        f"{ns}:queue:high",
    ]
    assert evalsha[8:10] == ["64", "4300"]  # after run_at, then the placeholder and queue
    # done_working is one transaction: refused whole, or applied whole.
    assert seen[1:] == [
        ["MULTI"],
        ["DEL", f"{ns}:worker:{WORKER}", f"{ns}:worker-raw:{WORKER}"],
        ["INCRBY", f"{ns}:stat:processed", "1"],
        ["INCRBY", f"{ns}:stat:processed:{WORKER}", "1"],
        ["EXEC"],
    ]
    assert resque.client.get(resque.key("stat", "processed")) == "2"


def test_a_connection_the_server_closed_is_opened_again(resque):
    push(resque, "high", *(wire.job_payload("A", [n]) for n in range(3)))
    assert one_job().raw == wire.job_payload("A", [0])
    resque.client.client_kill_filter(_type="normal", skipme=True)  # the kept one too
    assert one_job().raw == wire.job_payload("A", [1])
    resque.client.script_flush()  # as after a restart: NOSCRIPT, then loaded again
    assert one_job().raw == wire.job_payload("A", [2])
    assert resque.client.get(resque.key("stat", "processed")) == "3"


def test_an_error_reply_raises_after_every_reply_was_read(resque):
    push(resque, "high", wire.job_payload("A", [1]), wire.job_payload("A", [2]))
    resque.client.set(resque.key("stat", "processed"), "not a number")
    got = reserve.reserve(WORKER, ["high"])
    with pytest.raises(redis.ResponseError, match="not an integer"):
        outcomes.done_working(WORKER)
    # The other commands ran (EXEC does not undo them), and the connection is in step.
    assert resque.client.exists(resque.key("worker", WORKER)) == 0
    assert resque.client.get(resque.key("stat", "processed", WORKER)) == "1"
    resque.client.delete(resque.key("stat", "processed"))
    assert got.raw == wire.job_payload("A", [1])
    assert one_job().raw == wire.job_payload("A", [2])
    assert resque.client.get(resque.key("stat", "processed")) == "1"


def test_each_thread_keeps_its_own_connection(resque):
    push(resque, "high", *(wire.job_payload("A", [n]) for n in range(400)))
    taken: dict[str, list[str]] = {"host:1:high": [], "host:2:high": []}

    def drain(worker: str) -> None:
        while (got := one_job(worker)) is not None:
            taken[worker].append(got.raw)

    threads = [threading.Thread(target=drain, args=(worker,)) for worker in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    raws = taken["host:1:high"] + taken["host:2:high"]
    assert sorted(raws) == sorted(wire.job_payload("A", [n]) for n in range(400))
    assert resque.client.get(resque.key("stat", "processed")) == "400"


def test_other_clients_use_the_ordinary_api(resque, monkeypatch):
    fake = fakeredis.FakeRedis(decode_responses=True, encoding_errors="surrogateescape")
    monkeypatch.setattr(reserve, "get_redis", lambda: fake)
    monkeypatch.setattr(outcomes, "get_redis", lambda: fake)
    assert packed.send(fake, "key", lambda: [("PING",)]) is None
    fake.rpush(connection.key("queue", "high"), wire.job_payload("A", [1]))
    assert one_job().raw == wire.job_payload("A", [1])
    assert fake.get(connection.key("stat", "processed")) == "1"
    assert fake.exists(connection.key("worker", WORKER)) == 0


def test_a_worker_going_idle_hands_its_connection_back(resque):
    push(resque, "high", *(wire.job_payload("A", [n]) for n in range(4)))

    def busy_then_idle() -> int:
        one_job()
        packed.release()  # what the loop does when the worker turns idle
        connection.get_redis().ping()  # an idle wait's command, through the pool
        return len(resque.client.client_list())

    before = len(resque.client.client_list())  # no worker connection yet
    assert [busy_then_idle() for _ in range(4)] == [before + 1] * 4  # one, not two
    assert resque.client.get(resque.key("stat", "processed")) == "4"


def test_commands_first_seen_after_a_release_take_a_connection_first(resque):
    """The reserve script is packed again each second (its run_at changes): the first
    reservation of a new second may come right after the idle worker released its
    connection, and must take one before packing (it crashed the worker before)."""
    client = connection.get_redis()
    assert packed.send(client, "first", lambda: [("PING",)]) == ["PONG"]
    packed.release()
    assert packed.send(client, "second", lambda: [("ECHO", "x")]) == ["x"]


def redis_connections(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to ``port`` (its sockets' inodes
    looked up in its network namespace's tables)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                established = fields[3] == "01"
                if established and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += fields[9] in inodes
    return count


@pytest.mark.skipif(
    os.environ.get("RESQUE_TEST_REDIS_KIND") == "fakeredis", reason="counts TCP connections"
)
@pytest.mark.parametrize("fork_per_job", ["true", "false"], ids=["fork", "in-process"])
def test_an_idle_worker_keeps_one_connection_and_its_heartbeat_one(
    resque, spawn_manage, fork_per_job
):
    port = urlparse(resque.url).port
    worker = spawn_manage(
        "resque_work",
        "--queues",
        "idle",
        env={"INTERVAL": "0.1", "FORK_PER_JOB": fork_per_job},
        stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: resque.client.scard(resque.key("workers")) == 1, 30, message="registered")
    for _ in range(2):  # idle from the start, then idle again after a job
        time.sleep(1)  # ten idle polls, each a reserve and a wait
        assert redis_connections(worker.pid, port) <= 2  # its own, and its heartbeat's
        resque.client.rpush(resque.key("queue", "idle"), wire.job_payload("Record", ["x"]))
        wait_until(
            lambda: resque.client.get(resque.key("stat", "processed")) is not None,
            30,
            message="the job done",
        )


def test_a_job_child_abandons_its_parents_clients_without_closing_them(resque):
    """The job child starts with no client and no socket bound, and leaves the inherited
    clients open even when nothing else holds them (closing them would write to, and so
    copy, the parent's pages); the kernel closes them at _exit."""
    connection.reset_connections()  # a client no cached script or packed channel holds
    inherited = connection.get_redis()
    inherited.ping()
    [open_connection] = inherited.connection_pool._available_connections
    sock = open_connection._sock
    kept = weakref.ref(open_connection)
    del inherited, open_connection
    try:
        connection.abandon_clients(socket_timeout=None)
        gc.collect()
        assert kept() is not None and kept()._sock is sock  # alive and not disconnected
        fresh = connection.get_redis()
        assert fresh.ping() is True
        assert fresh.connection_pool.connection_kwargs.get("socket_timeout") is None
    finally:
        connection.reset_connections()

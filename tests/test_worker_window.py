"""The window between taking a job and recording it is closed, shown without luck: a TCP
proxy between a worker and Redis holds Redis's reply to the reservation, the worker is
SIGKILLed while it waits for it, and the job is still recorded, so its clean-up finds it.
(With Resque's LPOP-then-SET the popped job existed nowhere at that moment.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading

import pytest

from resque_pool.resque import wire
from resque_pool.resque.pruning import cleanup_dead_worker
from resque_pool.resque.reserve import _LUA
from tests.support.common import wait_until

HOST = socket.gethostname()


class HoldingProxy:
    """Forwards TCP to Redis; once a client sends a reservation (EVALSHA, or an LPOP),
    Redis's replies on that connection are held back instead of forwarded; with
    ``reset_once`` the first such reply is dropped and the connection closed instead (a
    network blip), and everything after goes through."""

    def __init__(self, upstream_port: int, reset_once: bool = False) -> None:
        self.upstream_port = upstream_port
        self.reset_once = reset_once
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.holding = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            held = threading.Event()
            threading.Thread(target=self._up, args=(client, upstream, held), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, held), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, held: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                reservation = b"EVALSHA" in data.upper() or b"LPOP" in data.upper()
                if reservation and not (self.reset_once and self.holding.is_set()):
                    held.set()
                    self.holding.set()
                upstream.sendall(data)

    def _down(self, upstream: socket.socket, client: socket.socket, held: threading.Event):
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not held.is_set():
                    client.sendall(data)
                elif self.reset_once:
                    # The reply is lost with the connection. shutdown(), not just close():
                    # the other pump thread is blocked reading these sockets.
                    for sock in (client, upstream):
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                    return

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy(resque):
    port = int(resque.url.rsplit(":", 1)[1].split("/")[0])
    proxy = HoldingProxy(port)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("requeue", [False, True], ids=["default", "requeue"])
def test_worker_killed_while_the_reservation_reply_is_held(
    resque, proxy, spawn_manage, settings, requeue
):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = requeue
    resque.client.script_load(_LUA)  # so the held reply is the reservation itself
    payload = wire.job_payload("Record", ["held"])
    resque.client.sadd(resque.key("queues"), "demo")
    resque.client.rpush(resque.key("queue", "demo"), payload)
    worker = spawn_manage(
        "resque_work",
        "--queues",
        "demo",
        "--interval",
        "0.2",
        env={"RESQUE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"},
    )
    wait_until(proxy.holding.is_set, timeout=30, message="the reservation to be sent")
    wait_until(
        lambda: resque.client.llen(resque.key("queue", "demo")) == 0,
        timeout=10,
        message="Redis to have executed the reservation",
    )
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    worker_id = f"{HOST}:{worker.pid}:demo"

    # At this instant the job was only ever popped by a process that is now dead: it must
    # still be recorded as that worker's in-flight job...
    record = json.loads(resque.client.get(resque.key("worker", worker_id)))
    assert record["queue"] == "demo"
    assert wire.dumps(record["payload"]) == payload
    # ...so that the clean-up (the manager's, or a prune) finds it.
    assert cleanup_dead_worker(worker_id) is True
    if requeue:
        assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [payload]
    else:
        [entry] = [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]
        assert entry["exception"] == "Resque::DirtyExit"
        assert entry["payload"] == {"class": "Record", "args": ["held"]}
    assert not resque.client.sismember(resque.key("workers"), worker_id)


def test_a_reservation_reply_lost_with_its_connection_is_not_a_lost_job(resque, spawn_manage):
    """Redis ran the reservation, then the connection broke before the reply arrived: the
    worker sees an outage, reconnects, and its next reservation hands it the same job."""
    port = int(resque.url.rsplit(":", 1)[1].split("/")[0])
    proxy = HoldingProxy(port, reset_once=True)
    try:
        resque.client.script_load(_LUA)
        resque.client.sadd(resque.key("queues"), "demo")
        resque.client.rpush(resque.key("queue", "demo"), wire.job_payload("Record", ["blip"]))
        worker = spawn_manage(
            "resque_work",
            "--queues",
            "demo",
            "--interval",
            "0.2",
            env={"RESQUE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"},
        )
        wait_until(
            lambda: resque.client.smembers(resque.key("demo", "done")) == {"blip"},
            timeout=30,
            message="the job whose reply was lost to run",
        )
        worker.send_signal(signal.SIGQUIT)
        output = worker.communicate(timeout=30)[0]
    finally:
        proxy.close()
    assert proxy.holding.is_set()
    assert resque.client.lrange(resque.key("failed"), 0, -1) == []
    assert "resumes the job recorded for it" in output, output

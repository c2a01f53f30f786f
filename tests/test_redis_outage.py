"""A Redis outage under a running worker or pool: the processes wait it out, register
again when Redis answers, and go on working. Real processes, a real redis-server that the
test stops and starts again on the same port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from resque_pool.resque import wire
from tests.support.common import wait_until
from tests.support.pool_fixtures import write
from tests.support.redis_server import free_port, spawn_redis_server

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs a redis-server binary to stop and restart"
)


class Server:
    """A redis-server on a fixed port that can be stopped and started again: empty, or with
    ``persistent`` what it held (an append-only file synced on every write)."""

    def __init__(self, tmp_path, persistent: bool = False) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if self.persistent:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.dir),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--logfile",
                    "",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            self.process = spawn_redis_server(self.port, str(self.dir))
        client = redis.Redis.from_url(self.url, decode_responses=True)
        wait_until(lambda: _pings(client), timeout=10, message="redis-server to answer")
        self.client = client

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path)
    server.start()
    yield server
    server.stop()


def _push_records(client: redis.Redis, tokens: list[str]) -> None:
    client.sadd("outage:queues", "demo")
    for token in tokens:
        client.rpush("outage:queue:demo", wire.job_payload("Record", [token]))


def _done(client: redis.Redis) -> set[str]:
    return client.smembers("outage:demo:done")


def test_worker_waits_out_an_outage_and_registers_again(server, spawn_manage):
    env = {"RESQUE_REDIS_URL": server.url, "RESQUE_NAMESPACE": "outage"}
    worker = spawn_manage("resque_work", "--queues", "demo", "--interval", "0.2", env=env)
    wait_until(
        lambda: server.client.scard("outage:workers") == 1,
        timeout=20,
        message="the worker to register",
    )
    (worker_id,) = server.client.smembers("outage:workers")

    server.stop()
    time.sleep(2.0)
    assert worker.poll() is None, "the worker exited during the outage"
    server.start()  # empty: no persistence

    wait_until(
        lambda: server.client.smembers("outage:workers") == {worker_id},
        timeout=20,
        message="the worker to register again",
    )
    _push_records(server.client, ["after"])
    wait_until(
        lambda: _done(server.client) == {"after"},
        timeout=20,
        message="the job pushed after the outage",
    )
    worker.terminate()
    output = worker.communicate(timeout=20)[0]
    assert output.count("Redis is unreachable") == 1, output  # logged once per outage
    assert "Redis answers again" in output


def test_pool_keeps_its_workers_through_an_outage(server, start_pool, tmp_path):
    env = {"RESQUE_REDIS_URL": server.url, "RESQUE_NAMESPACE": "outage"}
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 2\n")), env=env)
    before = pool.wait_for_workers({"demo": 2})

    server.stop()
    time.sleep(2.5)
    server.start()

    _push_records(server.client, [f"t{n}" for n in range(10)])
    wait_until(
        lambda: len(_done(server.client)) == 10,
        timeout=30,
        message=lambda: f"jobs after the outage (log:\n{pool.log()})",
    )
    assert set(pool.wait_for_workers({"demo": 2})) == set(before)  # no worker was restarted
    wait_until(
        lambda: server.client.scard("outage:workers") == 2,
        timeout=10,
        message="both workers registered again",
    )
    wait_until(
        lambda: server.client.exists(f"outage:pool:{pool_id(pool)}"),
        timeout=10,
        message="the pool's live state published again",
    )


def pool_id(pool) -> str:
    import socket

    return f"{socket.gethostname()}:{pool.pid}"


# -- no popped job lost, no stale registration ------------------------------------------

OUTAGE_ENV = {"RESQUE_NAMESPACE": "outage"}


def _busy_workers(client: redis.Redis) -> dict[str, str]:
    return {
        worker_id: client.get(f"outage:worker:{worker_id}")
        for worker_id in client.smembers("outage:workers")
        if client.get(f"outage:worker:{worker_id}")
    }


def _push_slow(client: redis.Redis, tokens: list[str], seconds: float) -> None:
    client.sadd("outage:queues", "demo")
    for token in tokens:
        client.rpush("outage:queue:demo", wire.job_payload("SlowRecord", [token, seconds]))


def _failed_tokens(client: redis.Redis) -> set[str]:
    tokens = set()
    for raw in client.lrange("outage:failed", 0, -1):
        entry = wire.loads(raw)
        tokens.add(str(entry["payload"]["args"][0]))
    return tokens


def _settled(client: redis.Redis, tokens: list[str], pool) -> bool:
    """Every job done or failed, nothing queued or in flight, and `workers` lists exactly
    the live workers."""
    accounted = _done(client) | _failed_tokens(client)
    if not set(tokens) <= accounted or client.llen("outage:queue:demo"):
        return False
    if _busy_workers(client):
        return False
    live = {int(worker_id.split(":")[1]) for worker_id in client.smembers("outage:workers")}
    return live == set(pool.workers())


@pytest.mark.parametrize("how", ["sigstop", "restart"])
def test_worker_killed_during_an_outage_loses_nothing(tmp_path, start_pool, how):
    """SIGSTOP/SIGCONT of the server, or a stop and start of one with persistence: a worker
    SIGKILLed during the outage leaves no stale registration once Redis is back, and its
    job is requeued (RESQUE_REQUEUE_DIRTY_JOBS) and done."""
    server = Server(tmp_path, persistent=how == "restart")
    server.start()
    try:
        pool = start_pool(
            "-c",
            str(write(tmp_path / "pool.yml", "demo: 2\n")),
            env={**OUTAGE_ENV, "RESQUE_REDIS_URL": server.url},
            settings={"RESQUE_REQUEUE_DIRTY_JOBS": True},
        )
        pool.wait_for_workers({"demo": 2})
        tokens = [f"t{n}" for n in range(6)]
        _push_slow(server.client, tokens, 1.5)
        busy = wait_until(
            lambda: len(_busy_workers(server.client)) == 2 and _busy_workers(server.client),
            timeout=20,
            message="two jobs in flight",
        )
        victim = sorted(busy)[0]
        if how == "sigstop":
            server.process.send_signal(signal.SIGSTOP)
        else:
            server.stop()
        try:
            os.kill(int(victim.split(":")[1]), signal.SIGKILL)
            time.sleep(1.0)
        finally:
            if how == "sigstop":
                server.process.send_signal(signal.SIGCONT)
            else:
                server.start()
        wait_until(
            lambda: _settled(server.client, tokens, pool),
            timeout=60,
            message=lambda: f"every job accounted for and no stale worker (log:\n{pool.log()})",
        )
        assert victim not in server.client.smembers("outage:workers")
        assert not server.client.exists(f"outage:worker:{victim}")
        # The victim's job was requeued, not failed (it may have failed only if the outage
        # hit its own write; the requeue policy never loses it either way).
        assert set(tokens) <= _done(server.client) | _failed_tokens(server.client)
    finally:
        server.stop()


def test_worker_missing_from_workers_registers_again_mid_job(server, spawn_manage):
    """Redis restarted empty while a job runs: the next heartbeat registers the worker
    again, before the job ends."""
    env = {"RESQUE_REDIS_URL": server.url, "RESQUE_NAMESPACE": "outage"}
    worker = spawn_manage(
        "resque_work",
        "--queues",
        "demo",
        "--interval",
        "0.2",
        env=env,
        settings={"RESQUE_HEARTBEAT_INTERVAL": 0.3},
    )
    wait_until(lambda: server.client.scard("outage:workers") == 1, 20, message="registered")
    (worker_id,) = server.client.smembers("outage:workers")
    _push_slow(server.client, ["long"], 8)
    wait_until(lambda: _busy_workers(server.client), 20, message="the job in flight")
    server.stop()
    server.start()  # empty
    wait_until(
        lambda: server.client.smembers("outage:workers") == {worker_id},
        timeout=5,
        message="the worker registered again by its heartbeat",
    )
    assert server.client.get(f"outage:worker:{worker_id}:started")
    assert not _done(server.client)  # still mid-job
    worker.send_signal(signal.SIGQUIT)
    worker.communicate(timeout=30)


def test_pool_workers_wait_for_redis_at_start_up(tmp_path, start_pool):
    """Redis unreachable when the pool starts: its workers wait (one log line each, no
    traceback, no crash loop) and register once Redis answers."""
    server = Server(tmp_path)  # not started yet
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "demo: 2\n")),
        "--no-scheduler",
        env={"RESQUE_REDIS_URL": server.url, "RESQUE_NAMESPACE": "outage"},
    )
    wait_until(lambda: pool.log().count("Redis is unreachable") == 2, 30, message="two waits")
    workers = set(pool.workers())
    time.sleep(2)
    server.start()
    try:
        wait_until(lambda: server.client.scard("outage:workers") == 2, 30, message="registered")
        assert set(pool.workers()) == workers  # the same processes: no crash loop
        log = pool.log()
        assert log.count("Redis is unreachable") == 2, log
        assert "Traceback" not in log
    finally:
        server.stop()


def test_a_redis_that_never_answers_stalls_neither_the_spawn_nor_the_manager(tmp_path, start_pool):
    """A Redis that accepts connections and never replies (a hung server, a half-open
    proxy): the manager's own calls give up after its bound, so it still forks its workers,
    logs the failure once, and still handles its signals."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # listens, never accepts
    try:
        port = silent.getsockname()[1]
        pool = start_pool(
            "-c",
            str(write(tmp_path / "pool.yml", "demo: 2\n")),
            "--no-scheduler",
            env={"RESQUE_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
        )
        wait_until(lambda: len(pool.workers()) == 2, 30, message="two workers forked")
        wait_until(
            lambda: "could not publish the pool state" in pool.log(), 30, message="the failure"
        )
        pool.signal(signal.SIGQUIT)
        pool.wait_for_log("QUIT: graceful shutdown", timeout=15)
        log = pool.log()
        assert log.count("could not publish the pool state") == 1, log
        # The manager publishes (and so connects) before it forks its first worker.
        assert log.index("could not publish the pool state") < log.index("spawned worker"), log
    finally:
        silent.close()

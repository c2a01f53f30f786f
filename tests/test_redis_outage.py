"""A Redis outage under a running worker or pool: the processes wait it out, register
again when Redis answers, and go on working. Real processes, a real redis-server that the
test stops and starts again on the same port."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis

from resque_pool.resque import wire
from tests.conftest import wait_until
from tests.pool_fixtures import write
from tests.redis_server import free_port, spawn_redis_server

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs a redis-server binary to stop and restart"
)


class Server:
    """A redis-server on a fixed port that can be stopped and started again (empty)."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
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
        message=f"jobs after the outage (log:\n{pool.log()})",
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

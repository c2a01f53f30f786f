"""A Redis for the test suite: a real ``redis-server`` on a free port, else fakeredis's TCP
server, so every test talks to Redis over a real socket."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TestRedis:
    url: str
    kind: str
    _stop: list = field(default_factory=list)

    def stop(self) -> None:
        for stop in self._stop:
            stop()


def start() -> TestRedis:
    binary = shutil.which("redis-server")
    if binary:
        return _start_real(binary)
    return _start_fake()


def spawn_redis_server(
    port: int, workdir: str, binary: str = "redis-server", *extra: str
) -> subprocess.Popen:
    """A throwaway redis-server on 127.0.0.1:``port`` that keeps nothing on disk;
    ``extra`` options follow (a later option wins over an earlier one)."""
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            "",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _start_real(binary: str) -> TestRedis:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="resque-pool-test-redis-")
    process = spawn_redis_server(port, workdir, binary)
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for(url, process)

    def stop() -> None:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    return TestRedis(url=url, kind="redis-server", _stop=[stop])


def _start_fake() -> TestRedis:
    from fakeredis import TcpFakeServer

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for(url, None)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return TestRedis(url=url, kind="fakeredis", _stop=[stop])


def _wait_for(url: str, process: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + 10
    client = redis.Redis.from_url(url)
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


def wait_until_answering(client: redis.Redis, timeout: float = 10.0) -> None:
    """Ping ``client`` until its server answers; the last error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

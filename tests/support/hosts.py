"""Hosts for the suite: Linux network namespaces on a bridge, each with its own hostname.

``Lab`` builds, as root, a bridge in this machine's namespace with an address of a private
/24 picked at random, a redis-server listening on it, and one namespace per host joined to
the bridge by a veth pair. A host's processes run under ``ip netns exec`` (its network)
and ``unshare --uts`` (its hostname, which names its pool and workers), and share
everything else with the test: the filesystem, so the test's SQLite file, PostgreSQL's
Unix socket and libfaketime reach every host.

``cut(host)`` takes the bridge's end of the host's veth down: the host's packets are
dropped without an answer, so its TCP connections hang as they do when a link is cut on a
real network (no reset, no error until a timeout or a keepalive says so). ``mend(host)``
brings it back. What a cut does not cut: the filesystem (SQLite, PostgreSQL through its
Unix socket, files), signals, and ``/proc``: a host in this lab loses Redis, nothing else.

PostgreSQL listens on the loopback of the test's namespace, which no host can reach (each
has a loopback of its own); ``database_env`` hands the hosts a Unix socket instead, which
the lab forwards to it (``UnixForwarder``), as a host on a real network reaches its
database by a path the Redis link does not share.

Everything is removed when the lab closes; a test whose machine refuses namespaces (not
root, no ``ip``/``unshare``, a container without the capability) is skipped with the
reason.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis

from tests.support.common import ROOT
from tests.support.redis_server import free_port, wait_until_answering


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=20)


def skip_unless_namespaces() -> None:
    """Skip the calling test, with the reason, where this machine cannot build a lab."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs the suite as root)")
    missing = [tool for tool in ("ip", "unshare", "redis-server") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"network namespaces need {', '.join(missing)}")
    probe = subprocess.run(
        ["unshare", "--net", "--uts", "true"], capture_output=True, text=True, timeout=10
    )
    if probe.returncode != 0:
        pytest.skip(f"this machine refuses network namespaces: {probe.stderr.strip()}")


class UnixForwarder:
    """Connections to ``<directory>/.s.PGSQL.<port>`` (where libpq looks when the host is a
    directory) carried to ``host:port`` over TCP, by threads of the test's process."""

    def __init__(self, directory: str, host: str, port: int) -> None:
        self.path = os.path.join(directory, f".s.PGSQL.{port}")
        self.target = (host, port)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    outer: str  # the veth's end on the bridge, in the test's namespace


@dataclass
class Lab:
    tag: str
    subnet: str  # "10.a.b", the /24 without its last byte
    bridge: str
    workdir: str
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    redis_port: int = 0
    redis: subprocess.Popen | None = None
    forwarders: list[UnixForwarder] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.gateway}:{self.redis_port}/0"

    # -- building -----------------------------------------------------------------------

    def open(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                self.gateway,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
                "--logfile",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def add_host(self, name: str) -> Host:
        number = len(self.hosts) + 1
        host = Host(
            name=name,
            namespace=f"rp{self.tag}{number}",
            address=f"{self.subnet}.{10 + number}",
            outer=f"rp{self.tag}{number}o",
        )
        inner = f"rp{self.tag}{number}i"
        _ip("netns", "add", host.namespace)
        self.hosts[name] = host  # from here on, close() removes it
        _ip("link", "add", host.outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.namespace)
        _ip("link", "set", host.outer, "master", self.bridge)
        _ip("link", "set", host.outer, "up")
        _ip("addr", "add", f"{host.address}/24", "dev", inner, namespace=host.namespace)
        _ip("link", "set", inner, "up", namespace=host.namespace)
        _ip("link", "set", "lo", "up", namespace=host.namespace)
        return host

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        for forwarder in self.forwarders:
            forwarder.close()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(10)
        for host in self.hosts.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", host.outer)
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.namespace)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- running ------------------------------------------------------------------------

    def spawn(
        self, host: str, argv: Sequence[str], env: dict[str, str], **popen: object
    ) -> subprocess.Popen:
        """Start ``argv`` on ``host``: in its network namespace, under its own hostname,
        in a new session (the lab kills its process group when it closes)."""
        target = self.hosts[host]
        command = [
            "ip", "netns", "exec", target.namespace,
            "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', target.name, *argv,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, start_new_session=True, text=True, **popen
        )
        self.processes.append(process)
        return process

    def database_env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` (a test's ``database_env``) for the hosts: a PostgreSQL on a TCP
        loopback is reached through a Unix socket of the lab's, forwarded to it."""
        url = urlsplit(env.get("DATABASE_URL", ""))
        if not url.scheme.startswith("postgres") or url.hostname not in ("127.0.0.1", "localhost"):
            return env
        if not self.forwarders:
            self.forwarders.append(UnixForwarder(self.workdir, url.hostname, url.port or 5432))
        user = f"{url.username}@" if url.username else ""
        if url.password:
            user = f"{url.username}:{url.password}@"
        # libpq's host=<directory> (django-environ passes the query on as OPTIONS); the
        # port names the socket file, .s.PGSQL.<port>.
        query = f"host={quote(self.workdir, safe='')}&port={url.port or 5432}"
        return {**env, "DATABASE_URL": urlunsplit((url.scheme, user, url.path, query, ""))}

    def cut(self, host: str) -> None:
        """The host's link goes dead: its packets are dropped without an answer."""
        _ip("link", "set", self.hosts[host].outer, "down")

    def mend(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].outer, "up")


@contextlib.contextmanager
def lab(*host_names: str) -> Iterator[Lab]:
    """A lab with these hosts and a Redis on the bridge, removed afterwards."""
    skip_unless_namespaces()
    tag = f"{random.randrange(16**5):05x}"
    built = Lab(
        tag=tag,
        subnet=f"10.{random.randrange(64, 250)}.{random.randrange(1, 250)}",
        bridge=f"rp{tag}br",
        workdir=tempfile.mkdtemp(prefix="resque-pool-lab-"),
        redis_port=free_port(),
    )
    try:
        built.open()
        for name in host_names:
            built.add_host(name)
        wait_until_answering(redis.Redis.from_url(built.redis_url, socket_timeout=1))
        yield built
    finally:
        built.close()

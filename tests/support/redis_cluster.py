"""A Redis Cluster for the cluster tests: three masters and one replica each, on free
loopback ports (and each port's cluster bus, 10000 above it), created with
``redis-cli --cluster create``. Nothing on disk but each node's own ``nodes.conf``."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from tests.support.redis_server import free_port, spawn_redis_server, wait_until_answering

MASTERS = 3
# A master silent this long is failing; its replica is promoted about a second later
# (Redis's election delay: 500 ms plus up to 500 ms at random, plus its rank).
NODE_TIMEOUT_MS = 1000


def missing_binaries() -> str | None:
    """Why the cluster tests cannot run here, or None."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            return (
                f"needs {binary} (Debian's redis-server and redis-tools; scripts/bootstrap.sh "
                "installs them as root)"
            )
    return None


def _free_node_port() -> int:
    """A free port whose cluster bus port (10000 above) is free too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            try:
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


class RedisCluster:
    """Six nodes: three masters sharing the 16384 slots, and a replica of each."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = [_free_node_port() for _ in range(2 * MASTERS)]
        self.nodes: dict[int, subprocess.Popen] = {}

    # -- addresses -----------------------------------------------------------------------

    def url(self, port: int | None = None) -> str:
        """A URL naming one node: the client learns the others from it."""
        return f"redis://127.0.0.1:{port or self.ports[0]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def owner_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot, as a live node's CLUSTER SLOTS
        says."""
        slot = key_slot(key.encode())
        for port in self.nodes:
            try:
                ranges = self.node(port).execute_command("CLUSTER SLOTS")
            except redis.RedisError:
                continue
            for start, end, master, *_replicas in ranges:
                if int(start) <= slot <= int(end):
                    return int(master[1])
        raise RuntimeError(f"no live node knows who serves slot {slot}")

    def replica_of(self, master: int) -> int:
        """The port of a live replica of the master on ``master``."""
        for port in self.nodes:
            if port == master:
                continue
            replication = self.node(port).info("replication")
            if replication.get("role") == "slave" and replication.get("master_port") == master:
                return port
        raise RuntimeError(f"no replica of :{master}")

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout[-2000:]}")
        self.wait_healthy()

    def _start_node(self, port: int) -> None:
        node_dir = self.workdir / f"node-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        self.nodes[port] = spawn_redis_server(
            port,
            str(node_dir),
            "redis-server",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            # A replica may always take over, however long its link was down.
            "--cluster-replica-validity-factor",
            "0",
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str(node_dir / "redis.log"),
        )
        wait_until_answering(self.node(port))

    def _healthy(self) -> bool:
        """Every live node says the cluster is ok, and every master has a linked replica."""
        masters_with_replicas = 0
        for port in self.nodes:
            try:
                node = self.node(port)
                if node.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                    return False
                replication = node.info("replication")
            except redis.RedisError:
                return False
            if replication.get("role") == "master" and replication.get("connected_slaves", 0):
                masters_with_replicas += 1
        return masters_with_replicas == MASTERS

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster was not healthy within {timeout}s")

    def kill(self, port: int) -> None:
        """SIGKILL the node: no shutdown, no last replication, its sockets reset."""
        process = self.nodes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def restart(self, port: int) -> None:
        """Start a killed node again from its nodes.conf: it rejoins as a replica of the
        master that replaced it."""
        self._start_node(port)

    def wait_for_new_owner(self, key: str, old_port: int, timeout: float = 30) -> int:
        """Until a live node names a master other than ``old_port`` for ``key``'s slot and
        that master says it is one (the promotion); its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.owner_of(key)
            except RuntimeError:
                port = None
            if port is not None and port != old_port:
                try:
                    if self.node(port).info("replication").get("role") == "master":
                        return port
                except redis.RedisError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"no replica took over from :{old_port} within {timeout}s")

    def logs(self) -> str:
        return "\n".join(
            f"== {path.parent.name}\n" + path.read_text(errors="replace")[-1500:]
            for path in sorted(self.workdir.glob("node-*/redis.log"))
        )

    def stop(self) -> None:
        for process in self.nodes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.nodes.clear()

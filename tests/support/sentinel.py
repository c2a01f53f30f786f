"""A Redis that fails over, for the failover tests: a master, a replica and three
sentinels (Debian's ``redis-sentinel``), all on free loopback ports, none of it on disk
beyond the sentinels' own configuration files (Sentinel rewrites them as it goes)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import free_port, spawn_redis_server, wait_until_answering

SERVICE = "failover-test"
# Fast enough for a test, slow enough that a loaded 2-core machine does not flap: a master
# silent for 1 s is subjectively down; two sentinels agreeing make it objectively down.
DOWN_AFTER_MS = 1000
# Sentinel starts no second failover of one master within twice this: the second failover
# of a test (back to the first node) waits for it.
FAILOVER_TIMEOUT_MS = 3000


def missing_binaries() -> str | None:
    """Why the failover tests cannot run here, or None."""
    for binary in ("redis-server", "redis-sentinel"):
        if shutil.which(binary) is None:
            return (
                f"needs Debian's {binary} (scripts/bootstrap.sh installs it as root: "
                f"apt-get install {binary})"
            )
    return None


class SentinelRedis:
    """Two Redis nodes (one master, one replica) watched by three sentinels."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.node_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.nodes: dict[int, subprocess.Popen] = {}
        self.sentinels: list[subprocess.Popen] = []

    # -- addresses -----------------------------------------------------------------------

    @property
    def sentinel_list(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def env(self) -> dict[str, str]:
        """What a process needs to find the master through the sentinels (the URL's host
        and port are deliberately wrong: the sentinels must win)."""
        return {
            "RESQUE_REDIS_URL": "redis://127.0.0.1:1/0",
            "RESQUE_REDIS_SENTINELS": ",".join(self.sentinel_list),
            "RESQUE_REDIS_SENTINEL_SERVICE": SERVICE,
        }

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                address = redis.Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(
                    SERVICE
                )
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def master(self) -> redis.Redis:
        port = self.master_port()
        assert port is not None, "no sentinel names a master"
        return self.node(port)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        master, replica = self.node_ports
        self.start_node(master)
        self.start_node(replica, replica_of=master)
        self.wait_replica_in_sync(replica, master)
        for port in self.sentinel_ports:
            self._start_sentinel(port, master)
        # Every sentinel must know the replica and the other sentinels before a failover
        # can be agreed on.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(self._sentinel_ready(port) for port in self.sentinel_ports):
                return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not discover each other within 30 s")

    def start_node(self, port: int, replica_of: int | None = None) -> None:
        node_dir = self.workdir / f"node-{port}"
        node_dir.mkdir(exist_ok=True)
        options = [
            # A replica (re)joining gets its full sync at once, not after Redis 7's 5 s wait
            # for more replicas to share a diskless transfer.
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str(node_dir / "redis.log"),
        ]
        if replica_of is not None:
            options += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.nodes[port] = spawn_redis_server(port, str(node_dir), "redis-server", *options)
        wait_until_answering(self.node(port))

    def wait_replica_in_sync(self, replica: int, master: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = self.node(replica).info("replication")
            except redis.RedisError:
                info = {}
            if (
                info.get("role") == "slave"
                and info.get("master_port") == master
                and info.get("master_link_status") == "up"
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"replica :{replica} not in sync with :{master} within {timeout}s")

    def _start_sentinel(self, port: int, master: int) -> None:
        config = self.workdir / f"sentinel-{port}.conf"
        config.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.workdir}\n"
            f"logfile {self.workdir}/sentinel-{port}.log\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.sentinels.append(
            subprocess.Popen(
                ["redis-sentinel", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def _sentinel_ready(self, port: int, master: int | None = None) -> bool:
        """This sentinel sees the master (``master`` when given) up, the two other
        sentinels, and a replica that is up and linked to it."""
        try:
            sentinel = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            state = sentinel.sentinel_master(SERVICE)
            replicas = sentinel.sentinel_slaves(SERVICE)
        except redis.RedisError:
            return False
        if master is not None and int(state["port"]) != master:
            return False
        healthy = [
            replica
            for replica in replicas
            if not replica["is_sdown"] and replica.get("master-link-status") == "ok"
        ]
        return (
            not state["is_sdown"]
            and int(state.get("num-other-sentinels", 0)) >= 2
            and len(healthy) >= 1
        )

    def wait_ready(self, master: int, timeout: float = 30) -> None:
        """Until every sentinel agrees that ``master`` is the master and has a healthy
        replica: only then can a second failover go anywhere."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._sentinel_ready(port, master) for port in self.sentinel_ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the sentinels did not all settle on :{master} within {timeout}s")

    def kill(self, port: int) -> None:
        """SIGKILL the node: no shutdown, no last replication, its sockets reset."""
        process = self.nodes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def wait_for_new_master(self, old_port: int, timeout: float = 30) -> int:
        """Poll the sentinels until they name a master other than ``old_port`` that says it
        is one (the promotion); its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                try:
                    if self.node(port).info("replication").get("role") == "master":
                        return port
                except redis.RedisError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"no failover away from :{old_port} within {timeout}s")

    def sentinel_logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-2000:]
            for path in sorted(self.workdir.glob("sentinel-*.log"))
        )

    def stop(self) -> None:
        for process in [*self.sentinels, *self.nodes.values()]:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.sentinels.clear()
        self.nodes.clear()

"""Redis Cluster: a client on the node that serves the namespace's hash slot.

A namespace with a hash tag (``{resque}``) puts every key it names in one slot, so one
master serves all of it at any moment, as with Sentinel. The client is therefore an
ordinary ``redis.Redis`` whose connections open to that master: transactions with WATCH,
scripts, pipelines, blocking pops and the commands about no key (``TIME``, ``INFO``,
``SCAN``, ``PING``, ``CLIENT ...``) all reach the node holding the namespace, unchanged.
Which node that is comes from redis-py's ``RedisCluster`` (its ``CLUSTER SLOTS`` view of
the topology), read when a connection opens and no owner is known yet or the last one
failed, much as redis-py's ``SentinelConnectionPool`` asks the sentinels.

A failover shows as a connection error (the dead master) or as ``MOVED`` for the
namespace's slot (a live node that no longer serves it, a blocked pop redirected): the
connection closes, the topology is read again, and the ``ConnectionError`` it raises is an
outage (``outages.py``) that redis-py's retry and then the caller's wait out. A ``MOVED``
for any other slot is a key outside the namespace, a bug that waiting does not heal: it
is raised as it is.
"""

from __future__ import annotations

import threading
from typing import Any

import redis as redis_lib
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.crc import key_slot
from redis.exceptions import MovedError, RedisClusterException, ResponseError

# What this process learnt of each cluster, by the node the URL names: its nodes and which
# of them serves each slot asked for. Plain addresses, no socket, so a fork keeps them: a
# worker or a job child connects straight to the namespace's master without reading the
# topology again, and one forked after the URL's node died still finds the others.
_known_nodes: dict[tuple[str, int], list[tuple[str, int]]] = {}
_known_owners: dict[tuple[tuple[str, int], int], tuple[str, int]] = {}
_known_lock = threading.Lock()
# A blocked command on a master demoted under it (Redis 7 unblocks it with this error).
_UNBLOCKED = "UNBLOCKED"


def hash_tag(namespace: str) -> str | None:
    """The part of ``namespace`` Redis hashes for every key under it (``"{resque}"`` ->
    ``"resque"``), or None when the keys of one namespace would spread over slots: no
    ``{``, no ``}`` after it within the namespace, or nothing between the two."""
    start = namespace.find("{")
    if start < 0:
        return None
    end = namespace.find("}", start + 1)
    if end <= start + 1:
        return None
    return namespace[start + 1 : end]


class SlotOwner:
    """Which master serves one slot: the one this process (or the one it was forked from)
    last found, else as redis-py's ``RedisCluster`` reads the topology. Read on first use
    (not at construction, which must not do I/O) and again after a connection to the owner
    failed or was redirected."""

    def __init__(self, startup: tuple[str, int], slot: int, options: dict[str, Any]) -> None:
        self.startup = startup
        self.slot = slot
        self._options = options
        self._cluster: RedisCluster | None = None
        self._stale = False
        self._lock = threading.Lock()

    def address(self) -> tuple[str, int]:
        """The owner's ``(host, port)``; ``ConnectionError`` while no node answers or none
        serves the slot (a failover still settling)."""
        with self._lock:
            if not self._stale:
                with _known_lock:
                    known = _known_owners.get((self.startup, self.slot))
                if known is not None:
                    return known
            try:
                if self._cluster is None:
                    self._cluster = self._connect()  # reads the topology
                else:
                    self._cluster.nodes_manager.initialize()
                node = self._cluster.nodes_manager.get_node_from_slot(self.slot)
            except (RedisClusterException, redis_lib.RedisError) as error:
                raise redis_lib.ConnectionError(
                    f"no Redis Cluster node says who serves slot {self.slot}: {error}"
                ) from error
            self._stale = False
            owner = (node.host, int(node.port))
            nodes = [(each.host, int(each.port)) for each in self._cluster.get_nodes()]
            with _known_lock:
                _known_nodes[self.startup] = nodes
                _known_owners[(self.startup, self.slot)] = owner
            return owner

    def forget(self) -> None:
        """The owner failed us: read the topology again before the next connection."""
        self._stale = True

    def _connect(self) -> RedisCluster:
        with _known_lock:
            others = [node for node in _known_nodes.get(self.startup, ()) if node != self.startup]
        startup = [ClusterNode(*self.startup)] + [ClusterNode(host, port) for host, port in others]
        # require_full_coverage=False: a slot of another master unserved for a moment
        # (its own failover) does not stop this namespace.
        return RedisCluster(startup_nodes=startup, require_full_coverage=False, **self._options)


class SlotConnection(redis_lib.Connection):
    """A connection to whichever master serves the namespace's slot when it opens."""

    def __init__(self, *, slot_owner: SlotOwner, **kwargs: Any) -> None:
        self.slot_owner = slot_owner
        super().__init__(**kwargs)

    def _connect(self) -> Any:
        self.host, self.port = self.slot_owner.address()
        try:
            return super()._connect()
        except OSError:
            self.slot_owner.forget()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as error:
            if _moved_slot(error) == self.slot_owner.slot:
                self._lost_slot(f"the namespace's slot moved: {error}")
            elif str(error).startswith(_UNBLOCKED):
                self._lost_slot(f"the master was demoted: {error}")
            raise

    def _lost_slot(self, why: str) -> None:
        self.slot_owner.forget()
        self.disconnect()
        raise redis_lib.ConnectionError(why)


def _moved_slot(error: ResponseError) -> int | None:
    """The slot a ``MOVED`` reply names, else None. (redis-py 8 parses it into a
    ``MovedError`` on any connection; older ones, 5.0 at least, only in their cluster
    client, and a plain connection raises the reply's text.)"""
    if isinstance(error, MovedError):
        return error.slot_id
    code, _, rest = str(error).partition(" ")
    if code == "MOVED" and rest.partition(" ")[0].isdigit():
        return int(rest.partition(" ")[0])
    return None


class SlotSSLConnection(SlotConnection, redis_lib.SSLConnection):
    pass


def cluster_client(url: str, namespace: str, options: dict[str, Any]) -> redis_lib.Redis:
    """A client for the master serving ``namespace``'s slot, found through the node
    ``url`` names (its password, user name and TLS apply to every node). ``options`` are
    the client options (decoding, protocol, timeouts), the URL's own query winning."""
    tag = hash_tag(namespace)
    if tag is None:
        raise redis_lib.exceptions.DataError(
            f"RESQUE_NAMESPACE {namespace!r} has no hash tag such as '{{resque}}': its keys "
            "would spread over the cluster's slots"
        )
    pool_options = {**options, **parse_url(url)}
    if pool_options.get("db", 0) not in (0, "0"):
        raise redis_lib.exceptions.DataError("Redis Cluster has only database 0")
    pool_options.pop("db", None)
    host = pool_options.pop("host", "localhost")
    port = int(pool_options.pop("port", 6379))
    tls = pool_options.pop("connection_class", None) is redis_lib.SSLConnection
    topology_options = {
        name: value
        for name, value in pool_options.items()
        if name in ("username", "password", "protocol", "driver_info", "lib_name", "lib_version")
        or name.startswith("ssl_")
    }
    if tls:
        topology_options["ssl"] = True
    # The topology is read with bounded waits: a node that is gone is skipped for the next.
    topology_options.update(socket_timeout=2.0, socket_connect_timeout=2.0)
    owner = SlotOwner((host, port), key_slot(tag.encode()), topology_options)
    pool_options.setdefault("socket_connect_timeout", 5.0)
    pool = redis_lib.ConnectionPool(
        connection_class=SlotSSLConnection if tls else SlotConnection,
        slot_owner=owner,
        # The node named in the URL, for messages and the dashboard; each connection
        # replaces it with the slot's owner when it opens.
        host=host,
        port=port,
        **pool_options,
    )
    return redis_lib.Redis(connection_pool=pool)

"""The Redis connection and Resque's key names.

Strings are decoded as UTF-8 with ``surrogateescape`` so that any bytes Redis holds survive
a round trip through Python untouched (a payload that is not valid UTF-8 is still written
back byte for byte into a failure entry).
"""

from __future__ import annotations

import inspect
import socket
import threading
from collections.abc import Sequence
from typing import Any

import redis as redis_lib
from redis.commands.core import Script
from redis.connection import parse_url
from redis.sentinel import Sentinel

from resque_pool.conf import settings
from resque_pool.resque.cluster import cluster_client

_lock = threading.Lock()
# No CLIENT SETINFO when a connection opens: it costs two round trips and, to find its own
# version, an importlib.metadata scan of sys.path; in a freshly forked worker that scan
# copies about 1.6 MiB of the manager's pages and takes milliseconds (docs/benchmarks.md).
# redis-py 8 spells it driver_info=None; 5 to 7 spell it lib_name=None, lib_version=None.
_NO_CLIENT_SETINFO = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis_lib.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)
_clients: dict[tuple, redis_lib.Redis] = {}
# Seconds a reply may take before a call raises TimeoutError (None: wait for ever). A worker
# its manager watches for hangs sets it, so that a Redis that stops answering reads as an
# outage the worker waits out (still reporting progress), not as a hung worker.
_socket_timeout: float | None = None
# Sentinels answer from memory at once: a sentinel that takes longer than this (a dead host,
# a half-open connection) is skipped for the next one rather than stalling master discovery.
SENTINEL_TIMEOUT = 2.0
# Bound on opening a connection to a master found through Sentinel: after a failover the old
# master's address may not even refuse (a host that is gone drops the SYN), and the next
# attempt asks the sentinels again.
SENTINEL_CONNECT_TIMEOUT = 5.0


def sentinel_addresses(entries: Sequence[str]) -> list[tuple[str, int]]:
    """``["10.0.0.1:26379", "[::1]:26379"]`` -> ``[("10.0.0.1", 26379), ("::1", 26379)]``;
    ValueError with the bad entry for anything that is not ``host:port``."""
    addresses = []
    for entry in entries:
        host, sep, port = str(entry).rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port")
        addresses.append((host, int(port)))
    return addresses


# A connection whose peer vanished without a word (a cut link, a host gone, a partition)
# never errs by itself: an idle worker's BLPOP, which waits without a time-out, would wait
# for ever. TCP keepalive probes a connection silent for KEEPALIVE_IDLE seconds every
# KEEPALIVE_INTERVAL seconds and gives up after KEEPALIVE_PROBES unanswered ones: a dead
# peer is found within about 25 s, a live one answers the probes and is left alone.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 10, 5, 3


def keepalive_options() -> dict[int, int]:
    """The socket options for ``socket_keepalive_options`` where the system has them."""
    wanted = {
        "TCP_KEEPIDLE": KEEPALIVE_IDLE,
        "TCP_KEEPINTVL": KEEPALIVE_INTERVAL,
        "TCP_KEEPCNT": KEEPALIVE_PROBES,
    }
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def _client_options() -> dict[str, Any]:
    # RESP2 unless the URL says ?protocol=3: every Redis a Resque user may run speaks it,
    # whereas redis-py 8 would otherwise pick RESP3 (Redis >= 6).
    return {
        "decode_responses": True,
        "encoding_errors": "surrogateescape",
        "protocol": 2,
        **_NO_CLIENT_SETINFO,
        "socket_timeout": _socket_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive_options(),
    }


def _sentinel_client(url: str, entries: Sequence[str], service: str) -> redis_lib.Redis:
    """A client for ``service``'s current master, as the sentinels name it. Every new
    connection asks them (so a failover is followed on the next reconnect), and a master
    demoted under an open connection (``READONLY``) closes it: redis-py's
    ``SentinelManagedConnection`` turns both into ``ConnectionError``, an outage to
    ``outages.py``. The URL still gives the password, the database number and TLS."""
    options = _client_options()
    # The URL's own query (?socket_timeout=, ?protocol=) wins, as in Redis.from_url.
    options.update(parse_url(url))
    for address_only in ("host", "port", "path"):
        options.pop(address_only, None)
    tls = options.pop("connection_class", None) is redis_lib.SSLConnection
    if tls:
        options["ssl"] = True  # SentinelConnectionPool then picks the TLS connection class
    options.setdefault("socket_connect_timeout", SENTINEL_CONNECT_TIMEOUT)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        "decode_responses": True,
        "protocol": 2,
        **_NO_CLIENT_SETINFO,
    }
    if settings.RESQUE_REDIS_SENTINEL_PASSWORD:
        sentinel_options["password"] = settings.RESQUE_REDIS_SENTINEL_PASSWORD
    if settings.RESQUE_REDIS_SENTINEL_USERNAME:  # an ACL user (Redis >= 6.2's sentinels)
        sentinel_options["username"] = settings.RESQUE_REDIS_SENTINEL_USERNAME
    if tls:  # a TLS deployment's sentinels listen on TLS too
        sentinel_options["ssl"] = True
        sentinel_options.update({k: v for k, v in options.items() if k.startswith("ssl_")})
    manager = Sentinel(sentinel_addresses(entries), sentinel_kwargs=sentinel_options)
    return manager.master_for(service, **options)


def get_redis() -> redis_lib.Redis:
    """The shared client (one connection pool per process): ``RESQUE_REDIS_URL``, or the
    master of ``RESQUE_REDIS_SENTINEL_SERVICE`` when ``RESQUE_REDIS_SENTINELS`` is set, or
    the cluster master serving the namespace's slot when ``RESQUE_REDIS_CLUSTER`` is."""
    url = settings.RESQUE_REDIS_URL
    sentinels = settings.RESQUE_REDIS_SENTINELS
    service = settings.RESQUE_REDIS_SENTINEL_SERVICE
    cluster = settings.RESQUE_REDIS_CLUSTER
    which = (url, tuple(sentinels or ()), service, namespace() if cluster else None)
    client = _clients.get(which)
    if client is None:
        with _lock:
            client = _clients.get(which)
            if client is None:
                if cluster:
                    client = cluster_client(url, namespace(), _client_options())
                elif sentinels:
                    client = _sentinel_client(url, sentinels, service)
                else:
                    client = redis_lib.Redis.from_url(url, **_client_options())
                _clients[which] = client
    return client


def describe_redis() -> str:
    """Where this process's Redis is, for messages: the URL without its password, or the
    service and its sentinels, or the cluster."""
    # Imported on first use: debug.py imports Django's error-page module, which every
    # worker would otherwise load at start-up for a message it may never write.
    from resque_pool.debug import mask_url

    if settings.RESQUE_REDIS_CLUSTER:
        return f"Redis Cluster at {mask_url(settings.RESQUE_REDIS_URL)}"
    sentinels = settings.RESQUE_REDIS_SENTINELS
    if sentinels:
        return (
            f"Redis service {settings.RESQUE_REDIS_SENTINEL_SERVICE!r} "
            f"(sentinels {', '.join(sentinels)})"
        )
    return f"Redis at {mask_url(settings.RESQUE_REDIS_URL)}"


_scripts: dict[str, Script] = {}


def registered_script(source: str) -> Script:
    """The Lua script ``source``, registered once per process (redis-py runs it with
    EVALSHA and loads it into a server that does not know it yet: a restart, a failover).
    Call it with ``client=get_redis()``: the client it was registered with may be one a
    forked child has dropped since."""
    script = _scripts.get(source)
    if script is None:
        client = get_redis()  # outside the lock: get_redis() takes it too
        with _lock:
            script = _scripts.setdefault(source, client.register_script(source))
    return script


def reset_connections() -> None:
    """Forget every client; call in a freshly forked child so it never shares a socket.

    The inherited sockets are left for garbage collection rather than shut down, because
    shutting a socket down in the child would cut the parent's connection too.
    """
    with _lock:
        _clients.clear()


# Clients a job child stopped using without closing them (``abandon_clients``).
_abandoned: list[dict[tuple, redis_lib.Redis]] = []


def abandon_clients(socket_timeout: float | None) -> None:
    """In a job child, which ``_exit``s soon: later calls get new clients with
    ``socket_timeout``, and the inherited ones are kept alive instead of being closed.

    Closing them runs redis-py's disconnect path, which writes to (and so copies) about 170
    of the parent's pages: half a millisecond per job, for sockets the kernel closes at
    exit anyway. A long-lived child (a worker) uses ``reset_connections`` instead."""
    global _clients, _socket_timeout
    with _lock:
        _abandoned.append(_clients)
        _clients = {}
        _socket_timeout = socket_timeout


def set_socket_timeout(seconds: float | None) -> None:
    """Bound every later call of this process's clients (a ``?socket_timeout=`` in the URL
    still wins)."""
    global _socket_timeout
    _socket_timeout = seconds
    reset_connections()


def namespace() -> str:
    return settings.RESQUE_NAMESPACE


def key(*parts: str) -> str:
    """``key("queue", "high")`` -> ``"resque:queue:high"`` (redis-namespace's layout)."""
    return ":".join((namespace(), *parts))

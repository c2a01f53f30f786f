"""The Redis connection and Resque's key names.

Strings are decoded as UTF-8 with ``surrogateescape`` so that any bytes Redis holds survive
a round trip through Python untouched (a payload that is not valid UTF-8 is still written
back byte for byte into a failure entry).
"""

from __future__ import annotations

import inspect
import threading

import redis as redis_lib
from redis.commands.core import Script

from resque_pool.conf import settings

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
_clients: dict[str, redis_lib.Redis] = {}
# Seconds a reply may take before a call raises TimeoutError (None: wait for ever). A worker
# its manager watches for hangs sets it, so that a Redis that stops answering reads as an
# outage the worker waits out (still reporting progress), not as a hung worker.
_socket_timeout: float | None = None


def get_redis() -> redis_lib.Redis:
    """The shared client for ``RESQUE_REDIS_URL`` (one connection pool per process)."""
    url = settings.RESQUE_REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                # RESP2 unless the URL says ?protocol=3: every Redis a Resque user may run
                # speaks it, whereas redis-py 8 would otherwise pick RESP3 (Redis >= 6).
                client = redis_lib.Redis.from_url(
                    url,
                    decode_responses=True,
                    encoding_errors="surrogateescape",
                    protocol=2,
                    **_NO_CLIENT_SETINFO,
                    socket_timeout=_socket_timeout,
                )
                _clients[url] = client
    return client


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
_abandoned: list[dict[str, redis_lib.Redis]] = []


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

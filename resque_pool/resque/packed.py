"""A worker's two round trips per job, packed once and sent on a connection it keeps.

Each in-process job costs the worker the reserve script (``EVALSHA``) and the
``done_working`` pipeline. Sent through redis-py's command API, the client's work around
those two round trips cost more CPU than everything else the worker does for a no-op job:
every argument encoded and packed again (the same keys for every job), the connection
taken from the pool and checked for stray data (three system calls), the observability
hooks, then handed back. Here the commands are packed once per worker (the reserve
script's again when its ``run_at`` second changes) and written on a connection this
thread keeps out of the pool while it works (a worker hands it back when it goes idle,
so that its waits do not open a second one); the replies are read as redis-py reads them.

Nothing else changes: the bytes on the wire are the same; before each write the kept
socket is checked as the pool checks a connection it lends (anything to read, such as
the server having closed an idle connection, and it is opened again), with one ``poll``;
a connection error is retried as the connection's ``Retry`` says, as ``execute_command``
does; an error reply is raised after every reply was read, as ``Pipeline.execute()``
does; and any other failure closes the connection, so no reply is ever left unread.

Only for redis-py's plain TCP and Unix socket connections (a Redis Cluster's connection to
the namespace's master is one); for anything else (TLS,
fakeredis, a wrapper) ``send`` returns None and the caller uses the ordinary API.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import redis as redis_lib
from redis.exceptions import ResponseError

from resque_pool.resque.cluster import SlotConnection

# Commands packed per thread and client; a worker has a few entries (the reserve script
# per run_at second, done_working per job class and duration bucket), a test process
# more: bounded all the same (a few hundred bytes each).
_MAX_PACKED = 256
# Exactly these classes (not subclasses): their sockets show pending replies to poll(2).
# A TLS socket may hold records poll cannot see, or show ones that are no reply: TLS
# connections keep the ordinary API.
# A cluster's SlotConnection is a plain TCP one whose read_response turns a MOVED for the
# namespace's slot into a ConnectionError, which the retry below handles as any other.
_PLAIN = (redis_lib.Connection, redis_lib.UnixDomainSocketConnection, SlotConnection)


class _Channel:
    """One thread's connection to one client's server, and the commands packed for it."""

    def __init__(self, client: redis_lib.Redis) -> None:
        self.client = client
        self.connection: Any = None
        self.packed: dict[Hashable, tuple[list[bytes], int]] = {}
        self._poll = select.poll()
        self._polled = -1  # the descriptor registered with _poll
        self.supported = type(self.acquire()) in _PLAIN
        if not self.supported:
            self.release()

    def acquire(self) -> Any:
        """Take a connection from the pool (connected and checked, as for any command)."""
        pool = self.client.connection_pool
        try:
            self.connection = pool.get_connection()
        except TypeError:  # redis-py < 5.3 asks for a command name
            self.connection = pool.get_connection("_")
        return self.connection

    def release(self) -> None:
        """Hand the kept connection back to its pool."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            self.client.connection_pool.release(connection)

    def close(self) -> None:
        """Close the kept connection and hand it back to its pool. (redis-py's disconnect()
        shuts a socket down only in the process that opened it: in a forked child this
        closes the child's copy and leaves the parent's connection alone.)"""
        if self.connection is not None:
            self.connection.disconnect()
            self.release()

    def send(
        self,
        key: Hashable,
        commands: Callable[[], Sequence[tuple[Any, ...]]],
        tail: Sequence[tuple[Any, ...]] = (),
    ) -> list[Any]:
        connection = self.connection
        if connection is None:  # released while the worker was idle (or never taken)
            connection = self.acquire()
        elif self._readable(connection):
            # What the pool checks before lending a connection: a socket with something to
            # read before we asked (the server closed it, idle, or a stray reply) is not
            # fit to send on. Opened again on the send, as the pool would.
            connection.disconnect()
        entry = self.packed.get(key)
        if entry is None:
            if len(self.packed) >= _MAX_PACKED:
                self.packed.clear()
            built = list(commands())
            packed = b"".join(connection.pack_commands(built))
            entry = self.packed[key] = ([packed], len(built))
        packed_command, replies = entry
        if tail:
            # The part that changes with each job, packed each time and joined into the
            # same buffer: one sendall, one segment, one read for Redis (as sent apart,
            # Redis read the two parts in two events about every other job).
            packed_command = [b"".join([*packed_command, *connection.pack_commands(list(tail))])]
            replies += len(tail)

        def attempt() -> list[Any]:
            connection.send_packed_command(packed_command)
            results: list[Any] = []
            error: ResponseError | None = None
            for _ in range(replies):  # read every reply, errors too: the connection stays in step
                try:
                    results.append(connection.read_response())
                except ResponseError as reply_error:
                    error = error or reply_error
                    results.append(reply_error)
            if error is not None:
                raise error
            return results

        try:
            return connection.retry.call_with_retry(attempt, lambda error: connection.disconnect())
        except ResponseError:
            raise  # every reply was read
        except BaseException:
            # Never leave a reply unread on a kept connection (an interrupted read, an error
            # the retry gave up on): the next command would read it as its own.
            connection.disconnect()
            raise

    def _readable(self, connection: Any) -> bool:
        """One poll(2) with no wait, where redis-py's can_read() makes three system calls."""
        sock = getattr(connection, "_sock", None)
        if sock is None:
            return False  # not connected: the send connects
        descriptor = sock.fileno()
        if descriptor < 0:
            return False
        if descriptor != self._polled:
            if self._polled >= 0:
                self._poll.unregister(self._polled)
            self._poll.register(descriptor, select.POLLIN)
            self._polled = descriptor
        return bool(self._poll.poll(0))


_local = threading.local()


def send(
    client: redis_lib.Redis,
    key: Hashable,
    commands: Callable[[], Sequence[tuple[Any, ...]]],
    tail: Sequence[tuple[Any, ...]] = (),
) -> list[Any] | None:
    """The replies to ``commands()`` (called only the first time ``key`` is seen) and then
    to ``tail`` (packed on every call: what changes from one job to the next), sent in one
    write on this thread's own connection to ``client``'s server; None when ``client``
    does not use a plain redis-py connection. A reply that is an error raises it, after
    every reply was read (as ``Pipeline.execute()`` does)."""
    channel: _Channel | None = getattr(_local, "channel", None)
    if channel is None or channel.client is not client:
        # A new client: the first use, or after reset_connections() (a forked child, a
        # changed socket timeout) or a changed RESQUE_REDIS_URL.
        if channel is not None:
            channel.close()
        channel = _local.channel = _Channel(client)
    if not channel.supported:
        return None
    return channel.send(key, commands, tail)


def release() -> None:
    """Hand this thread's kept connection back to its pool until its next ``send``: a
    worker going idle waits through the pool, and so keeps no second connection open."""
    channel: _Channel | None = getattr(_local, "channel", None)
    if channel is not None:
        channel.release()

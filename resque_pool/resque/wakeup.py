"""Wake-up keys of ours, so that an idle worker takes a new job within milliseconds.

Redis has no command that blocks on several lists and records what it pops atomically, so
the take stays the atomic reserve script (``resque/reserve.py``) and the blocking happens
elsewhere: every path of ours that pushes a job also pushes a token to
``<ns>:wakeup:<queue>``, and an idle worker blocks on the wake-up keys of its queues
(``BLPOP``: with no time-out under a pool manager, until the interval's end alone,
``TokenWait``), then runs the reserve script. The pushers:

- in a pipeline with the job, through ``push_job()``: ``enqueue()`` (``resque/jobs.py``;
  also ``manage.py enqueue``, ``enqueue_at`` with a time already past, a schedule's "run
  now") and the Tasks backend (``tasks/backend.py``);
- right after the Lua script that pushed the job, through ``wake_quietly()``: the
  scheduler's mover (due delayed jobs, and the dashboard's "enqueue now",
  ``scheduler/mover.py``), recurring schedules firing (``scheduler/recurring.py``), the
  loss policy's requeue of a lost job (``resque/in_flight.py``), and retrying failed jobs
  (``resque/failures/edits.py``: the dashboard, ``failure.requeue*``).

One token wakes one worker (Redis serves the longest-blocked client), so N jobs wake at
most N workers, and only workers reading that queue. Jobs pushed by other
clients (Ruby's ``Resque.enqueue``, pyres) push no token and are found by the poll at
``INTERVAL``, as Resque finds them.

A token whose job a busy worker took first is left over; the next idle worker that pops it
runs one empty reserve. The list is trimmed to ``MAX_TOKENS`` and expires, so left-overs
stay few and go away.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from resque_pool.resque import control
from resque_pool.resque.connection import get_redis, key

logger = logging.getLogger(__name__)

WAKEUP = "wakeup"
# More tokens than this many idle workers per queue is pointless: the poll finds the rest.
MAX_TOKENS = 64
# A token older than any sensible INTERVAL is useless: the poll has found its job since.
TOKEN_TTL = 300


def wake_key(queue: str) -> str:
    return key(WAKEUP, queue)


def push_tokens(pipe: Any, queue: str, count: int = 1) -> None:
    """Queue the commands that wake up to ``count`` workers of ``queue`` on ``pipe``."""
    name = wake_key(queue)
    pipe.rpush(name, *(["1"] * count))
    pipe.ltrim(name, -MAX_TOKENS, -1)
    pipe.expire(name, TOKEN_TTL)


def push_job(pipe: Any, queue: str, payload: str) -> int:
    """Queue on ``pipe`` a job pushed from Python: ``SADD queues``, ``RPUSH queue:<queue>``
    and the wake-up token, together, so that no push path forgets the token. Returns the
    position of the ``SADD``'s reply among the pipe's, for ``announce_new_queue``."""
    position = len(pipe)
    pipe.sadd(key("queues"), queue)
    pipe.rpush(key("queue", queue), payload)
    push_tokens(pipe, queue)  # an idle worker of that queue takes it now
    return position


def announce_new_queue(replies: list[Any], position: int) -> None:
    """After ``push_job``'s pipe ran: a queue it created is news for the workers reading
    ``*`` or a glob, which block on the wake-up keys of the queues they knew (one more
    round trip, only when a queue is created)."""
    if position < len(replies) and replies[position] == 1:
        control.announce(control.QUEUES)


def wake(queues: Iterable[str]) -> None:
    """One token per queue given (a queue given twice gets two), in one round trip."""
    counts: dict[str, int] = {}
    for queue in queues:
        counts[queue] = counts.get(queue, 0) + 1
    if not counts:
        return
    pipe = get_redis().pipeline(transaction=False)
    for queue, count in counts.items():
        push_tokens(pipe, queue, count)
    pipe.execute()


def wake_quietly(queues: Iterable[str]) -> None:
    """``wake()`` where a failure must not undo what was done (a job already moved or
    requeued): the poll finds the job anyway."""
    try:
        wake(queues)
    except Exception as error:  # noqa: BLE001
        logger.warning("could not wake workers of %s: %s", ", ".join(set(queues)), error)


def wait_for_token(queues: list[str], seconds: float) -> str | None:
    """Block up to ``seconds`` on the wake-up keys of ``queues`` (in priority order); the
    queue whose token was taken, or None on time-out."""
    if not queues:
        return None
    popped = get_redis().blpop([wake_key(queue) for queue in queues], timeout=seconds)
    if popped is None:
        return None
    return popped[0][len(key(WAKEUP, "")) :]


class TokenWait:
    """One ``BLPOP`` on wake-up keys, sent on a connection of its own and waited for beside
    a self-pipe (``unix/self_pipe.py``): the worker selects on ``fileno()`` and its signal
    pipe, so a signal ends the wait locally at once, and a block of any length (``0``: no
    time-out, under a pool manager) costs Redis one command however long it lasts.

    ``cancel()`` drops the connection: a reply still on its way is lost with it, which
    loses a token, never a job (the manager's poll finds the job)."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.queues: list[str] = []

    @property
    def pending(self) -> bool:
        return self.connection is not None

    def start(self, queues: list[str], timeout: float) -> None:
        """Send ``BLPOP <wake-up keys> <timeout>`` (0: until a token comes)."""
        self.cancel()
        pool = get_redis().connection_pool
        try:
            connection = pool.get_connection()
        except TypeError:  # redis-py < 5.3 asks for a command name
            connection = pool.get_connection("_")
        try:
            connection.send_command("BLPOP", *[wake_key(q) for q in queues], timeout)
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        self.connection, self.queues = connection, list(queues)

    def fileno(self) -> int | None:
        sock = getattr(self.connection, "_sock", None)
        return sock.fileno() if sock is not None else None

    def result(self) -> str | None:
        """The reply, once ``fileno()`` is readable: the queue whose token came, or None
        when the block timed out. The connection goes back to its pool."""
        connection, self.connection = self.connection, None
        pool = get_redis().connection_pool
        try:
            reply = connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        if not reply:
            return None
        name = reply[0]
        if isinstance(name, bytes):
            name = name.decode("utf-8", "surrogateescape")
        return name[len(key(WAKEUP, "")) :]

    def cancel(self) -> None:
        """Abandon a pending block (a signal came, the queues changed, the worker pauses)."""
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        connection.disconnect()
        get_redis().connection_pool.release(connection)

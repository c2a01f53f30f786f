"""Wake-up keys of ours, so that an idle worker takes a new job within milliseconds.

Redis has no command that blocks on several lists and records what it pops atomically, so
the take stays the atomic reserve script (``resque/reserve.py``) and the blocking happens
elsewhere: every path of ours that pushes a job also pushes a token to
``<ns>:wakeup:<queue>``, and an idle worker blocks on the wake-up keys of its queues
(``BLPOP``, at most a second at a time), then runs the reserve script. The pushers:

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


def push_job(pipe: Any, queue: str, payload: str) -> None:
    """Queue on ``pipe`` a job pushed from Python: ``SADD queues``, ``RPUSH queue:<queue>``
    and the wake-up token, together, so that no push path forgets the token."""
    pipe.sadd(key("queues"), queue)
    pipe.rpush(key("queue", queue), payload)
    push_tokens(pipe, queue)  # an idle worker of that queue takes it now


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

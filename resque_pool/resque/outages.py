"""When Redis cannot take a write for now: it does not answer, or it refuses writes.

Both are outages, not losses: a worker keeps the write it could not make and makes it once
Redis takes writes again (``worker/pending.py``), and takes no other job meanwhile. A
refusal is an answer that says "not now": out of memory under ``noeviction`` (``OOM``), a
demoted master (``READONLY``), a failed background save with ``stop-writes-on-bgsave-error``
(``MISCONF``), a script past ``busy-reply-threshold`` (``BUSY``), too few replicas for
``min-replicas-to-write`` (``NOREPLICAS``), a replica cut from its master (``MASTERDOWN``),
and Redis Cluster's own (``cluster.py``): a cluster that lost a master and has not promoted
its replica yet (``CLUSTERDOWN``), the namespace's slot being migrated (``ASK``,
``TRYAGAIN``).
Redis refuses a whole ``MULTI``/``EXEC`` when it refuses one of its commands, so a refused
outcome changes nothing.

Any other error reply (``WRONGTYPE`` on a key someone overwrote, a script error) cannot
heal by waiting, so it is not an outage: callers log it and go on.
"""

from __future__ import annotations

import re

import redis as redis_lib

# Redis does not answer (or is loading its data set: redis-py's BusyLoadingError is a
# ConnectionError).
REDIS_DOWN = (redis_lib.ConnectionError, redis_lib.TimeoutError)

# Refusals redis-py has classes for; the others arrive as a plain ResponseError whose text
# starts with the code (after "Command # N (...) of pipeline caused error: " in a pipeline).
_REFUSAL_CLASSES: tuple[tuple[type[Exception], str], ...] = (
    (redis_lib.exceptions.OutOfMemoryError, "OOM"),
    (redis_lib.exceptions.ReadOnlyError, "READONLY"),
)
if hasattr(redis_lib.exceptions, "MasterDownError"):  # redis-py >= 5.1
    _REFUSAL_CLASSES += ((redis_lib.exceptions.MasterDownError, "MASTERDOWN"),)
# Before ASK: MovedError is an AskError, and a MOVED that reaches a caller names a slot
# outside the namespace (cluster.py follows the namespace's own), which no wait heals.
_NOT_REFUSALS = (redis_lib.exceptions.MovedError,)
_REFUSAL_CLASSES += (
    (redis_lib.exceptions.ClusterDownError, "CLUSTERDOWN"),
    (redis_lib.exceptions.TryAgainError, "TRYAGAIN"),
    (redis_lib.exceptions.AskError, "ASK"),
)
_REFUSAL_CODES = (
    "OOM",
    "READONLY",
    "MISCONF",
    "BUSY",
    "NOREPLICAS",
    "MASTERDOWN",
    # An older redis-py's plain connection (5.0) raises these as a ResponseError's text.
    "CLUSTERDOWN",
    "TRYAGAIN",
    "ASK",
)
_CODE = re.compile(r"(?:^|of pipeline caused error: )(" + "|".join(_REFUSAL_CODES) + r")\b")


def refusal(error: BaseException) -> str | None:
    """The code of a refused write (``"OOM"``, ``"READONLY"``, ...), else None."""
    if isinstance(error, _NOT_REFUSALS):
        return None
    for cls, code in _REFUSAL_CLASSES:
        if isinstance(error, cls):
            return code
    if isinstance(error, redis_lib.ResponseError):
        match = _CODE.search(str(error))
        if match:
            return match.group(1)
    return None


def outage(error: BaseException) -> str | None:
    """What kind of outage ``error`` is: ``"down"`` (no answer), a refusal's code, or None
    for anything that waiting will not heal."""
    if isinstance(error, REDIS_DOWN):
        return "down"
    return refusal(error)


def is_unavailable(error: BaseException) -> bool:
    return outage(error) is not None


_PIPELINE_NOTE = " of pipeline caused error: "


def describe(error: BaseException) -> str:
    """One line for the log: what kind of outage, and Redis's own words (without the note
    redis-py adds in a pipeline, which quotes the command: a failure entry's start)."""
    kind = outage(error)
    text = str(error).rpartition(_PIPELINE_NOTE)[2]
    if kind == "down":
        return f"Redis is unreachable: {text}"
    if kind is not None:
        return f"Redis refuses writes ({kind}): {text}"
    return f"Redis error: {text}"

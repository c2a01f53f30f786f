"""Our control channel, ``<ns>:resque_pool:control`` (Redis pub/sub): news an idle pool
must hear at once, though nothing of it polls Redis more than once per ``INTERVAL``.

Each pool manager and each scheduler subscribes (a subscription costs Redis nothing while
nobody publishes); what we change through our own API is published here, one message per
change, and the manager wakes the workers it concerns locally (``pool/idle_watch.py``):

- ``pause``: ``pause-all-workers`` was set or deleted (the admin's Pause/Resume);
- ``queues``: a queue was created by a push of ours, for workers reading ``*`` or a glob;
- ``delayed <timestamp>``: a delayed job due soon was pushed, for the scheduler's sleep.

Other clients (Ruby's ``pause-all-workers``, a raw ``SADD queues``, resque-scheduler's
``enqueue_at``) publish nothing here: the manager's poll per ``INTERVAL`` and the
scheduler's own poll find what they did, as Resque's workers would.
"""

from __future__ import annotations

import logging
from typing import Any

from resque_pool.resque.connection import get_redis, key

logger = logging.getLogger(__name__)

CHANNEL = "resque_pool:control"
PAUSE = "pause"
QUEUES = "queues"
DELAYED = "delayed"


def channel() -> str:
    return key(CHANNEL)


def announce(message: str, pipe: Any = None) -> None:
    """Publish ``message`` (on ``pipe`` when given, else at once). Never fails the change
    it reports: the polls find it anyway, within ``INTERVAL``."""
    try:
        (pipe or get_redis()).publish(channel(), message)
    except Exception as error:  # noqa: BLE001
        logger.warning("could not announce %r to the pools: %s", message, error)


def subscribe() -> Any:
    """A ``PubSub`` on the control channel, subscribed (its socket is ``fileno()``-able
    through ``connection``) for a loop that selects on it beside its own self-pipe."""
    pubsub = get_redis().pubsub()
    pubsub.subscribe(channel())
    return pubsub


def messages(pubsub: Any) -> list[str]:
    """Every message waiting on ``pubsub``, without blocking."""
    found = []
    while True:
        # Subscription confirmations come back too (None only means nothing is waiting).
        message = pubsub.get_message(timeout=0)
        if message is None:
            return found
        if message.get("type") != "message":
            continue
        data = message.get("data")
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if isinstance(data, str):
            found.append(data)


def socket_of(pubsub: Any) -> int | None:
    """The descriptor to select on for ``pubsub``'s messages (None when not connected)."""
    connection = getattr(pubsub, "connection", None)
    sock = getattr(connection, "_sock", None) if connection is not None else None
    return sock.fileno() if sock is not None else None

"""Django's database connections around jobs, left alone when no job opened one.

Around an in-process job the worker closes what Django closes around a request
(connections past ``CONN_MAX_AGE``, or unusable); before forking a job child it closes
them all, so that no socket is shared with the child. Most jobs never open a connection:
for those the worker does not touch Django's connection handler at all. That saves a few
microseconds per job and, in a forking worker, the pages those objects sit on, which the
fork would make it copy again. Django's ``connection_created`` signal says when a
connection may be open again.
"""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created

# Whether a connection of this process may be open; unknown (so checked) at first.
_maybe_open = True


def _created(sender: Any, **kwargs: Any) -> None:
    global _maybe_open
    _maybe_open = True


connection_created.connect(_created, dispatch_uid="resque_pool.worker.database")


def close_old() -> None:
    """Django's ``close_old_connections()``, when a connection may be open."""
    global _maybe_open
    if _maybe_open:
        close_old_connections()
        # A connection kept for CONN_MAX_AGE is checked again around the next job.
        _maybe_open = any_open()


def close_all() -> None:
    """Close every connection of this thread (before a fork), when one may be open."""
    global _maybe_open
    if _maybe_open:
        connections.close_all()
        _maybe_open = False


def any_open() -> bool:
    """True while one of this thread's connections is open."""
    return any(conn.connection is not None for conn in connections.all(initialized_only=True))

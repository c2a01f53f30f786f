"""The worker's side of hang detection: its main loop touches a file its manager watches.

As gunicorn's arbiter does with its workers' temporary files: the manager opens an unlinked
file per worker before forking it; the worker sets the file's modification time each time
its main loop comes round (at least once a second while idle or waiting for its job child,
also while it waits out a Redis outage), and the manager kills a worker whose file has not
moved for ``RESQUE_WORKER_HANG_TIMEOUT`` seconds (``pool/hangs.py``). The channel is local:
Redis being down never makes a worker look hung. A heartbeat thread could not tell a stuck
main loop, so only the main loop beats.
"""

from __future__ import annotations

import logging
import os
import time

from resque_pool.resque import connection

logger = logging.getLogger(__name__)


class Progress:
    """``beat()`` says "the main loop is alive"; ``busy(seconds)`` says "and may be away for
    this long" (an in-process job, ending a job child), by moving the time into the future.
    Without a file (``resque_work``, no manager) both do nothing."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd

    def beat(self) -> None:
        self.busy(0.0)

    def busy(self, seconds: float) -> None:
        if self.fd is None:
            return
        when = time.time() + seconds
        try:
            os.utime(self.fd, (when, when))
        except OSError as error:  # the manager's problem to notice, never the worker's
            logger.warning("could not report progress: %s", error)
            self.fd = None

    def close(self) -> None:
        """In a job child: the file is the worker's, not the child's."""
        self.fd = None


def bounded_redis_waits(hang_timeout: float) -> None:
    """A Redis that stops answering (SIGSTOPped, a network partition) would block the main
    loop inside a read and make the worker look hung: bound each reply to a third of the hang
    timeout (at most 10 s), so the worker sees an outage and waits it out, beating."""
    connection.set_socket_timeout(min(max(hang_timeout / 3, 0.5), 10.0))

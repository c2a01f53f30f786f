"""Forking a worker (or the scheduler) from the preloaded manager."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

from resque_pool import hooks
from resque_pool.resque import connection
from resque_pool.resque.jobs import registry
from resque_pool.unix import parent_death
from resque_pool.unix.process import flush_output, fork_with_signals_blocked

# Imported here, in the manager, so the workers share these pages instead of each
# importing the worker's modules after the fork.
from resque_pool.worker.limits import RECYCLE_EXIT_CODE, Limits
from resque_pool.worker.loop import Worker

logger = logging.getLogger(__name__)


def prepare_to_fork() -> None:
    """In the manager, before a batch of forks.

    Closing every database connection keeps a worker from sharing the manager's socket
    (two processes on one connection corrupt the protocol stream). ``gc.freeze()`` moves
    everything loaded so far out of the collector's reach, so collections in the workers
    do not write to (and so copy) the pages shared with the manager.
    """
    connections.close_all()
    registry.prepare()
    parent_death.prepare()  # prctl looked up once here, not by every child it forks
    gc.freeze()


def worker_entry(
    queues: list[str],
    manager_pid: int,
    progress_fd: int | None = None,
    limits: dict[str, Any] | None = None,
) -> tuple[Callable[[], int], str]:
    """What a forked worker runs (for ``fork_child``), and the message if it fails: made
    before forking, so the manager allocates nothing per fork (see
    ``Reconciler.spawn_workers``)."""

    def work() -> int:
        worker = Worker(
            queues,
            manager_pid=manager_pid,
            progress_fd=progress_fd,
            limits=Limits.resolve(**(limits or {})),
        )
        logger.info("resque-pool-worker: starting worker %s", worker.id)
        hooks.run("after_prefork", worker)
        worker.work()
        # A worker that recycles itself says so, so the manager replaces it without backoff.
        return RECYCLE_EXIT_CODE if worker.recycled else 0

    return work, f"worker for {','.join(queues)} failed"


def fork_child(
    run: Callable[[], int],
    single_process_group: bool,
    reset_signals: Iterable[int],
    close_fds: Iterable[int],
    *,
    failure: str,
    log: logging.Logger = logger,
) -> int:
    """Fork a child of the manager (a worker or the scheduler); returns its pid.

    In the child: start clean of the manager's state, call ``run`` and ``_exit`` with the
    status it returns, or 1 after logging ``failure`` to ``log`` if it raised.

    ``reset_signals`` are blocked across the fork and stay blocked in the child until
    ``run`` installs handlers of its own (the worker's and the scheduler's unblock them):
    a QUIT the manager sends a worker it has just forked would otherwise meet the
    manager's handler in the child, which only queues it for a manager that is not there,
    and the manager would wait for that worker for ever.
    """
    blocked = set(reset_signals)
    pid, _mask = fork_with_signals_blocked(blocked)
    if pid:
        return pid
    status = 1
    try:
        _leave_manager(single_process_group, blocked, close_fds)
        status = run()
    except BaseException:  # noqa: BLE001 (anything, even SystemExit, must end in _exit)
        try:
            log.exception("%s", failure)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
    finally:
        flush_output()
        # Never return into the manager's stack, never run its atexit handlers.
        os._exit(status)
    raise AssertionError("unreachable")  # pragma: no cover


def _leave_manager(
    single_process_group: bool, reset_signals: Iterable[int], close_fds: Iterable[int]
) -> None:
    # The manager's wakeup fd and handlers only enqueue into the manager's queue; a child
    # starts from the default dispositions and installs its own handlers.
    signal.set_wakeup_fd(-1)
    for signum in reset_signals:
        signal.signal(signum, signal.SIG_DFL)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    # The inherited Redis sockets belong to the manager, and so does its bound on replies
    # (a worker sets its own, see worker/progress.py).
    connection.set_socket_timeout(None)
    if not single_process_group:
        # Its own group: a Ctrl-C on the manager's terminal does not reach the child, and
        # the manager can signal a worker together with its job child.
        os.setpgrp()

"""The manager's signal queue, and kill-others' error logging (units, no pool running)."""

from __future__ import annotations

import logging

# -- the signal queue ----------------------------------------------------------------------


def test_signal_queue_holds_five_and_logs_the_rest(caplog):
    import os
    import signal

    from resque_pool.pool.signal_queue import SignalQueue

    queue = SignalQueue()
    queue.install()
    try:
        for _ in range(7):
            os.kill(os.getpid(), signal.SIGUSR1)
        queue.sleep(0.5)  # returns at once: signals are waiting
        caplog.set_level(logging.WARNING, logger="resque_pool")
        queue.log_dropped()
        assert list(queue.pending) == [signal.SIGUSR1] * 5
        assert caplog.text.count("ignoring SIGUSR1: signal queue is full") == 2
        assert [queue.pop() for _ in range(6)] == [signal.SIGUSR1] * 5 + [None]
    finally:
        queue.uninstall()
        queue.close()


def test_kill_others_logs_a_repeating_redis_error_once(caplog, settings):
    from resque_pool.pool.killer import KillOthers
    from resque_pool.pool.processes import WorkerProcess, WorkerTable
    from resque_pool.resque import connection

    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    connection.reset_connections()
    killer = KillOthers("app", "host", 1, enabled=True)
    workers = WorkerTable()
    workers.add(WorkerProcess(12345, "demo", 0.0))
    with caplog.at_level("ERROR", logger="resque_pool.pool"):
        for _ in range(3):
            killer.next_check = 0.0
            killer.tick(workers, {"demo": 1})
    errors = [r for r in caplog.records if "kill-others" in r.getMessage()]
    assert len(errors) == 1 and "will retry" in errors[0].getMessage()
    assert killer.pending  # still waiting to signal the old pools


def test_drain_hands_over_every_waiting_signal_and_empties_the_queue():
    import os
    import signal

    from resque_pool.pool.signal_queue import SignalQueue

    queue = SignalQueue()
    queue.install()
    try:
        for signum in (signal.SIGUSR1, signal.SIGINT, signal.SIGUSR2):
            os.kill(os.getpid(), signum)
        queue.sleep(0.5)
        assert queue.drain() == [signal.SIGUSR1, signal.SIGINT, signal.SIGUSR2]
        assert queue.drain() == [] and queue.pop() is None
    finally:
        queue.uninstall()
        queue.close()

"""The Sentry failure backend of docs/failures.md (``Sentry``, verbatim there), and what its
tests need in the pool processes: a Sentry transport that writes events to a file instead
of the network, a backend that always raises, a ``job_failure`` receiver writing to a file,
and a job that fails after a while. Named by tests/support/sentry_settings.py."""

from __future__ import annotations

import json
import os
import time

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.transport import Transport
from sentry_sdk.worker import BackgroundWorker

from resque_pool import job
from resque_pool.failure_backends import Backend, Failure
from resque_pool.scheduler.retry import Retry
from resque_pool.signals import job_failure

# --- the example of docs/failures.md, from here to the end marker ---
# The ERROR line that logs each failure would be a second event for it.
ignore_logger("resque_pool.resque.outcomes")


class Sentry(Backend):
    def save(self, failure: Failure) -> None:
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("queue", failure.queue)
            scope.set_tag("job_class", failure.job_class)
            scope.set_tag("outcome", failure.outcome)
            scope.set_context(
                "job",
                {"args": failure.args, "worker": failure.worker, "attempt": failure.attempt},
            )
            scope.fingerprint = [failure.job_class or "?", type(failure.exception).__name__]
            sentry_sdk.capture_exception(failure.exception)

    def flush(self, timeout: float) -> None:
        sentry_sdk.flush(timeout)


# --- end of the example ---

EVENTS = os.environ.get("SENTRY_TEST_EVENTS", "")
SIGNALS = os.environ.get("SENTRY_TEST_SIGNALS", "")
# As long as an HTTP round trip to Sentry: a process that exits without flushing loses it.
SEND_DELAY = 0.3


def _append(path: str, record: dict) -> None:
    # O_APPEND: lines from several processes never interleave within a line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


class FileTransport(Transport):
    """Sends each event from a background thread, as Sentry's HTTP transport does, to a
    file: one JSON line with the sending pid and the event."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self._worker = BackgroundWorker()

    def capture_envelope(self, envelope) -> None:
        pid = os.getpid()

        def send() -> None:
            time.sleep(SEND_DELAY)
            for item in envelope.items:
                if item.type == "event":
                    _append(EVENTS, {"pid": pid, "event": item.payload.json})

        self._worker.submit(send)

    def flush(self, timeout, callback=None) -> None:
        self._worker.flush(timeout, callback)

    def kill(self) -> None:
        self._worker.kill()


class Broken(Backend):
    """Listed before Sentry: its failure must cost neither the failed list nor Sentry."""

    def save(self, failure: Failure) -> None:
        raise ConnectionError("the error tracker is down")


def record_signal(sender, failure: Failure, **kwargs) -> None:
    _append(
        SIGNALS,
        {
            "pid": os.getpid(),
            "job_class": failure.job_class,
            "args": failure.args,
            "queue": failure.queue,
            "worker": failure.worker,
            "attempt": failure.attempt,
            "outcome": failure.outcome,
            "exception": type(failure.exception).__name__,
            "entry": failure.entry is not None,
        },
    )


if SIGNALS:
    job_failure.connect(record_signal, dispatch_uid="tests.sentry_backend")


@job(queue="demo", name="FailAfter")
def fail_after(seconds, message="failed after a while"):
    time.sleep(float(seconds))
    raise RuntimeError(message)


@job(queue="demo", name="RetryTwice", retry=Retry(limit=2))
def retry_twice(token):
    raise RuntimeError(f"still broken {token}")

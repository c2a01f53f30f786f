"""``python manage.py resque_work --queues a,b [--interval S]``: one worker in the foreground.

The equivalent of ``QUEUES=a,b rake resque:work``: without ``--queues`` it reads ``QUEUES``
then ``QUEUE`` from the environment, and ``INTERVAL`` without ``--interval``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError

from resque_pool.conf import settings
from resque_pool.errors import NoQueueError
from resque_pool.logs import configure_logging
from resque_pool.resque.jobs import registry
from resque_pool.resque.outages import describe, outage
from resque_pool.worker.limits import RECYCLE_EXIT_CODE, Limits
from resque_pool.worker.loop import Worker


class Command(BaseCommand):
    help = (
        "Run one Resque worker in the foreground. Queues in priority order, e.g. "
        "'critical,*,!file_*'; QUIT finishes the current job and exits, TERM/INT end it now."
    )
    # The worker reads Redis, not the database; skip the checks' database round trips.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--queues",
            "-q",
            help="comma-separated queue list (default: $QUEUES, else $QUEUE)",
        )
        parser.add_argument(
            "--interval",
            "-i",
            type=float,
            help="seconds to sleep when every queue is empty; 0 drains and exits "
            "(default: $INTERVAL, else 5)",
        )
        parser.add_argument(
            "--max-jobs",
            type=_positive(int),
            help="exit (status 75) after this many jobs, plus up to 10%% jitter "
            "(default: RESQUE_WORKER_MAX_JOBS)",
        )
        parser.add_argument(
            "--max-memory",
            type=_positive(float),
            metavar="MB",
            help="exit (status 75) after the job during which the worker's resident memory "
            "passed MB, less up to 10%% jitter (default: RESQUE_WORKER_MAX_MEMORY_MB)",
        )

    def handle(self, *args, **options) -> None:
        try:
            # This command runs no checks (they would cost database round trips).
            configure_logging(settings.RESQUE_LOG_FORMAT)
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            # Without --queues the worker reads QUEUES, then QUEUE, as rake resque:work does.
            limits = Limits.resolve(
                max_jobs=options["max_jobs"], max_memory_mb=options["max_memory"]
            )
            worker = Worker(options["queues"], interval=options["interval"], limits=limits)
        except NoQueueError as error:
            raise CommandError(f"{error} Use --queues a,b or set QUEUES.") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        # Looked up once here, so that job children (a fork per job) inherit them.
        registry.prepare()
        try:
            worker.work()
        except redis.RedisError as error:
            # An outage ends only a worker with --interval 0: otherwise it waits it out.
            if outage(error) is None:
                raise
            raise CommandError(describe(error)) from None
        if worker.recycled:
            # A supervisor (systemd's Restart=, a container runtime) starts a fresh one.
            sys.exit(RECYCLE_EXIT_CODE)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse

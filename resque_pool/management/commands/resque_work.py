"""``python manage.py resque_work --queues a,b [--interval S]``: one worker in the foreground.

The equivalent of ``QUEUES=a,b rake resque:work``: without ``--queues`` it reads ``QUEUES``
then ``QUEUE`` from the environment, and ``INTERVAL`` without ``--interval``.
"""

from __future__ import annotations

import redis
from django.core.management.base import BaseCommand, CommandError

from resque_pool.errors import NoQueueError
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

    def handle(self, *args, **options) -> None:
        try:
            # Without --queues the worker reads QUEUES, then QUEUE, as rake resque:work does.
            worker = Worker(options["queues"], interval=options["interval"])
        except NoQueueError as error:
            raise CommandError(f"{error} Use --queues a,b or set QUEUES.") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            worker.work()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # Only with --interval 0: otherwise the worker waits for Redis to answer.
            raise CommandError(f"Redis is unreachable: {error}") from None

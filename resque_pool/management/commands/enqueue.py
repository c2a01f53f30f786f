"""``python manage.py enqueue NAME [ARG ...] [--queue Q] [--in DELAY | --at TIME]``: push
one job, now or later (delayed on resque-scheduler's keys)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from resque_pool.conf import settings
from resque_pool.debug import mask_url
from resque_pool.errors import ResqueError
from resque_pool.resque.jobs import enqueue, registry, unknown_job


def parse_argument(text: str) -> Any:
    """An argument is JSON when it parses as JSON (``44``, ``true``, ``{"a":1}``), else the
    string itself (``masterbrew``). ``NaN``, ``Infinity`` and numbers too large for a float
    are not JSON that Ruby (or our encoder) can write, so they stay strings."""
    try:
        value = json.loads(text, parse_constant=_refuse)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Bad input or an unreachable Redis: one line and a non-zero exit, never a traceback
    and never the password. Nothing was pushed: each push is one pipeline."""
    try:
        yield
    except (ResqueError, ValueError) as error:
        raise CommandError(str(error)) from None
    except redis.RedisError as error:
        url = mask_url(settings.RESQUE_REDIS_URL)
        raise CommandError(f"nothing enqueued: Redis at {url}: {error}") from None


class Command(BaseCommand):
    help = (
        "Push a job onto its queue. Each ARG is taken as JSON when it parses as JSON, "
        "else as a string. A name no worker here registers can be pushed with --queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="registered job name, e.g. Record or myapp.jobs.archive")
        parser.add_argument("job_args", nargs="*", metavar="ARG", help="job arguments")
        parser.add_argument("--queue", "-q", help="queue to push to (default: the job's queue)")
        later = parser.add_mutually_exclusive_group()
        later.add_argument("--in", dest="delay", metavar="DELAY", help="run later: 30s, 5m, 2h, 1d")
        later.add_argument(
            "--at", metavar="TIME", help="run at an ISO 8601 time (no offset: TIME_ZONE)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if options["queue"] is None and name not in registry:
            raise CommandError(str(unknown_job(name, "give --queue QUEUE")))
        job_args = [parse_argument(text) for text in options["job_args"]]
        if options["delay"] is not None or options["at"] is not None:
            self.enqueue_later(name, job_args, options)
            return
        with _one_line_errors():
            pushed = enqueue(name, *job_args, queue=options["queue"])
        if pushed is None:
            self.stdout.write(f"{name}: a before_enqueue hook cancelled the job")
            return
        self.stdout.write(f"queue:   {pushed.queue}\npayload: {pushed.payload}")

    def enqueue_later(self, name: str, job_args: list[Any], options: dict[str, Any]) -> None:
        from resque_pool.scheduler import delayed, when

        with _one_line_errors():
            if options["at"] is not None:
                at = when.parse_at(options["at"])
            else:
                at = timezone.now() + when.parse_delay(options["delay"])
            result = delayed.enqueue_at(at, name, *job_args, queue=options["queue"])
        if result is None:
            self.stdout.write(f"{name}: a before_schedule or before_enqueue hook cancelled the job")
            return
        if isinstance(result, delayed.DelayedJob):
            self.stdout.write(
                f"queue:   {result.queue}\ndelayed: {result.item}\n"
                f"at:      {when.utc_text(result.at)}"
            )
        else:  # the time has passed: enqueued at once, as Ruby does
            self.stdout.write(
                f"queue:   {result.queue}\npayload: {result.payload}\n"
                f"at:      {when.utc_text(at)} (already passed: enqueued now)"
            )

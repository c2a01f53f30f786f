"""``python manage.py enqueue NAME [ARG ...] [--queue Q] [--in DELAY | --at TIME]``: push
one job, now or later (delayed on resque-scheduler's keys)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from resque_pool.config_error import clip
from resque_pool.errors import ResqueError
from resque_pool.resque.connection import describe_redis
from resque_pool.resque.producer import enqueue, unknown_job
from resque_pool.resque.registry import registry
from resque_pool.scheduler import delayed, when


def parse_argument(text: str, warn: Callable[[str], None] | None = None) -> Any:
    """An argument is JSON when it parses as JSON (``44``, ``true``, ``{"a":1}``), else the
    string itself (``masterbrew``). ``NaN``, ``Infinity`` and numbers too large for a float
    are not JSON that Ruby (or our encoder) can write, so they stay strings. A string that
    looks like JSON (``[1,2``) but does not parse stays a string too, and ``warn`` is told
    why: it is more likely a typo than a string meant to start with a bracket."""
    try:
        value = json.loads(text, parse_constant=_refuse)
    except ValueError as error:
        if warn is not None and text.lstrip()[:1] in ("[", "{", '"'):
            reason = str(error).split(":")[0]
            warn(
                f"warning: argument {clip(text, 60)!r} looks like JSON but is not ({reason}); "
                "it is passed as a string"
            )
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
        raise CommandError(f"nothing enqueued: {describe_redis()}: {error}") from None


class Command(BaseCommand):
    help = (
        "Push a job onto its queue. Each ARG is taken as JSON when it parses as JSON, "
        "else as a string. A name no worker here registers can be pushed with --queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="registered job name, e.g. Record or myapp.jobs.archive")
        parser.add_argument("job_args", nargs="*", metavar="ARG", help="job arguments")
        parser.add_argument("--queue", "-q", help="queue to push to (default: the job's queue)")
        # Not an argparse group: its refusal is a usage block and a second line; ours is one.
        parser.add_argument(
            "--in", dest="delay", metavar="DELAY", help="run later: 30s, 5m, 2h, 1d"
        )
        parser.add_argument(
            "--at", metavar="TIME", help="run at an ISO 8601 time (no offset: TIME_ZONE)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if options["delay"] is not None and options["at"] is not None:
            raise CommandError("give --in or --at, not both")
        if options["queue"] is None and name not in registry:
            raise CommandError(str(unknown_job(name, "give --queue QUEUE")))
        job_args = [parse_argument(text, self.stderr.write) for text in options["job_args"]]
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
        with _one_line_errors():
            if options["at"] is not None:
                at = when.parse_at(options["at"])
            else:
                at = when.after(timezone.now(), options["delay"])
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

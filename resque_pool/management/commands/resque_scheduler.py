"""``python manage.py resque_scheduler``: the scheduler alone, in the foreground.

What each pool runs as a child by default (see ``--no-scheduler``): it moves due delayed
jobs to their queues. Any number may run side by side, with each other and with Ruby's
resque-scheduler.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resque_pool.conf import settings
from resque_pool.logs import configure_logging
from resque_pool.scheduler.process import Scheduler


class Command(BaseCommand):
    help = (
        "Move due delayed jobs to their queues (resque-scheduler's keys). TERM, INT or QUIT "
        "stop it after the current step."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-a", "--appname", help="app name in the procline (default: cwd name)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            configure_logging(settings.RESQUE_LOG_FORMAT)
        except ValueError as error:  # only with --skip-checks: the checks refuse it first
            raise CommandError(str(error)) from None
        Scheduler(appname=options["appname"] or os.path.basename(os.getcwd())).run()

"""``manage.py resque_pool_stop``: stop a pool of this host after its current jobs, and
wait for it (``resque_pool/stop.py``, whose Django-free entry point
``python -m resque_pool.stop`` a ``preStop`` hook should prefer).

Exit status: 0 stopped, 1 still running after the grace period, 2 no such pool or a usage
error; one line on stdout.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from resque_pool import health, stop


class Command(BaseCommand):
    help = (
        "Send QUIT to the pool (each worker finishes its job, then exits) and wait until "
        "the manager and all its processes are gone. Exit 0 stopped, 1 still running "
        "after --grace-period seconds, 2 no such pool."
    )
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        return health.one_line_errors(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        stop.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        code, line = stop.run(options["pidfile"], options["appname"], options["grace_period"])
        self.stdout.write(line)
        self.stdout.flush()
        # The exit status is the answer; a command's handle() has no other way to set it.
        raise SystemExit(code)

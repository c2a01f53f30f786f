"""``manage.py resque_health``: is a pool of this host alive (``--ready``: and ready)?

Liveness is ``resque_pool/health.py``'s answer (the age of the file the manager's loop
touches; no Redis); a probe that runs every few seconds should prefer its Django-free
entry point, ``python -m resque_pool.health``. ``--ready`` adds what needs the project's
settings: the counts loaded, every configured worker running and registered in Redis,
and Redis answering.

Exit status: 0 alive (or ready), 1 not, 2 no such pool or a usage error; one line on stdout.
"""

from __future__ import annotations

import argparse
from typing import Any

import redis as redis_lib
from django.core.management.base import BaseCommand

from resque_pool import health
from resque_pool.pool.killer import workers_registered
from resque_pool.resque import connection
from resque_pool.resque.connection import get_redis

# A probe must answer within its own time-out (Kubernetes' default is 1 s, usually
# raised for an exec probe): a Redis that does not answer within this long is not answering.
REDIS_TIMEOUT = 2.0


class Command(BaseCommand):
    help = (
        "Exit 0 when the pool's main loop came round within --max-age seconds (with "
        "--ready: and its workers are all running and registered, and Redis answers), 1 "
        "when not, 2 when there is no such pool. One line on stdout says why."
    )
    # A probe runs every few seconds: the checks would only add their cost to each call.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        return health.one_line_errors(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        health.add_arguments(parser)
        parser.add_argument(
            "--ready",
            action="store_true",
            help="also: counts loaded, every configured worker registered, Redis answering",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            pools = health.find_pools(
                options["pidfile"], options["appname"] or health.default_appname()
            )
        except health.NoPool as error:
            self._answer(health.NO_POOL, f"no pool: {error}")
        code, line = health.liveness(pools, options["max_age"])
        if code != health.ALIVE or not options["ready"]:
            self._answer(code, line)
        self._answer(*readiness(pools))

    def _answer(self, code: int, line: str) -> None:
        # The exit status is the answer; a command's handle() has no other way to set it.
        self.stdout.write(line)
        self.stdout.flush()
        raise SystemExit(code)


def readiness(pools: list[health.PoolHealth]) -> tuple[int, str]:
    """Ready when every pool runs (not starting, paused or stopping), loaded its counts,
    runs every configured worker, each registered in Redis, and Redis answers."""
    for pool in pools:
        state = pool.state
        status = state.get("status")
        if status != "running":
            what = "paused (WINCH; HUP resumes it)" if status == "paused" else status
            return health.NOT_ALIVE, f"not ready: {pool.name} is {what}"
        if not state.get("loaded"):
            return health.NOT_ALIVE, f"not ready: {pool.name} has not loaded its counts yet"
        workers = state.get("workers") or []
        if not state.get("complete"):
            return health.NOT_ALIVE, (
                f"not ready: {pool.name} runs {len(workers)} of {state.get('desired')} workers"
            )
    connection.set_socket_timeout(REDIS_TIMEOUT)
    try:
        get_redis().ping()
        for pool in pools:
            if not workers_registered(pool.state.get("workers") or []):
                return health.NOT_ALIVE, (
                    f"not ready: {pool.name}: not every worker is registered in Redis yet"
                )
    except redis_lib.RedisError as error:
        return health.NOT_ALIVE, f"not ready: Redis does not answer ({type(error).__name__})"
    total = sum(len(pool.state.get("workers") or []) for pool in pools)
    names = ", ".join(pool.name for pool in pools)
    return health.ALIVE, f"ready: {names}: {total} workers registered, Redis answers"

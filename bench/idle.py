"""Idle Redis commands per second for a whole pool, by kind of command, beside rq and Celery.

```sh
.venv/bin/python -m bench.idle --n 16 64 --window 20
```

Each system starts N idle workers on a private redis-server (ours with its scheduler child,
which reads the demo project's database: a fresh migrated SQLite file), waits until they
are registered and settled, and counts what Redis ran over the window with ``INFO
commandstats`` deltas (commands run inside scripts count too; ``INFO`` itself does not).
Prints one line per system and N, and the top commands for ours.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import redis

from bench.common import PYTHON, ROOT, BenchError, cleanup, env_for, start_redis
from bench.figures import log
from bench.systems import FORK, SYSTEMS, Ours, Running, launch


class OursWithScheduler(Ours):
    """The pool as deployed: its scheduler child on (it reads the database)."""

    name = "ours"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def launch(self, url, n, mode=FORK, **env):
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as config:
            config.write(f"bench: {n}\n")
        cmd = [PYTHON, "manage.py", "resque_pool", "--no-pidfile", "-c", config.name]
        env.setdefault("FORK_PER_JOB", "true")
        env.setdefault("DATABASE_URL", self.database_url)
        process = launch(cmd, env_for(url, **env))
        return Running([process], self.stop_signal, [config.name])


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far (``INFO`` left out: it is the measurement's own)."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): entry["calls"]
        for name, entry in stats.items()
        if name != "cmdstat_info"
    }


def idle_rates(
    client: redis.Redis, window: float, settle: float = 3.0
) -> tuple[float, dict[str, float]]:
    """(commands per second in all, per command) over ``window`` after ``settle``."""
    time.sleep(settle)
    before = command_calls(client)
    time.sleep(window)
    after = command_calls(client)
    per_kind = {
        name: (calls - before.get(name, 0)) / window
        for name, calls in after.items()
        if calls != before.get(name, 0)
    }
    return sum(per_kind.values()), per_kind


def migrated_database(url: str) -> tuple[str, str]:
    """A fresh SQLite database with the app's tables; (path, DATABASE_URL)."""
    handle, path = tempfile.mkstemp(suffix=".sqlite3")
    os.close(handle)
    database_url = f"sqlite:///{path}"
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "-v", "0"],
        env=env_for(url, DATABASE_URL=database_url),
        cwd=ROOT,
        check=True,
        timeout=180,
        capture_output=True,
    )
    return path, database_url


def measure(system, url: str, client: redis.Redis, n: int, window: float):
    client.flushdb()
    running = system.launch(url, n, system.default_mode)
    try:
        deadline = time.monotonic() + 30 + n
        while system.registered(client) < n:
            if not running.alive():
                raise BenchError(f"{system.name} exited during start-up")
            if time.monotonic() > deadline:
                raise BenchError(f"{n} {system.name} workers did not register")
            time.sleep(0.05)
        return idle_rates(client, window)
    finally:
        running.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--systems", nargs="+", default=["ours", "rq", "celery"])
    options = parser.parse_args(argv)
    server = start_redis()
    url = server.url
    client = redis.Redis.from_url(url)
    path, database_url = migrated_database(url)
    try:
        for name in options.systems:
            system = OursWithScheduler(database_url) if name == "ours" else SYSTEMS[name]
            reason = system.skip_reason()
            if reason:
                log(f"{name}: skipped ({reason})")
                continue
            for n in options.n:
                try:
                    total, kinds = measure(system, url, client, n, options.window)
                except BenchError as error:
                    log(f"{name} n={n}: failed: {error}")
                    continue
                top = sorted(kinds.items(), key=lambda item: -item[1])[:8]
                shown = ", ".join(f"{kind} {rate:.2f}" for kind, rate in top)
                log(f"{name} n={n}: {total:.2f} commands/s idle ({shown})")
    finally:
        cleanup()
        os.unlink(path)
        server.stop()


if __name__ == "__main__":
    main()

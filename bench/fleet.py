"""What a fleet costs: many pools against one Redis and one database.

```sh
.venv/bin/python -m bench.fleet --pools 10 --workers 16 --window 20      # bench/out/fleet.json
.venv/bin/python -m bench.fleet --publish                                 # bench/results-fleet.json
```

``--pools`` managers, each ``manage.py resque_pool --pool fleetN`` with its own
``WorkerCount`` row of ``--workers`` workers (one of them runs the scheduler), stand for
as many hosts on this machine, against a private redis-server and a database of their own:
PostgreSQL when one answers (``RESQUE_BENCH_POSTGRES_URL``, default the local server),
else a migrated SQLite file. Measured, in the same run:

- Redis commands per second, idle and while draining ``--jobs`` no-op jobs (``INFO
  commandstats`` deltas; commands inside scripts count), and the jobs per second;
- the loaders' queries per second against PostgreSQL (its transactions per second on the
  fleet's database: each load is one query in autocommit), and the connections opened per
  second (PostgreSQL's ``sessions`` counter);
- the admin overview's and workers page's response time (median of 10, in this process,
  through Django's test client as a superuser) with the fleet's workers and pools, and
  again with ``--registered`` workers registered in all (the rest simulated: registrations
  of hosts that do not exist).

The ratio reported is the fleet's idle commands per worker against one pool of the same
size measured first in the same run: a fleet whose idle cost grows with its workers, not
its pools, shows a ratio near 1 per pool.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.common import (
    NAMESPACE,
    PYTHON,
    ROOT,
    cleanup,
    env_for,
    launch,
    start_redis,
    stop_all,
    wait_for,
)
from bench.idle import command_calls
from resque_pool.resque import wire

QUEUE = "fleet"


def database(url: str | None) -> tuple[str, str | None]:
    """(DATABASE_URL, PostgreSQL database name or None): a fresh database for the run."""
    url = url or os.environ.get(
        "RESQUE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    try:
        import psycopg

        name = f"resque_pool_fleet_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = url.rsplit("/", 1)[0]
        return f"{base}/{name}", name
    except Exception as error:  # noqa: BLE001 (no PostgreSQL here: SQLite, no query figure)
        print(f"PostgreSQL not available ({type(error).__name__}); using SQLite", flush=True)
        path = Path(tempfile.mkdtemp(prefix="resque-fleet-")) / "fleet.sqlite3"
        return f"sqlite:///{path}", None


def drop_database(url: str, name: str | None) -> None:
    if name is None:
        return
    import psycopg

    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_counters(url: str, name: str | None) -> tuple[int, int]:
    """(transactions, sessions) of the fleet's database so far."""
    if name is None:
        return 0, 0
    import psycopg

    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_stat_clear_snapshot()")
        row = admin.execute(
            "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
            "WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]), int(row[1])


def setup_django(redis_url: str, database_url: str) -> None:
    os.environ.update(env_for(redis_url, DATABASE_URL=database_url))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def admin_client():
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(
        username="fleet", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def page_ms(client, path: str, times: int = 10) -> float:
    took = []
    for _ in range(times):
        started = time.perf_counter()
        response = client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return round(statistics.median(took), 1)


def start_pools(redis_url: str, database_url: str, numbers: range) -> list:
    processes = []
    for number in numbers:
        cmd = [
            PYTHON, "manage.py", "resque_pool", "--no-pidfile", "--pool", f"fleet{number}",
            "--appname", f"fleet{number}",
        ]  # fmt: skip
        if number:
            cmd.append("--no-scheduler")  # one scheduler in the fleet, as on many hosts
        env = env_for(redis_url, DATABASE_URL=database_url, FORK_PER_JOB="true")
        processes.append(launch(cmd, env))
    return processes


def idle_rate(client: redis.Redis, window: float) -> float:
    time.sleep(3)  # settle: the first polls and state refreshes of a new pool
    before = sum(command_calls(client).values())
    time.sleep(window)
    return (sum(command_calls(client).values()) - before) / window


def simulate_workers(client: redis.Redis, count: int) -> None:
    """Registrations of ``count`` workers on hosts that do not exist, as Resque writes
    them (the admin reads them; no pool prunes them within the run: fresh heartbeats)."""
    seconds, _micro = client.time()
    pipe = client.pipeline(transaction=False)
    for number in range(count):
        worker_id = f"ghost{number // 16}:{100000 + number}:{QUEUE}"
        pipe.sadd(f"{NAMESPACE}:workers", worker_id)
        pipe.set(f"{NAMESPACE}:worker:{worker_id}:started", wire.started_at())
        pipe.hset(f"{NAMESPACE}:workers:heartbeat", worker_id, wire.heartbeat(seconds))
    pipe.execute()


def drain(client: redis.Redis, jobs: int) -> tuple[float, float]:
    """(jobs per second, commands per second) while the fleet drains ``jobs`` no-ops."""
    pipe = client.pipeline(transaction=False)
    staging = f"{NAMESPACE}:queue:{QUEUE}-staging"
    for number in range(jobs):
        pipe.rpush(staging, json.dumps({"class": "BenchNoop", "args": [number]}))
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
    pipe.execute()
    processed = int(client.get(f"{NAMESPACE}:stat:processed") or 0)
    before = sum(command_calls(client).values())
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    pipe.rename(staging, f"{NAMESPACE}:queue:{QUEUE}")
    pipe.rpush(f"{NAMESPACE}:wakeup:{QUEUE}", *["1"] * 64)
    pipe.execute()
    wait_for(
        lambda: int(client.get(f"{NAMESPACE}:stat:processed") or 0) >= processed + jobs,
        600,
        "the fleet drained the jobs",
    )
    seconds = time.perf_counter() - started
    commands = sum(command_calls(client).values()) - before
    return round(jobs / seconds, 1), round(commands / seconds, 1)


def measure(options: argparse.Namespace) -> dict:
    server = start_redis()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    database_url, pg_name = database(options.database)
    result: dict = {"pools": options.pools, "workers": options.workers}
    processes: list = []
    try:
        setup_django(server.url, database_url)
        from resque_pool.models import WorkerCount

        for number in range(options.pools):
            WorkerCount.objects.create(queues=QUEUE, count=options.workers, pool=f"fleet{number}")
        total = options.pools * options.workers
        # One pool alone first: the baseline of the ratio.
        processes = start_pools(server.url, database_url, range(1))
        wait_for(lambda: client.scard(f"{NAMESPACE}:workers") == options.workers, 120, "one pool")
        result["one_pool_idle_commands_per_s"] = round(idle_rate(client, options.window), 2)
        processes += start_pools(server.url, database_url, range(1, options.pools))
        wait_for(lambda: client.scard(f"{NAMESPACE}:workers") == total, 600, "the fleet")
        xacts, sessions = pg_counters(database_url, pg_name)
        result["idle_commands_per_s"] = round(idle_rate(client, options.window), 2)
        if pg_name:
            later_xacts, later_sessions = pg_counters(database_url, pg_name)
            seconds = options.window + 3
            result["loader_queries_per_s"] = round((later_xacts - xacts) / seconds, 2)
            result["database_connections_per_s"] = round((later_sessions - sessions) / seconds, 2)
        per_worker_fleet = result["idle_commands_per_s"] / total
        per_worker_one = result["one_pool_idle_commands_per_s"] / options.workers
        # A window shorter than the pools' poll interval may see no command at all.
        result["ratio_idle_per_worker_fleet_to_one_pool"] = (
            round(per_worker_fleet / per_worker_one, 2) if per_worker_one else None
        )
        admin = admin_client()
        result["overview_ms"] = page_ms(admin, "/admin/resque_pool/dashboard/")
        result["workers_page_ms"] = page_ms(admin, "/admin/resque_pool/dashboard/workers/")
        jobs_per_s, commands_per_s = drain(client, options.jobs)
        result["drain_jobs_per_s"] = jobs_per_s
        result["drain_commands_per_s"] = commands_per_s
        simulate_workers(client, max(options.registered - total, 0))
        result["registered"] = client.scard(f"{NAMESPACE}:workers")
        result["overview_ms_registered"] = page_ms(admin, "/admin/resque_pool/dashboard/")
        result["workers_page_ms_registered"] = page_ms(
            admin, "/admin/resque_pool/dashboard/workers/"
        )
    finally:
        stop_all(processes, signal.SIGQUIT)
        cleanup()
        server.stop()
        try:
            from django.db import connections

            connections.close_all()
        finally:
            drop_database(database_url, pg_name)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--window", type=float, default=20.0, help="seconds of each idle count")
    parser.add_argument("--jobs", type=int, default=16000)
    parser.add_argument("--registered", type=int, default=1000)
    parser.add_argument("--database", help="PostgreSQL URL of a server to create a database in")
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--output", type=Path)
    options = parser.parse_args(argv)
    result = measure(options)
    for name, value in result.items():
        print(f"{name}: {value}")
    target = options.output or (
        ROOT / "bench" / ("results-fleet.json" if options.publish else "out/fleet.json")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
